"""Playing a recording: ``GET /recordings/{id}`` serves the file with HTTP
Range (206 Partial Content), so a browser's ``<audio>`` element can seek
without fetching the whole call.

Who may listen: supervisors; an agent who took the call (the agents' state
log) or whom another feature grants it (tickets: the agent a ticket of the
call belongs to), through :data:`PLAYBACK_GRANTS`. Anyone else gets 404, as
for a recording that does not exist. Each listening is in the audit log
(``recording.played``: who, which recording and call, from where): one row per
person and recording every ``AUDIT_WINDOW`` seconds, because a player makes
several requests for one listening (the first, one per seek).

The file is found from the path Asterisk gave it, mapped into
``recordings.local_dir``, and opened only as a regular file inside that
folder (:func:`recordings.inspect.open_inside`: no ``..``, no symlink out, no
FIFO). It is read in worker threads, a block at a time, never on the event loop.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path, PurePosixPath
from typing import Awaitable, Callable

import asyncpg
from aiohttp import web

from hotline.app import CORE
from hotline.auth.audit import record_once
from hotline.auth.middleware import IDENTITY
from hotline.auth.roles import Identity, Role, page, requires
from hotline.logs import get_logger
from hotline.web import render_error
from recordings import store
from recordings.inspect import Rejected, open_inside
from recordings.playback import Unsatisfiable, media_type, requested_range
from recordings.registration import local_path

log = get_logger(__name__)

AUDIT_WINDOW = 600.0        # seconds: one audit row per person and recording within this
BLOCK = 256 * 1024          # bytes read per worker-thread call

Grant = Callable[[asyncpg.Connection, Identity, asyncpg.Record], Awaitable[bool]]
PLAYBACK_GRANTS = web.AppKey("recording_playback_grants", list)     # [Grant]


async def agent_took_the_call(conn: asyncpg.Connection, identity: Identity, recording: asyncpg.Record) -> bool:
    if identity.kind != "account":
        return False
    return await store.taken_by(conn, identity.id, recording["linkedid"], recording["uniqueid"])


async def _may_listen(request: web.Request, conn: asyncpg.Connection, recording: asyncpg.Record) -> bool:
    identity = request[IDENTITY]
    if identity.role.admits(Role.SUPERVISOR):
        return True
    for grant in request.app[PLAYBACK_GRANTS]:
        if await grant(conn, identity, recording):
            return True
    return False


def _open(path: Path, root: Path) -> tuple[int, int]:
    fd = open_inside(path, root)
    return fd, os.fstat(fd).st_size


@page
@requires(Role.AGENT)
async def play_recording(request: web.Request) -> web.StreamResponse:
    core = request.app[CORE]
    recording_id = int(request.match_info["recording_id"])
    async with core.api_pool.acquire(timeout=core.settings.database.connect_timeout) as conn:
        recording = await store.recording(conn, recording_id)
        if recording is None or not await _may_listen(request, conn, recording):
            return await render_error(request, 404, "没有这个录音，或您无权收听。")
        if recording["status"] != "ok":
            return await render_error(request, 404, f"录音不可用（{recording['status']}）。")
        await record_once(conn, request[IDENTITY].actor, "recording.played", f"recording:{recording_id}",
                          request.remote, {"call": recording["linkedid"], "range": request.headers.get("Range")},
                          AUDIT_WINDOW)
    settings = core.settings.recordings
    try:
        path = local_path(settings, recording["asterisk_path"])
        fd, size = await asyncio.to_thread(_open, path, Path(settings.local_dir))
    except Rejected as exc:
        log.error("recording.playback_refused", recording=recording_id, path=recording["asterisk_path"],
                  reason=str(exc), call_id=recording["linkedid"])
        return await render_error(request, 404, "录音文件不可用。")
    except OSError as exc:
        log.error("recording.playback_unavailable", recording=recording_id, path=recording["asterisk_path"],
                  error=exc.strerror or repr(exc), call_id=recording["linkedid"])
        return await render_error(request, 404, "录音文件不可用。")
    try:
        return await _send(request, fd, size, recording)
    finally:
        os.close(fd)


async def _send(request: web.Request, fd: int, size: int, recording: asyncpg.Record) -> web.StreamResponse:
    if recording["bytes"] is not None and size != recording["bytes"]:
        log.warning("recording.size_changed", recording=recording["id"], registered=recording["bytes"], now=size,
                    call_id=recording["linkedid"])
    etag = f'"{recording["sha256"]}"' if recording["sha256"] and size == recording["bytes"] else None
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, no-store",
               "Content-Disposition": f'inline; filename="{PurePosixPath(recording["asterisk_path"]).name}"'}
    if etag:
        headers["ETag"] = etag
    try:
        part = requested_range(request.headers.get("Range"), size, if_range=request.headers.get("If-Range"),
                               etag=etag)
    except Unsatisfiable:
        return web.Response(status=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    start, length = (part.start, part.length) if part else (0, size)
    response = web.StreamResponse(status=206 if part else 200, headers=headers)
    response.content_type = media_type(recording["asterisk_path"])
    response.content_length = length
    if part:
        response.headers["Content-Range"] = part.content_range(size)
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    offset, end = start, start + length
    try:
        while offset < end:
            block = await asyncio.to_thread(os.pread, fd, min(BLOCK, end - offset), offset)
            if not block:        # the file shrank since it was opened: end short, the client sees it
                log.warning("recording.truncated_while_sent", recording=recording["id"], at=offset)
                break
            await response.write(block)
            offset += len(block)
    except ConnectionResetError:
        # The player went away or moved on (a seek starts a new request): nothing went wrong.
        log.debug("recording.playback_stopped", recording=recording["id"], at=offset)
        return response
    await response.write_eof()
    return response


def add_routes(app: web.Application) -> None:
    app[PLAYBACK_GRANTS] = [agent_took_the_call]
    app.router.add_get(r"/recordings/{recording_id:\d{1,18}}", play_recording)
