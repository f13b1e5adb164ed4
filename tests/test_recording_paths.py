"""Recording paths come from the dialplan (MIXMONITOR_FILENAME) and are not
trusted: only a regular file inside recordings.local_dir is read; ``../``, a
symlink out of the folder, a FIFO or a device is stored as 'rejected' with the
reason, and logged as an error."""

import asyncio
import logging
import os
import shutil
import time
from datetime import datetime, timezone

import pytest

from hotline.app import create_app
from hotline.facts import CallFacts, ChangeSet, Committed, RecordingFinished
from recordings.inspect import Rejected, inspect_recording, local_path
from tests.bridge_harness import RECORDED_MONITOR, running

AT = datetime(2026, 11, 22, 2, 0, tzinfo=timezone.utc)
WAV = RECORDED_MONITOR / "2026/11/22/1795313795.0.wav"
ASTERISK_DIR = "/var/spool/asterisk/monitor"


@pytest.fixture
def folders(tmp_path):
    """The recordings folder with one good file, and a secret beside it."""
    monitor, outside = tmp_path / "monitor", tmp_path / "outside"
    monitor.mkdir()
    outside.mkdir()
    shutil.copy(WAV, monitor / "good.wav")
    shutil.copy(WAV, outside / "secret.wav")
    return monitor, outside


def unblock(fifo) -> None:
    """Give a reader stuck opening the FIFO its writer (and EOF), should one be."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


async def test_every_escape_is_stored_as_rejected_with_its_reason_and_the_good_file_as_ok(
        settings, db, folders, caplog):
    caplog.set_level(logging.ERROR)
    monitor, outside = folders
    settings = settings.with_overrides(recordings={"local_dir": str(monitor)})
    (monitor / "link.wav").symlink_to(outside / "secret.wav")
    (monitor / "sub").symlink_to(outside)
    os.mkfifo(monitor / "fifo.wav")
    paths = {
        "9.1": f"{ASTERISK_DIR}/good.wav",
        "9.2": f"{ASTERISK_DIR}/../outside/secret.wav",
        "9.3": f"{ASTERISK_DIR}/link.wav",
        "9.4": f"{ASTERISK_DIR}/sub/secret.wav",
        "9.5": f"{ASTERISK_DIR}/fifo.wav",
        "9.6": "/etc/passwd",
    }
    app = create_app(settings, bridge=False, pool=db)
    try:
        async with running(app) as core:
            core.writer.submit(ChangeSet(calls=[CallFacts(linkedid, {"started_at": AT}) for linkedid in paths]))
            await core.writer.flush()
            core.hub.publish(Committed(timeline=[], committed_at=time.time(), origin=core.hub.origin,
                                       recordings=[RecordingFinished(k, k, v) for k, v in paths.items()]))
            await asyncio.wait_for(core.settle(), 10)     # a FIFO must not hang registration
    finally:
        unblock(monitor / "fifo.wav")
    async with db.acquire() as conn:
        stored = {r["linkedid"]: r for r in await conn.fetch("SELECT * FROM recordings")}
    assert stored["9.1"]["status"] == "ok" and stored["9.1"]["sha256"]
    for linkedid, reason in (("9.2", "'..'"), ("9.3", "symlink leads out"), ("9.4", "symlink leads out"),
                             ("9.5", "a FIFO"), ("9.6", "not inside the recordings folder")):
        row = stored[linkedid]
        assert (row["status"], row["sha256"], row["bytes"]) == ("rejected", None, None), linkedid
        assert reason in row["problem"], (linkedid, row["problem"])
    assert caplog.text.count("recording.flagged") == 5


def test_dotdot_and_foreign_paths_are_rejected_before_any_file_is_touched():
    for path in (f"{ASTERISK_DIR}/../../../etc/shadow", f"{ASTERISK_DIR}/2026/../../x.wav", "x.wav",
                 "/etc/shadow", ASTERISK_DIR, f"{ASTERISK_DIR}/a\x00.wav"):
        with pytest.raises(Rejected):
            local_path(ASTERISK_DIR, "/srv/monitor", path)
    assert str(local_path(ASTERISK_DIR, "/srv/monitor", f"{ASTERISK_DIR}/2026/11/22/1.2.wav")) == \
        "/srv/monitor/2026/11/22/1.2.wav"


async def test_a_fifo_is_rejected_without_waiting_for_a_writer(folders):
    monitor, _ = folders
    os.mkfifo(monitor / "fifo.wav")
    try:
        found = await asyncio.wait_for(asyncio.to_thread(inspect_recording, monitor / "fifo.wav", monitor), 5)
    finally:
        unblock(monitor / "fifo.wav")
    assert found.status == "rejected" and "FIFO" in found.problem


def test_a_symlink_inside_the_folder_to_a_file_inside_is_read_and_a_device_is_not(folders):
    monitor, _ = folders
    (monitor / "alias.wav").symlink_to(monitor / "good.wav")
    assert inspect_recording(monitor / "alias.wav", monitor).status == "ok"
    (monitor / "null.wav").symlink_to("/dev/null")
    found = inspect_recording(monitor / "null.wav", monitor)
    assert found.status == "rejected" and "symlink leads out" in found.problem
    assert inspect_recording(monitor / "none.wav", monitor).status == "missing"


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_node_inside_the_folder_is_rejected(folders):
    monitor, _ = folders
    os.mknod(monitor / "zero.wav", 0o600 | 0o020000, os.makedev(1, 5))   # a character device, as /dev/zero
    found = inspect_recording(monitor / "zero.wav", monitor)
    assert found.status == "rejected" and "character device" in found.problem
