"""Fuzzing the AMI reader: random bytes and mutated captured frames between the
real events of a captured call. The reader logs and skips what it cannot parse,
the connection stays up (one login), and the real call is recorded exactly as
without the noise. Seeded, so a failure replays."""

from __future__ import annotations

import logging
import random

import pytest

from tests.bridge_harness import bridge_on, ended_call, timeline_kinds
from tests.conftest import ASTERISK_FIXTURES
from tests.standin import AmiStandIn, Transcript
from tests.standin.steps import Send

ABANDONED_CALL = "1795313813.2"
SEEDS = (2512345, 12345, 7)


def captured_frames() -> list[bytes]:
    """Whole frames of another captured call (its linkedids differ from the call under test)."""
    raw = (ASTERISK_FIXTURES / "call-menu-queue-answered.ami").read_bytes().partition(b"\r\n")[2]
    return [block + b"\r\n\r\n" for block in raw.split(b"\r\n\r\n") if block.startswith(b"Event: ")]


def mutate(frame: bytes, rng: random.Random) -> bytes:
    data = bytearray(frame[:-4])
    how = rng.randrange(6)
    if how == 0:                                    # flipped bytes (invalid UTF-8, NULs, lone CRs)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif how == 1:                                  # cut short
        data = data[: rng.randrange(1, len(data))]
    elif how == 2:                                  # a header without its colon
        data = data.replace(b": ", b" ", 1)
    elif how == 3:                                  # an enormous header value
        data += b"\r\nVariable: " + b"x" * rng.randint(1000, 20000)
    elif how == 4:                                  # headers in another order, one duplicated
        lines = bytes(data).split(b"\r\n")
        rng.shuffle(lines)
        data = bytearray(b"\r\n".join(lines + lines[:1]))
    else:                                           # pure noise
        data = bytearray(rng.randbytes(rng.randint(1, 400)))
    return bytes(data).replace(b"\r\n\r\n", b"\r\n") + b"\r\n\r\n"


def noisy(script, rng: random.Random, frames: list[bytes], per_gap: int = 4):
    """The script with noise after every Send that ends on a frame boundary."""
    gaps = [i for i, step in enumerate(script.steps) if isinstance(step, Send) and step.data.endswith(b"\r\n\r\n")]
    for index in reversed(gaps):
        noise = b"".join(mutate(rng.choice(frames), rng) for _ in range(per_gap))
        script = script.insert_raw(index, noise)
    return script


@pytest.mark.parametrize("seed", SEEDS)
async def test_mutated_and_random_frames_never_disturb_a_real_call(seed, settings, db, caplog):
    caplog.set_level(logging.WARNING)
    clean = Transcript.load(ASTERISK_FIXTURES / "call-queue-abandoned.jsonl").connection(1)
    rng = random.Random(seed)
    fuzzed = noisy(clean, rng, captured_frames())
    assert len(fuzzed.steps) > len(clean.steps) + 10
    async with AmiStandIn([fuzzed]) as server:
        async with bridge_on(server, settings, db) as core:
            call = await ended_call(db, ABANDONED_CALL)
            await core.ami.request({"Action": "Ping"})      # still talking, after all of it
            await core.settle()
            assert core.ami.logins == 1
    fuzzed_kinds = await timeline_kinds(db, ABANDONED_CALL)
    assert call["outcome"] == "abandoned" and call["caller_name"] == "王小明" and call["hold_seconds"] == 6
    assert "ami.session_crashed" not in caplog.text
    assert "ami.frame_unparseable" in caplog.text or "ami.frame_truncated" in caplog.text

    async with db.acquire() as conn:
        await conn.execute("TRUNCATE calls CASCADE")
    async with AmiStandIn([clean]) as server:
        async with bridge_on(server, settings, db) as core:
            await ended_call(db, ABANDONED_CALL)
            await core.settle()
    assert await timeline_kinds(db, ABANDONED_CALL) == fuzzed_kinds
