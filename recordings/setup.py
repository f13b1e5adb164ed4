"""Recordings: every finished MixMonitor file is registered in the index
(size, duration, sha256, or what is wrong with it). The call tracker says when
a recording is finished; this feature hears it from the event hub once the
call's facts are committed, so a recording row never precedes its call row.
Rows are written by the call writer (sink ``recordings``). ``GET
/recordings/{id}`` plays one (:mod:`recordings.http`)."""

from __future__ import annotations

from typing import AsyncIterator

from aiohttp import web

from hotline.core import Core
from hotline.facts import Committed
from recordings import http
from recordings.registration import RecordingRegistrar

REGISTRAR = web.AppKey("recording_registrar", RecordingRegistrar)


def setup(app: web.Application, core: Core) -> None:
    registrar = RecordingRegistrar(core.settings.recordings, core.writer)
    app[REGISTRAR] = registrar
    http.add_routes(app)

    def committed(batch: Committed) -> None:
        if batch.recordings:
            registrar.submit(batch.recordings)

    async def context(_app: web.Application) -> AsyncIterator[None]:
        unsubscribe = core.hub.subscribe(committed, remote=False)   # each process registers its own
        core.on_settle(registrar.wait_idle)
        try:
            yield
        finally:
            await core.settle_quietly()      # the last committed batches may finish recordings
            unsubscribe()
            await registrar.wait_idle()

    app.cleanup_ctx.append(context)
