"""Hostile AudioSocket peers against real callers, on this machine.

Three processes: a *server* (the real AudioSocket server and recogniser pool,
with owners that behave like the voice menu: collect the finals, and on a
failed stream send the hangup frame), this *driver*, which plays Asterisk for
the real callers and samples the server process's RSS and CPU from /proc, and
an *attacker*. All traffic goes to 127.0.0.1; the attackers connect from
127.0.0.2 (the real callers, like Asterisk, from 127.0.0.1).

Phases:

1. *baseline*: N real callers (default 20), each a registered session
   streaming the test phrases in real time (20 ms frames on an absolute
   schedule, starts staggered): three phrases with silence around them.
2. *idle*: nothing for two seconds (the recognisers are warm).
3. *attack*: the hostile connections (default 30 with UUIDs nobody registered,
   reconnecting as soon as they are dropped, each sending audio in real time
   like the original attack; and 10 flooders, each on a registered call,
   sending audio as fast as TCP takes it and reconnecting as the next call a
   second after the server lets go), and, once they run, the N real callers again.
4. *shutdown*: ``server.close()`` and ``pool.close()`` while the attack goes on.

Printed: real callers served and their transcripts (baseline and under
attack), hostile connections refused or failed, RSS idle vs peak under
attack, CPU, and the shutdown time. Every loop is bounded in time and count.

    .venv/bin/python -m bench.audiosocket_hostile
    .venv/bin/python -m bench.audiosocket_hostile --callers 20 --intruders 30 --flooders 10 --reconnect-delay 0
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from asr.audio import read_pcm, silence
from asr.audiosocket import AudioSocketServer, Ended
from asr.audiosocket.client import AudioSocketClient
from asr.audiosocket.framing import audio_frames
from asr.engine import Final, RecognizerPool, StreamFailed, bundled_test_model_path
from hotline.logs import configure_logging
from hotline.settings import AsrSettings

AUDIO = Path(__file__).resolve().parent.parent / "tests" / "data" / "audio"
ATTACKER = "127.0.0.2"
BASELINE, ATTACK, FLOOD = 1_000_000, 2_000_000, 3_000_000     # UUID numbers of each kind of call
STAGGER = 0.0537           # seconds between the starts of consecutive callers
FLOOD_ROUNDS = 60          # registered calls per flooder (one per reconnection)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def clean_items() -> list[dict]:
    lines = (AUDIO / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [item for item in map(json.loads, lines) if item["audio"].startswith("clean/")]


def script(index: int) -> list[dict]:
    """The three phrases caller ``index`` says."""
    items = clean_items()
    return [items[(index + k * 5) % len(items)] for k in range(3)]


def caller_audio(index: int) -> bytes:
    pcm = b""
    for item in script(index):
        pcm += silence(1.0) + read_pcm(AUDIO / item["audio"]) + silence(1.5)
    return pcm


# ----- server process ----------------------------------------------------------------

async def serve(args) -> None:
    import vosk

    vosk.SetLogLevel(-1)
    settings = AsrSettings(model_path=str(bundled_test_model_path()), workers=args.workers, max_streams=40,
                           spare_recognizers=40, audiosocket_port=0)
    pool = await RecognizerPool.start(settings)
    server = AudioSocketServer(settings, pool)
    await server.start()
    grammar = sorted({item["text"] for item in clean_items()})
    waves: dict[str, list[asyncio.Task]] = {}
    floods: collections.Counter[str] = collections.Counter()
    flood_owners: set[asyncio.Task] = set()
    dropped = [0]

    async def own_call(session) -> dict:
        """A real call's owner: the finals until the caller hangs up; the hangup
        frame when the stream fails (as the menu does)."""
        finals: list[str] = []
        failed = None
        async for event in session:
            if isinstance(event, Final) and event.text:
                finals.append(event.text)
            elif isinstance(event, StreamFailed):
                failed = event.reason
                await session.hangup()
            elif isinstance(event, Ended):
                return {"finals": finals, "failed": failed, "ended": event.reason}
        return {"finals": finals, "failed": failed, "ended": None}

    async def own_flood(session) -> None:
        async for event in session:
            if isinstance(event, StreamFailed):
                floods[f"failed_{event.reason}"] += 1
                await session.hangup()
            elif isinstance(event, Ended):
                floods[f"ended_{event.reason}"] += 1
                dropped[0] += session.audio_frames_dropped
                if session.attached:
                    floods["connected"] += 1

    def reply(data: dict) -> None:
        print(json.dumps(data), flush=True)

    reply({"ready": server.port})
    while True:
        line = (await asyncio.to_thread(sys.stdin.readline)).split()
        if not line:
            break
        command = line[0]
        if command == "WAVE":                     # WAVE name base n
            name, base, n = line[1], int(line[2]), int(line[3])
            sessions = [server.session(uuid.UUID(int=base + i), call_id=f"{name}-{i}", grammar=grammar)
                        for i in range(n)]
            waves[name] = [asyncio.create_task(own_call(s)) for s in sessions]
            reply({"registered": n})
        elif command == "FLOOD":                  # FLOOD base n
            base, n = int(line[1]), int(line[2])
            for i in range(n):
                task = asyncio.create_task(own_flood(server.session(uuid.UUID(int=base + i), call_id=f"flood-{i}",
                                                                     grammar=grammar)))
                flood_owners.add(task)
                task.add_done_callback(flood_owners.discard)
            reply({"registered": n})
        elif command == "REPORT":                 # REPORT name
            done, _ = await asyncio.wait(waves[line[1]], timeout=60)
            reply({"calls": [t.result() for t in waves[line[1]] if t in done],
                   "refused": dict(server.refused), "floods": dict(floods), "dropped_frames": dropped[0],
                   "decoded_seconds": pool.decoded_bytes / (2 * settings.sample_rate),
                   "active": pool.active, "sessions": len(server.sessions())})
        elif command == "SHUTDOWN":
            started = time.monotonic()
            await server.close()
            closed = time.monotonic()
            await pool.close()
            finished = time.monotonic()
            reply({"server_close": closed - started, "pool_close": finished - closed,
                   "refused": dict(server.refused), "floods": dict(floods),
                   "decoded_seconds": pool.decoded_bytes / (2 * settings.sample_rate)})
            for task in flood_owners:
                task.cancel()
            return


# ----- driver: Asterisk and the attackers ---------------------------------------------------

class ServerProcess:
    def __init__(self, args, log_path: Path):
        self.log = log_path.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.audiosocket_hostile", "--serve",
                                      "--workers", str(args.workers)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.samples: list[tuple[float, float, float]] = []     # (time, RSS MB, CPU seconds)

    async def ask(self, command: str, timeout: float = 120) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return await self.answer(timeout)

    async def answer(self, timeout: float = 120) -> dict:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), timeout)
        if not line:
            raise RuntimeError(f"the server process ended (exit {self.proc.poll()}); see {self.log.name}")
        return json.loads(line)

    def sample(self) -> tuple[float, float]:
        """(RSS MB, CPU seconds) of the server process now."""
        rss = 0.0
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return rss, (int(fields[11]) + int(fields[12])) / CLK_TCK

    async def sampling(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError, IndexError, ValueError):
                rss, cpu = self.sample()
                self.samples.append((time.monotonic(), rss, cpu))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)

    def window(self, start: float, end: float) -> dict:
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return {"rss_peak": float("nan"), "rss_mean": float("nan"), "cpu_pct": float("nan")}
        return {"rss_peak": max(s[1] for s in inside), "rss_mean": sum(s[1] for s in inside) / len(inside),
                "cpu_pct": 100 * (inside[-1][2] - inside[0][2]) / (inside[-1][0] - inside[0][0])}


async def real_caller(port: int, call_uuid: uuid.UUID, pcm: bytes, start: float, late: list[float]) -> None:
    client = AudioSocketClient(call_uuid)
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, start - 0.3 - loop.time()))
    await client.connect("127.0.0.1", port)
    with contextlib.suppress(ConnectionError):            # the server let go (a failed stream)
        await client.send_audio(pcm, pace=0.02, start=start)
    late.append(loop.time() - (start + len(pcm) / 16000))
    await asyncio.sleep(0.3)                              # the last endpoint is decoded, then the caller hangs up
    await client.close()


async def intruder(port: int, rng: random.Random, stats: collections.Counter, stop: asyncio.Event,
                   delay: float, max_connections: int) -> None:
    """A UUID nobody registered, audio in real time, reconnecting when dropped."""
    pcm = silence(30.0)
    loop = asyncio.get_running_loop()
    for _ in range(max_connections):
        if stop.is_set():
            return
        client = AudioSocketClient(uuid.UUID(int=rng.getrandbits(128)))
        sending = None
        try:
            started = loop.time()
            await client.connect("127.0.0.1", port, source=ATTACKER)
            sending = asyncio.create_task(client.send_audio(pcm, pace=0.02))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(client.closed_by_server.wait(), 30)
            if client.closed_by_server.is_set():
                stats["refused"] += 1
                stats["refused_within_1s"] += loop.time() - started < 1.0
            else:
                stats["held_30s"] += 1
        except OSError:
            stats["connect_failed"] += 1
            if stop.is_set():
                return
            await asyncio.sleep(0.05)
        finally:
            if sending is not None:
                sending.cancel()
                await asyncio.wait({sending})
            await client.close(abort=True)
        if delay:
            await asyncio.sleep(delay)


async def flooder(port: int, index: int, stats: collections.Counter, stop: asyncio.Event) -> None:
    """A registered call sending audio as fast as TCP takes it; the next call a
    second after the server let go."""
    blob = b"".join(audio_frames(b"".join(read_pcm(AUDIO / item["audio"]) for item in clean_items()[:2])))
    loop = asyncio.get_running_loop()
    for round_ in range(FLOOD_ROUNDS):
        if stop.is_set():
            return
        client = AudioSocketClient(uuid.UUID(int=FLOOD + index * FLOOD_ROUNDS + round_))
        try:
            await client.connect("127.0.0.1", port, source=ATTACKER)
            deadline = loop.time() + 20
            while not client.closed_by_server.is_set() and not stop.is_set():
                if loop.time() > deadline:
                    stats["flood_not_dropped_20s"] += 1
                    break
                if client.unsent > len(blob):          # the server reads slower: wait, keep it full
                    await asyncio.sleep(0.01)
                    continue
                client.send_nowait(blob)               # as fast as TCP takes it
                stats["flood_bytes"] += len(blob)
                await asyncio.sleep(0)
            stats["flood_connections"] += 1
        except (OSError, ConnectionError):
            stats["flood_connections"] += 1
        finally:
            await client.close(abort=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def attack(args) -> None:
    """The attacker process: runs until a line (or EOF) on stdin or ``--attack-seconds``,
    then prints its counts."""
    stats: collections.Counter[str] = collections.Counter()
    stop = asyncio.Event()
    rng = random.Random(args.seed)
    tasks = [asyncio.create_task(intruder(args.port, random.Random(rng.random()), stats, stop,
                                          args.reconnect_delay, args.max_connections))
             for _ in range(args.intruders)]
    tasks += [asyncio.create_task(flooder(args.port, i, stats, stop)) for i in range(args.flooders)]
    print(json.dumps({"started": len(tasks)}), flush=True)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.to_thread(sys.stdin.readline), args.attack_seconds)
    stats["running_at_stop"] = sum(1 for t in tasks if not t.done())
    stop.set()
    _, late = await asyncio.wait(tasks, timeout=10)
    for task in late:
        task.cancel()
    print(json.dumps(dict(stats)), flush=True)


async def wave(server: ServerProcess, port: int, name: str, base: int, callers: int) -> tuple[dict, float, float]:
    """Register and run ``callers`` real callers; (report, start, end)."""
    await server.ask(f"WAVE {name} {base} {callers}")
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.5
    late: list[float] = []
    started = time.monotonic()
    await asyncio.gather(*(real_caller(port, uuid.UUID(int=base + i), caller_audio(i), t0 + i * STAGGER, late)
                           for i in range(callers)))
    report = await server.ask(f"REPORT {name}")
    report["sender_late"] = max(late)
    return report, started, time.monotonic()


def recognised(report: dict, callers: int) -> tuple[int, int, int]:
    """(callers served to the end, callers with every phrase right, phrases right)."""
    served = exact = phrases = 0
    for i, call in enumerate(report["calls"]):
        expected = [item["text"] for item in script(i)]
        served += call["failed"] is None and len(call["finals"]) >= len(expected)
        exact += call["finals"][:len(expected)] == expected
        phrases += sum(1 for want, got in zip(expected, call["finals"]) if want == got)
    return served, exact, phrases


async def drive(args) -> None:
    log_path = Path(tempfile.mkstemp(prefix="audiosocket-hostile-", suffix=".log")[1])
    server = ServerProcess(args, log_path)
    stop_sampling = asyncio.Event()
    attacker: subprocess.Popen | None = None
    try:
        port = (await server.answer(120))["ready"]
        sampling = asyncio.create_task(server.sampling(stop_sampling))
        print(f"machine: {os.cpu_count()} cores; server pid {server.proc.pid}, log {log_path}", flush=True)

        base_report, b0, b1 = await wave(server, port, "baseline", BASELINE, args.callers)
        await asyncio.sleep(2.0)
        idle_start = time.monotonic()
        await asyncio.sleep(2.0)
        idle = server.window(idle_start, time.monotonic())

        await server.ask(f"FLOOD {FLOOD} {args.flooders * FLOOD_ROUNDS}")
        attacker = subprocess.Popen(
            [sys.executable, "-m", "bench.audiosocket_hostile", "--attack", "--port", str(port),
             "--intruders", str(args.intruders), "--flooders", str(args.flooders),
             "--reconnect-delay", str(args.reconnect_delay), "--max-connections", str(args.max_connections),
             "--seed", str(args.seed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=server.log, text=True)
        assert attacker.stdout is not None and attacker.stdin is not None
        await asyncio.to_thread(attacker.stdout.readline)
        attack_start = time.monotonic()
        await asyncio.sleep(2.0)
        attack_report, a0, a1 = await wave(server, port, "attack", ATTACK, args.callers)
        under_attack = server.window(attack_start, time.monotonic())
        during_callers = server.window(a0, a1)
        baseline = server.window(b0, b1)

        sent = time.monotonic()
        shutdown = await server.ask("SHUTDOWN", timeout=60)
        answered = time.monotonic() - sent
        exit_code = await asyncio.to_thread(server.proc.wait, 60)
        exited = time.monotonic() - sent
        stopped = time.monotonic()
        attacker.stdin.write("stop\n")
        attacker.stdin.flush()
        stats = collections.Counter(json.loads(await asyncio.to_thread(attacker.stdout.readline)))
        await asyncio.to_thread(attacker.wait, 30)
        attacks_running = stats["running_at_stop"]
        stop_sampling.set()
        await sampling
    finally:
        stop_sampling.set()
        for proc in (server.proc, attacker) if attacker is not None else (server.proc,):
            if proc.poll() is None:
                proc.kill()
        server.log.close()

    served_b, exact_b, phrases_b = recognised(base_report, args.callers)
    served_a, exact_a, phrases_a = recognised(attack_report, args.callers)
    same = sum(1 for a, b in zip(attack_report["calls"], base_report["calls"]) if a["finals"] == b["finals"])
    attack_seconds = stopped - attack_start
    n_phrases = 3 * args.callers
    refused = shutdown["refused"]
    floods = shutdown["floods"]
    print(f"real callers (of {args.callers}; 3 phrases each, streamed in real time):")
    print(f"  baseline:     served to the end {served_b}, every phrase right {exact_b}, "
          f"phrases right {phrases_b}/{n_phrases}, sender late {1000 * base_report['sender_late']:.0f} ms")
    print(f"  under attack: served to the end {served_a}, every phrase right {exact_a}, "
          f"phrases right {phrases_a}/{n_phrases}, sender late {1000 * attack_report['sender_late']:.0f} ms, "
          f"stream failures {dict(collections.Counter(c['failed'] for c in attack_report['calls'] if c['failed']))}, "
          f"transcripts the same as in the baseline {same}/{args.callers}")
    print(f"hostile connections ({args.intruders} with unknown UUIDs reconnecting"
          f"{'' if not args.reconnect_delay else f' after {args.reconnect_delay} s'}, {args.flooders} flooders):")
    print(f"  unknown UUIDs: {stats['refused']} connections in {attack_seconds:.0f} s "
          f"({stats['refused'] / attack_seconds:.0f}/s) refused ({stats['refused_within_1s']} within 1 s), "
          f"{stats['held_30s']} held 30 s, {stats['connect_failed']} connects failed; server counts: {refused}")
    print(f"  floods: {stats['flood_connections']} connections, {stats['flood_bytes'] / 1e6:.0f} MB sent, "
          f"{floods.get('connected', 0)} reached a call, {floods.get('failed_flood', 0)} failed as flood, "
          f"{stats['flood_not_dropped_20s']} not let go within 20 s; server: {floods}")
    print(f"  decoded in all: {shutdown['decoded_seconds']:.0f} s of audio "
          f"(the real callers sent {2 * args.callers * len(caller_audio(0)) / 16000:.0f} s)")
    print(f"server RSS: idle {idle['rss_mean']:.0f} MB; baseline callers peak {baseline['rss_peak']:.0f} MB; "
          f"under attack peak {under_attack['rss_peak']:.0f} MB "
          f"({100 * (under_attack['rss_peak'] / idle['rss_mean'] - 1):+.1f}% vs idle, "
          f"{100 * (under_attack['rss_peak'] / baseline['rss_peak'] - 1):+.1f}% vs the baseline callers)")
    print(f"server CPU (% of one core): idle {idle['cpu_pct']:.0f}%, baseline callers {baseline['cpu_pct']:.0f}%, "
          f"callers under attack {during_callers['cpu_pct']:.0f}%, whole attack {under_attack['cpu_pct']:.0f}%")
    print(f"shutdown with {attacks_running} attackers still running: server.close() {shutdown['server_close']:.2f} s, "
          f"pool.close() {shutdown['pool_close']:.2f} s, answered in {answered:.2f} s, process exited "
          f"(code {exit_code}) in {exited:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--attack", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--attack-seconds", type=float, default=180.0,
                        help="the attacker stops after this long whatever happens")
    parser.add_argument("--callers", type=int, default=20)
    parser.add_argument("--intruders", type=int, default=30, help="connections with unknown UUIDs")
    parser.add_argument("--flooders", type=int, default=10)
    parser.add_argument("--reconnect-delay", type=float, default=0.0,
                        help="seconds an intruder waits before it reconnects")
    parser.add_argument("--max-connections", type=int, default=20000, help="per intruder")
    parser.add_argument("--workers", type=int, default=0, help="decoding threads (0: one per core)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    configure_logging("console", logging.WARNING)
    if args.serve:
        asyncio.run(serve(args))
    elif args.attack:
        asyncio.run(attack(args))
    else:
        asyncio.run(drive(args))


if __name__ == "__main__":
    main()
