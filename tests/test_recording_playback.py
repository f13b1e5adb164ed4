"""Playing recordings over HTTP: Range requests answered 206 with the right
bytes and Content-Range, 416 for a range past the end, who may listen (a
supervisor, the agent who took the call or holds its ticket; nobody else),
one audit row per listening, and files outside the recordings folder never
served. The recording played in the last test is registered by the real
registrar from a captured call replayed through the bridge."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from hotline.app import create_app
from hotline.auth.roles import Role
from recordings.playback import ByteRange, Unsatisfiable, requested_range
from tests.bridge_harness import QUEUE_ADD_8006, bearer, bridge_on, ended_call, install_recordings
from tests.conftest import ASTERISK_FIXTURES
from tests.standin import AgiCaller, AmiStandIn, Emulator
from tests.test_bridge_calls import MENU_CALL, menu_script
from tests.web_harness import log_in, make_account

ASTERISK_DIR = "/var/spool/asterisk/monitor"
SIZE = 10_000


@pytest.mark.parametrize("header,expected", [
    ("bytes=0-99", ByteRange(0, 99)),
    ("bytes=100-", ByteRange(100, SIZE - 1)),
    ("bytes=-500", ByteRange(SIZE - 500, SIZE - 1)),
    ("bytes=-20000", ByteRange(0, SIZE - 1)),           # more than the file: all of it
    ("bytes=9990-20000", ByteRange(9990, SIZE - 1)),    # the end past the file: cut at the end
    ("Bytes = 5-5", ByteRange(5, 5)),
    ("bytes=0-0", ByteRange(0, 0)),
    (None, None),
    ("bytes=0-9,20-29", None),          # several ranges: the whole file (allowed by RFC 9110)
    ("items=0-9", None),                # another unit
    ("bytes=9-0", None),                # last before first: invalid, ignored
    ("bytes=abc", None), ("bytes=1-x", None), ("bytes=-", None), ("bytes=１-２", None), ("bytes", None),
])
def test_the_range_header_is_read_against_the_size(header, expected):
    assert requested_range(header, SIZE) == expected


@pytest.mark.parametrize("header", ["bytes=10000-", "bytes=10000-10005", "bytes=-0", "bytes=99999999999-"])
def test_a_range_past_the_end_cannot_be_satisfied(header):
    with pytest.raises(Unsatisfiable):
        requested_range(header, SIZE)


def test_if_range_keeps_the_range_only_for_the_same_file():
    assert requested_range("bytes=5-9", SIZE, if_range='"abc"', etag='"abc"') == ByteRange(5, 9)
    assert requested_range("bytes=5-9", SIZE, if_range='"old"', etag='"abc"') is None
    assert requested_range("bytes=5-9", SIZE, if_range="Wed, 21 Oct 2026 07:28:00 GMT", etag='"abc"') is None


# ------------------------------------------------------------------ over HTTP

def audio_bytes(n: int = 48_044) -> bytes:
    return bytes((i * 7 + i // 256) % 256 for i in range(n))


async def a_recording(db, settings, linkedid: str = "1795400000.1", body: bytes | None = None,
                      name: str | None = None, asterisk_path: str | None = None) -> dict:
    """A finished call and its recording, the file where MixMonitor writes it."""
    body = audio_bytes() if body is None else body
    name = name or f"2026/11/22/{linkedid}.wav"
    path = Path(settings.recordings.local_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    async with db.acquire() as conn:
        await conn.execute(
            """INSERT INTO calls (linkedid, caller_number, started_at, ended_at, queue, agent_interface,
                                  agent_answered_at)
               VALUES ($1, '13800138000', now() - interval '3 minutes', now(), 'social_security', 'PJSIP/8006',
                       now() - interval '2 minutes') ON CONFLICT DO NOTHING""", linkedid)
        row = await conn.fetchrow(
            """INSERT INTO recordings (linkedid, uniqueid, asterisk_path, local_path, status, bytes, sha256)
               VALUES ($1, $1, $2, $3, 'ok', $4, $5) RETURNING *""",
            linkedid, asterisk_path or f"{ASTERISK_DIR}/{name}", str(path), len(body),
            hashlib.sha256(body).hexdigest())
    return dict(row)


async def test_a_supervisor_plays_a_recording_whole_and_in_ranges(web_server, db, web_settings):
    body = audio_bytes()
    recording = await a_recording(db, web_settings, body=body)
    path = f"/recordings/{recording['id']}"
    async with TestClient(web_server) as client:
        await make_account(db, web_settings, "zhao.ban", Role.SUPERVISOR)
        await log_in(client, "zhao.ban")
        whole = await client.get(path)
        assert whole.status == 200 and await whole.read() == body
        assert whole.headers["Content-Type"] == "audio/wav" and whole.headers["Accept-Ranges"] == "bytes"
        assert whole.headers["Content-Length"] == str(len(body))
        assert whole.headers["ETag"] == f'"{recording["sha256"]}"'
        assert "no-store" in whole.headers["Cache-Control"]

        for header, first, last in (("bytes=0-1023", 0, 1023), ("bytes=40000-", 40000, len(body) - 1),
                                    ("bytes=-44", len(body) - 44, len(body) - 1),
                                    ("bytes=48000-99999", 48000, len(body) - 1)):
            part = await client.get(path, headers={"Range": header})
            assert part.status == 206, header
            assert part.headers["Content-Range"] == f"bytes {first}-{last}/{len(body)}"
            assert part.headers["Content-Length"] == str(last - first + 1)
            assert await part.read() == body[first:last + 1]

        for header in ("bytes=48044-", "bytes=-0", "bytes=99999-100000"):
            refused = await client.get(path, headers={"Range": header})
            assert refused.status == 416, header
            assert refused.headers["Content-Range"] == f"bytes */{len(body)}"
            assert await refused.read() == b""
        ignored = await client.get(path, headers={"Range": "bytes=0-9,100-109"})
        assert ignored.status == 200 and await ignored.read() == body
        stale = await client.get(path, headers={"Range": "bytes=0-9", "If-Range": '"another file"'})
        assert stale.status == 200 and await stale.read() == body
        same = await client.get(path, headers={"Range": "bytes=0-9", "If-Range": whole.headers["ETag"]})
        assert same.status == 206 and await same.read() == body[:10]
        head = await client.head(path, headers={"Range": "bytes=10-19"})
        assert head.status == 206 and head.headers["Content-Length"] == "10"
    async with db.acquire() as conn:
        played = await conn.fetch("SELECT * FROM audit_log WHERE action = 'recording.played'")
    # Eleven requests of one listening: one row, naming the recording and its call.
    assert len(played) == 1 and played[0]["subject"] == f"recording:{recording['id']}"
    assert played[0]["actor"].endswith(":zhao.ban") and json.loads(played[0]["detail"])["call"] == "1795400000.1"


async def test_who_may_listen(web_server, db, web_settings):
    taken = await a_recording(db, web_settings, "1795400000.1")
    ticketed = await a_recording(db, web_settings, "1795400000.2")
    other = await a_recording(db, web_settings, "1795400000.3")
    agent = await make_account(db, web_settings, "wang.fang", name="王芳")
    async with db.acquire() as conn:
        # She answered the first call (the agents' state log) ...
        await conn.execute(
            """INSERT INTO agent_state_log (account_id, interface, from_state, to_state, cause, uniqueid, occurred_at)
               VALUES ($1, 'PJSIP/8006', 'ringing', 'in_call', 'answered', '1795400000.1', now())""", agent.id)
        # ... and the second one's ticket is hers.
        await conn.execute(
            """INSERT INTO tickets (source, linkedid, subject, opened_by, verify_due, answer_due,
                                    assignee_account_id)
               VALUES ('manual', '1795400000.2', '回电', 'test', now(), now(), $1)""", agent.id)
    async with TestClient(web_server) as client:
        await log_in(client, "wang.fang")
        assert (await client.get(f"/recordings/{taken['id']}")).status == 200
        assert (await client.get(f"/recordings/{ticketed['id']}", headers={"Range": "bytes=0-9"})).status == 206
        refused = await client.get(f"/recordings/{other['id']}")
        assert refused.status == 404 and "无权收听" in await refused.text()
        assert (await client.get("/recordings/999999")).status == 404
        client.session.cookie_jar.clear()                      # logged out
        sent = await client.get(f"/recordings/{taken['id']}", allow_redirects=False)
        assert sent.status == 303 and sent.headers["Location"].startswith("/login?next=")
        assert (await client.get(f"/recordings/{taken['id']}", headers=await bearer(db, "agent"))).status == 404
        assert (await client.get(f"/recordings/{other['id']}", headers=await bearer(db, "supervisor"))).status == 200
    async with db.acquire() as conn:
        played = await conn.fetch("SELECT actor, subject FROM audit_log WHERE action = 'recording.played' ORDER BY id")
    assert [(r["actor"].split(":")[-1], r["subject"]) for r in played] == [
        ("wang.fang", f"recording:{taken['id']}"), ("wang.fang", f"recording:{ticketed['id']}"),
        ("test supervisor", f"recording:{other['id']}")]


async def test_files_outside_the_recordings_folder_are_never_served(web_server, db, web_settings, tmp_path):
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"RIFF not yours")
    climbing = await a_recording(db, web_settings, "1795400000.4",
                                 asterisk_path=f"{ASTERISK_DIR}/../../../..{secret}")
    monitor = Path(web_settings.recordings.local_dir)
    (monitor / "2026").mkdir(parents=True, exist_ok=True)
    os.symlink(secret, monitor / "2026" / "link.wav")
    linked = await a_recording(db, web_settings, "1795400000.5", asterisk_path=f"{ASTERISK_DIR}/2026/link.wav")
    outside = await a_recording(db, web_settings, "1795400000.6", asterisk_path=str(secret))
    gone = await a_recording(db, web_settings, "1795400000.7", asterisk_path=f"{ASTERISK_DIR}/2026/gone.wav")
    supervisor = await bearer(db, "supervisor")
    async with TestClient(web_server) as client:
        for recording in (climbing, linked, outside, gone):
            response = await client.get(f"/recordings/{recording['id']}", headers=supervisor)
            assert response.status == 404, recording["asterisk_path"]
            assert b"RIFF not yours" not in await response.read()


async def test_a_recording_is_not_played_unless_registered_ok(web_server, db, web_settings):
    recording = await a_recording(db, web_settings)
    async with db.acquire() as conn:
        await conn.execute("UPDATE recordings SET status = 'empty' WHERE id = $1", recording["id"])
    async with TestClient(web_server) as client:
        response = await client.get(f"/recordings/{recording['id']}", headers=await bearer(db, "supervisor"))
        assert response.status == 404 and "录音不可用（empty）" in await response.text()


async def test_the_recording_the_bridge_registered_is_played_back_byte_for_byte(settings, db):
    """The captured answered call through the stand-in: the real registrar
    indexes its MixMonitor file, and the route serves exactly that file."""
    install_recordings(settings)
    emulator = Emulator(agi=AgiCaller(inputs=["3"]))
    async with AmiStandIn([menu_script()], emulator=emulator) as ami:
        async with bridge_on(ami, settings, db) as bridge:
            await bridge.ami.request(QUEUE_ADD_8006)
            await ended_call(db, MENU_CALL)
            await bridge.settle()
    async with db.acquire() as conn:
        recording = await conn.fetchrow("SELECT * FROM recordings WHERE linkedid = $1", MENU_CALL)
    wav = (ASTERISK_FIXTURES / "recordings/monitor/2026/11/22/1795313795.0.wav").read_bytes()
    async with TestClient(TestServer(create_app(settings, bridge=False, pool=db))) as client:
        supervisor = await bearer(db, "supervisor")
        whole = await client.get(f"/recordings/{recording['id']}", headers=supervisor)
        assert whole.status == 200 and await whole.read() == wav
        tail = await client.get(f"/recordings/{recording['id']}", headers={**supervisor, "Range": "bytes=44-"})
        assert tail.status == 206 and await tail.read() == wav[44:]
        assert tail.headers["Content-Range"] == f"bytes 44-{len(wav) - 1}/{len(wav)}"
