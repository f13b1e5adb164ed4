"""Concurrent real-time callers through the speech engine, on this machine.

Every round runs two processes: a *server* (the real AudioSocket server and
recogniser pool, or the naive design below) and a *sender* that plays Asterisk:
N connections, each sending 320-byte frames paced at 20 ms on an absolute
schedule, like a phone line, for ``--seconds`` of call audio (the generated
Korean test phrases, one after another, each stream starting at a different
phrase). Both share the monotonic clock, so lateness is measured against the
schedule the sender keeps. Printed per round:

* real-time factor per stream: worker-thread CPU seconds per second of audio;
* CPU per stream: the server process's CPU (all threads, event loop included)
  divided by wall time and N, in % of one core;
* memory: peak RSS of the server process, the model's share, and
  (peak - RSS after the model was loaded) / N per stream;
* lag: how far decoding got behind the schedule (worst stream); a stream that
  is more than ``--behind`` seconds behind at any time "falls behind real time";
* decision latency: from the arrival of the audio in which Vosk's endpoint
  fired to the intent router's decision in the call's owner (p50/p95). The
  test model is Korean, so the router is given a Mandarin caller utterance
  from tests/data/utterances.jsonl in place of each Korean final: the
  decision costs what a Mandarin one costs.

Designs:
* ``pool``: this project: asyncio AudioSocket server, one CallSession per call,
  decoding in ``--workers`` threads (default: one per core), frames coalesced
  when decoding lags, partial results every 0.2 s of audio.
* ``naive``: one thread per call with a blocking socket, the recogniser fed
  frame by frame in that thread, a partial result asked for after every frame
  (as in most Vosk examples).

Modes: ``grammar`` (the menu's 12 phrases, how the voice menu listens) and
``free`` (the model's full vocabulary).

    .venv/bin/python -m bench.asr_streams                      # everything, about 15 minutes
    .venv/bin/python -m bench.asr_streams --design pool --mode grammar --streams 20,40 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from asr.audio import read_pcm
from asr.audiosocket import AudioSocketServer, Ended, FrameDecoder, Kind
from asr.audiosocket.framing import encode, uuid_frame
from asr.engine import Final, RecognizerPool, bundled_test_model_path, load_model
from asr.engine.recognizer import grammar_json
from hotline.settings import AsrSettings
from hotline.logs import configure_logging

AUDIO = Path(__file__).resolve().parent.parent / "tests" / "data" / "audio"
FRAME = 320
FRAME_SECONDS = 0.02
STAGGER = 0.0537           # seconds between the starts of consecutive calls (spreads starts and phases)


# ----- shared -----------------------------------------------------------------

def clean_items() -> list[dict]:
    lines = (AUDIO / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [item for item in map(json.loads, lines) if item["audio"].startswith("clean/")]


def menu_phrases() -> list[str]:
    return sorted({item["text"] for item in clean_items()})


def call_audio(index: int, seconds: float) -> bytes:
    """The phrases one after another, starting at phrase ``index``, cut to length."""
    pieces = [read_pcm(AUDIO / item["audio"]) for item in clean_items()]
    pieces = pieces[index % len(pieces):] + pieces[:index % len(pieces)]
    needed = int(seconds * 16000) // FRAME * FRAME
    pcm = b""
    while len(pcm) < needed:
        pcm += b"".join(pieces)
    return pcm[:needed]


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def stream_start(t0: float, index: int) -> float:
    return t0 + index * STAGGER


def settings_for(args) -> AsrSettings:
    return AsrSettings(model_path=str(bundled_test_model_path()), workers=args.workers,
                       max_streams=max(args.streams, 1), spare_recognizers=args.streams,
                       audiosocket_port=0, max_lag=1e9)


MEASURED = 100_000          # UUIDs of the measured wave start here; the warm-up wave's at 1


def waves(args) -> list[tuple[int, float]]:
    """(first UUID number, seconds of audio) per wave of N calls: an unmeasured
    warm-up wave (a long-running server has warm recognisers), then the measured
    one. Each wave starts when the previous one has ended; the orchestrator sends
    its start time to both processes."""
    if args.warmup <= 0:
        return [(MEASURED, args.seconds)]
    return [(1, args.warmup), (MEASURED, args.seconds)]


def read_start() -> float:
    return float(sys.stdin.readline())


# ----- sender: plays Asterisk ---------------------------------------------------

async def sender(args) -> None:
    loop = asyncio.get_running_loop()
    cpu0 = cpu_seconds()
    lateness: list[float] = []

    async def one(index: int, base: int, t0: float, seconds: float) -> None:
        audio = call_audio(index, seconds)
        await asyncio.sleep(max(0.0, t0 - 0.3 - loop.time()))
        reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        writer.write(uuid_frame(uuid.UUID(int=base + index)))
        start = stream_start(t0, index)
        worst = 0.0
        for k in range(len(audio) // FRAME):
            due = start + k * FRAME_SECONDS
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            worst = max(worst, loop.time() - due)
            writer.write(encode(Kind.AUDIO, audio[k * FRAME:(k + 1) * FRAME]))
            if k % 50 == 49:
                await writer.drain()
        await writer.drain()
        writer.close()                       # the caller hangs up: EOF, as Asterisk does
        if base == MEASURED:
            lateness.append(worst)

    for base, seconds in waves(args):
        t0 = await asyncio.to_thread(read_start)
        await asyncio.gather(*(one(i, base, t0, seconds) for i in range(args.streams)))
    print(json.dumps({"sender_cpu": cpu_seconds() - cpu0, "sender_worst_late": max(lateness)}))


# ----- server: the project's design ---------------------------------------------

async def serve_pool(args) -> dict:
    settings = settings_for(args)
    rss_start = rss_mb()
    pool = await RecognizerPool.start(settings)
    rss_model = rss_mb()
    server = AudioSocketServer(settings, pool)
    await server.start()
    print(f"READY {server.port}", flush=True)
    loop = asyncio.get_running_loop()
    grammar = menu_phrases() if args.mode == "grammar" else None
    for base, _ in waves(args)[:-1]:
        warmup = [server.session(uuid.UUID(int=base + i), call_id=f"warm-{i}", grammar=grammar)
                  for i in range(args.streams)]
        await asyncio.to_thread(read_start)
        for session in warmup:
            await session.wait_closed()
        print("NEXT", flush=True)
    sessions = [server.session(uuid.UUID(int=MEASURED + i), call_id=f"bench-{i}", grammar=grammar)
                for i in range(args.streams)]
    t0 = await asyncio.to_thread(read_start)
    latency_sched: list[float] = []
    latency_recv: list[float] = []
    ended: list[Ended] = []

    import concurrent.futures

    from ivr.menu.voice.service import ROUTING_THREADS
    from routing import default_knowledge, route
    knowledge = default_knowledge()
    embeddings = await asyncio.to_thread(knowledge.classifier.ready)   # None: loaded
    if embeddings:
        print(f"WARNING router without embeddings: {embeddings}", file=sys.stderr, flush=True)
    # As the voice menu decides (VoiceMenu.decide): in the router's worker threads.
    router = concurrent.futures.ThreadPoolExecutor(ROUTING_THREADS, thread_name_prefix="router")
    utterances = [json.loads(line)["text"] for line in
                  (AUDIO.parent / "utterances.jsonl").read_text(encoding="utf-8").splitlines()
                  if line.strip()]
    decided = [0]

    async def own(index: int, session) -> None:
        start = stream_start(t0, index)
        async for event in session:
            if isinstance(event, Final) and event.endpoint:
                text = utterances[decided[0] % len(utterances)]
                decided[0] += 1
                await loop.run_in_executor(router, route, text, knowledge)
                now = loop.time()
                latency_sched.append(now - (start + event.stream_time))
                latency_recv.append(now - event.received_at)
            elif isinstance(event, Ended):
                ended.append(event)

    peak = [rss_mb()]
    loop_lag = [0.0]
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(0.1)
            loop_lag[0] = max(loop_lag[0], loop.time() - before - 0.1)
            peak[0] = max(peak[0], rss_mb())

    reused_before = pool.reused
    await asyncio.sleep(max(0.0, t0 - loop.time()))
    sampler = asyncio.create_task(sample())
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    await asyncio.gather(*(own(i, s) for i, s in enumerate(sessions)))
    cpu, wall = cpu_seconds() - cpu0, time.monotonic() - max(wall0, t0)
    done.set()
    await sampler
    streams = [{"rtf": s.stream.decode_seconds / max(1e-9, s.audio_frames_in * FRAME_SECONDS),
                "lag": s.max_lag, "frames": s.audio_frames_in} for s in sessions if s.stream is not None]
    if len(streams) < len(sessions):
        raise RuntimeError(f"{len(sessions) - len(streams)} calls got no recogniser")
    reused = pool.reused - reused_before
    await server.close()
    await pool.close()
    return {"streams": streams, "cpu": cpu, "wall": wall, "rss_start": rss_start, "rss_model": rss_model,
            "rss_peak": peak[0], "latency_sched": latency_sched, "latency_recv": latency_recv,
            "loop_lag": loop_lag[0], "ended": sorted({e.reason for e in ended}), "reused": reused}


# ----- server: the naive design ---------------------------------------------------

def serve_naive(args) -> dict:
    import vosk

    settings = settings_for(args)
    rss_start = rss_mb()
    model = load_model(settings)
    rss_model = rss_mb()
    grammar = grammar_json(menu_phrases()) if args.mode == "grammar" else None
    listener = socket.create_server(("127.0.0.1", 0))
    print(f"READY {listener.getsockname()[1]}", flush=True)
    plan = waves(args)
    starts: dict[int, float] = {}
    results: list[dict] = []
    latency: list[float] = []
    lock = threading.Lock()

    def call(conn: socket.socket) -> None:
        rec = (vosk.KaldiRecognizer(model.vosk_model, 8000, grammar) if grammar
               else vosk.KaldiRecognizer(model.vosk_model, 8000))
        rec.SetWords(True)
        decoder, start, k, worst, cpu0, measured = FrameDecoder(), 0.0, -1, 0.0, time.thread_time(), False
        mine: list[float] = []
        while data := conn.recv(65536):
            for frame in decoder.feed(data):
                if frame.kind is Kind.UUID:
                    number = frame.uuid().int
                    measured = number >= MEASURED
                    base = MEASURED if measured else 1
                    start = stream_start(starts[base], number - base)
                elif frame.kind is Kind.AUDIO:
                    k += 1
                    if rec.AcceptWaveform(frame.payload):
                        rec.Result()
                        mine.append(time.monotonic() - (start + k * FRAME_SECONDS))
                    else:
                        rec.PartialResult()
                    worst = max(worst, time.monotonic() - (start + k * FRAME_SECONDS))
        rec.FinalResult()
        conn.close()
        if not measured:
            return
        with lock:
            results.append({"rtf": (time.thread_time() - cpu0) / max(1e-9, (k + 1) * FRAME_SECONDS),
                            "lag": max(0.0, worst), "frames": k + 1})
            latency.extend(mine)

    peak = [rss_mb()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            peak[0] = max(peak[0], rss_mb())

    threads: list[threading.Thread] = []
    for wave, (base, _) in enumerate(plan):
        if wave:
            for thread in threads:
                thread.join()
            threads = []
            print("NEXT", flush=True)
        starts[base] = read_start()
        if wave == len(plan) - 1:
            threading.Thread(target=sample, daemon=True).start()
            cpu0, wall0 = cpu_seconds(), time.monotonic()
        for _ in range(args.streams):
            conn, _ = listener.accept()
            thread = threading.Thread(target=call, args=(conn,))
            thread.start()
            threads.append(thread)
    for thread in threads:
        thread.join()
    cpu, wall = cpu_seconds() - cpu0, time.monotonic() - max(wall0, starts[MEASURED])
    stop.set()
    return {"streams": results, "cpu": cpu, "wall": wall, "rss_start": rss_start, "rss_model": rss_model,
            "rss_peak": peak[0], "latency_sched": latency, "latency_recv": latency, "loop_lag": 0.0,
            "ended": ["eof"], "reused": 0}


# ----- GIL check --------------------------------------------------------------------

def gil_check() -> dict:
    """Does vosk release the GIL? Decode the same audio in 1 thread, then in 2
    threads at once (separate recognisers); and count pure-Python loop turns on
    the main thread alone and while a decode thread runs."""
    import vosk

    model = load_model(AsrSettings(model_path=str(bundled_test_model_path())))
    audio = call_audio(0, 15.0)

    def decode() -> None:
        rec = vosk.KaldiRecognizer(model.vosk_model, 8000)
        for k in range(0, len(audio), FRAME):
            rec.AcceptWaveform(audio[k:k + FRAME])
        rec.FinalResult()

    started = time.perf_counter()
    decode()
    one = time.perf_counter() - started
    threads = [threading.Thread(target=decode) for _ in range(2)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    two = time.perf_counter() - started

    def spin(seconds: float) -> int:
        n, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            n += 1
        return n

    alone = spin(2.0)
    worker = threading.Thread(target=decode)
    worker.start()
    busy = spin(min(2.0, one * 0.8))
    busy_rate = busy / min(2.0, one * 0.8)
    worker.join()
    return {"one_thread": one, "two_threads": two, "python_alone": alone / 2.0, "python_during": busy_rate,
            "audio_seconds": len(audio) / 16000}


# ----- orchestration ----------------------------------------------------------------

def run_round(design: str, mode: str, streams: int, args) -> dict:
    seconds = args.seconds + args.warmup
    common = ["--design", design, "--mode", mode, "--streams", str(streams), "--seconds", str(args.seconds),
              "--workers", str(args.workers), "--warmup", str(args.warmup)]
    server = subprocess.Popen([sys.executable, "-m", "bench.asr_streams", "_server", *common],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              stderr=subprocess.PIPE)
    line = server.stdout.readline()
    if not line.startswith("READY"):
        raise RuntimeError(f"server did not start: {line!r}")
    port = int(line.split()[1])
    sender = subprocess.Popen([sys.executable, "-m", "bench.asr_streams", "_sender", *common, "--port", str(port)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    for wave in range(len(waves(args))):
        if wave:
            line = server.stdout.readline()
            if line.strip() != "NEXT":
                raise RuntimeError(f"server: {line!r}")
        t0 = time.monotonic() + 0.5
        for proc in (server, sender):
            proc.stdin.write(f"{t0}\n")
            proc.stdin.flush()
    sender_out, _ = sender.communicate(timeout=seconds * 10 + 60)
    out, err = server.communicate(timeout=seconds * 10 + 60)
    if server.returncode or not out.strip():
        raise RuntimeError(f"server round failed (exit {server.returncode}):\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(json.loads(sender_out.strip().splitlines()[-1]))
    return result


def summarise(r: dict, streams: int, behind: float) -> dict:
    rtf = [s["rtf"] for s in r["streams"]]
    lags = [s["lag"] for s in r["streams"]]
    return {
        "n": streams,
        "rtf_p50": statistics.median(rtf), "rtf_max": max(rtf),
        "cpu_per_stream_pct": 100 * r["cpu"] / r["wall"] / streams,
        "cpu_total_pct": 100 * r["cpu"] / r["wall"],
        "sender_cpu_pct": 100 * r["sender_cpu"] / r["wall"],
        "rss_peak": r["rss_peak"], "model_mb": r["rss_model"] - r["rss_start"],
        "mem_per_stream": (r["rss_peak"] - r["rss_model"]) / streams,
        "lag_worst": max(lags), "lag_p50": statistics.median(lags),
        "behind": sum(1 for lag in lags if lag > behind),
        "lat_p50": pct(r["latency_sched"], 0.5), "lat_p95": pct(r["latency_sched"], 0.95),
        "lat_recv_p95": pct(r["latency_recv"], 0.95), "finals": len(r["latency_sched"]),
        "loop_lag": r["loop_lag"], "sender_late": r["sender_worst_late"], "ended": r["ended"],
        "reused": r["reused"],
    }


def print_row(design: str, mode: str, s: dict) -> None:
    print(f"{design:5} {mode:7} N={s['n']:3d}  rtf p50 {s['rtf_p50']:.3f} max {s['rtf_max']:.3f}  "
          f"cpu/stream {s['cpu_per_stream_pct']:5.1f}% (server {s['cpu_total_pct']:5.1f}%, "
          f"sender {s['sender_cpu_pct']:4.1f}%)  mem/stream {s['mem_per_stream']:6.1f} MB  "
          f"RSS {s['rss_peak']:6.0f} MB (model {s['model_mb']:.0f})  lag worst {s['lag_worst']:6.3f} s  "
          f"behind {s['behind']:3d}  decision p50 {1000 * s['lat_p50']:6.1f} ms p95 "
          f"{1000 * s['lat_p95']:7.1f} ms ({s['finals']} finals)  loop lag {1000 * s['loop_lag']:.0f} ms  "
          f"sender late {1000 * s['sender_late']:.0f} ms  reused {s['reused']}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", nargs="?", default="bench", choices=["bench", "_server", "_sender"])
    parser.add_argument("--design", default="pool,naive")
    parser.add_argument("--mode", default="grammar,free")
    parser.add_argument("--streams", default="")
    parser.add_argument("--seconds", type=float, default=20.0, help="audio per measured call")
    parser.add_argument("--warmup", type=float, default=8.0,
                        help="audio per call of the unmeasured warm-up wave (0: start cold)")
    parser.add_argument("--workers", type=int, default=0, help="decoding threads (0: one per core)")
    parser.add_argument("--behind", type=float, default=0.5,
                        help="a stream this many seconds behind real time has fallen behind")
    parser.add_argument("--latency-streams", type=int, default=20)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--skip-gil", action="store_true")
    args = parser.parse_args()
    configure_logging("console", logging.WARNING)     # to stderr; stdout carries results

    if args.role == "_sender":
        args.streams = int(args.streams)
        asyncio.run(sender(args))
        return
    if args.role == "_server":
        import vosk

        vosk.SetLogLevel(-1)
        args.streams = int(args.streams)
        result = asyncio.run(serve_pool(args)) if args.design == "pool" else serve_naive(args)
        print(json.dumps(result))
        return

    print(f"machine: {os.cpu_count()} cores; per round: a warm-up wave of N calls ({args.warmup:.0f} s "
          f"audio each), then N measured calls of {args.seconds:.0f} s; 20 ms frames, paced")
    if not args.skip_gil:
        g = gil_check()
        print(f"GIL: one decode of {g['audio_seconds']:.0f} s audio {g['one_thread']:.2f} s; two at once in two "
              f"threads {g['two_threads']:.2f} s (x{g['two_threads'] / g['one_thread']:.2f}); pure-Python loop "
              f"{g['python_during'] / g['python_alone']:.0%} of its speed while a decode thread runs", flush=True)
    sweeps = {"grammar": [10, 20, 30, 40, 50, 60, 70, 80, 90, 100], "free": [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]}
    summary = []
    for mode in args.mode.split(","):
        for design in args.design.split(","):
            counts = [int(n) for n in args.streams.split(",")] if args.streams else sweeps[mode]
            if args.latency_streams not in counts:
                counts = sorted({*counts, args.latency_streams})
            best, at_latency, failed = 0, None, False
            for n in counts:
                if failed and n != args.latency_streams:
                    continue
                s = summarise(run_round(design, mode, n, args), n, args.behind)
                print_row(design, mode, s)
                if n == args.latency_streams:
                    at_latency = s
                if s["behind"]:
                    failed = True
                    if n >= args.latency_streams:
                        break
                elif not failed:
                    best = n
            summary.append((design, mode, best, at_latency))
    print("\nsummary (largest N tried with no stream behind real time; decision latency at "
          f"{args.latency_streams} callers):")
    for design, mode, best, s in summary:
        lat = (f"p50 {1000 * s['lat_p50']:.0f} ms, p95 {1000 * s['lat_p95']:.0f} ms"
               + ("" if not s["behind"] else f" ({s['behind']} streams behind)")) if s else "n/a"
        print(f"  {design:5} {mode:7} max N = {best:3d}   decision latency {lat}")


if __name__ == "__main__":
    main()
