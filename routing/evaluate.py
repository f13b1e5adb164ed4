"""Measure the router (and, given a recogniser, recognition + routing) on a JSONL
manifest, and explain single decisions. Both need no database: they use the
knowledge files in the repository.

Manifest: one JSON object per line, ``{"text": ...}`` or ``{"audio": path}``
(relative paths are relative to the manifest), ``"intent"`` (a department code,
or null for "should not be placed"), and optionally ``"reference"`` (the true
transcript: character error rate), ``"kind"`` (a label to group accuracy by,
e.g. clean / asr_error), ``"kb"`` (the expected knowledge item).

For audio lines pass ``transcribe(path) -> str`` (the ASR engine's); without it
audio lines are reported as skipped, with the reason.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TextIO

from asr.engine.scoring import edit_distance
from routing import thresholds as T
from routing.decision import Action, Decision
from routing.index import Knowledge, default_knowledge
from routing.router import route
from routing.text import normalize

Transcribe = Callable[[str], str]
NONE_LABEL = "(none)"


class ManifestError(ValueError):
    def __init__(self, source: str, problems: Sequence[str]):
        self.source = source
        self.problems = list(problems)
        super().__init__(f"{source}: " + "; ".join(self.problems[:20]))


# ------------------------------------------------------------------ CER

# One edit distance for the whole project: the recogniser's scoring owns it.
levenshtein = edit_distance


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of ``hypothesis`` against ``reference``: edits /
    reference length, after normalising both (spaces and punctuation ignored:
    a recogniser's word spacing is not an error). Empty reference: 0 if the
    hypothesis is empty too, else 1."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return levenshtein(ref, hyp) / len(ref)


# ------------------------------------------------------------------ manifest

def parse_manifest(text: str, source: str, departments: Iterable[str]) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; all problems at once."""
    known = set(departments)
    out, problems = [], []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: not JSON ({exc.msg})")
            continue
        if not isinstance(data, dict):
            problems.append(f"line {number}: expected an object")
            continue
        has_text, has_audio = isinstance(data.get("text"), str), isinstance(data.get("audio"), str)
        if has_text == has_audio:
            problems.append(f"line {number}: needs exactly one of \"text\" or \"audio\"")
        if "intent" not in data:
            problems.append(f"line {number}: \"intent\" is missing")
        elif data["intent"] is not None and data["intent"] not in known:
            problems.append(f"line {number}: intent {data['intent']!r} is not a department")
        if "reference" in data and not isinstance(data["reference"], str):
            problems.append(f"line {number}: \"reference\" must be text")
        out.append((number, data))
    if problems:
        raise ManifestError(source, problems)
    return out


def read_manifest(path: str | Path, departments: Iterable[str]) -> list[tuple[int, dict[str, Any]]]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(str(path), [f"cannot be read: {exc}"]) from exc
    return parse_manifest(text, str(path), departments)


# ------------------------------------------------------------------ results

@dataclass
class LineResult:
    line: int
    input: dict[str, Any]
    kind: str
    expected: str | None
    transcript: str | None = None
    decision: Decision | None = None
    latency_ms: float | None = None
    cer: float | None = None
    cer_edits: int | None = None
    cer_length: int | None = None
    skipped: str | None = None

    @property
    def got(self) -> str | None:
        return self.decision.department if self.decision else None

    @property
    def correct(self) -> bool | None:
        return None if self.decision is None else self.got == self.expected

    @property
    def kb_correct(self) -> bool | None:
        if self.decision is None or not self.input.get("kb"):
            return None
        return self.decision.item == self.input["kb"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "line": self.line, "input": self.input, "kind": self.kind, "transcript": self.transcript,
            "expected": self.expected, "got": self.got, "correct": self.correct,
            "kb_correct": self.kb_correct,
            "cer": None if self.cer is None else round(self.cer, 4),
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3),
            "skipped": self.skipped,
            "decision": self.decision.to_dict() if self.decision else None,
        }


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


@dataclass
class Report:
    lines: list[LineResult] = field(default_factory=list)

    @property
    def evaluated(self) -> list[LineResult]:
        return [r for r in self.lines if r.decision is not None]

    @property
    def skipped(self) -> list[LineResult]:
        return [r for r in self.lines if r.decision is None]

    @staticmethod
    def _accuracy(rows: Sequence[LineResult]) -> dict[str, Any]:
        n = len(rows)
        correct = sum(1 for r in rows if r.correct)
        direct = sum(1 for r in rows if r.correct and r.decision.action in (Action.ROUTE, Action.SELF_SERVICE,
                                                                             Action.OPERATOR))
        wrong_confident = sum(1 for r in rows if not r.correct and r.decision.action in (
            Action.ROUTE, Action.SELF_SERVICE, Action.OPERATOR))
        # Confirmed the wrong department, but the one offered after the caller's no is right.
        second = sum(1 for r in rows if not r.correct and r.decision.action is Action.CONFIRM
                     and r.decision.alternative is not None and r.decision.alternative == r.expected)
        return {"lines": n, "correct": correct, "accuracy": correct / n if n else None,
                "correct_without_confirmation": direct, "wrong_without_confirmation": wrong_confident,
                "right_at_second_offer": second}

    def summary(self) -> dict[str, Any]:
        rows = self.evaluated
        by_kind = {}
        for kind in sorted({r.kind for r in rows}):
            by_kind[kind] = self._accuracy([r for r in rows if r.kind == kind])
        kb_rows = [r for r in rows if r.kb_correct is not None]
        cer_rows = [r for r in rows if r.cer is not None]
        latencies = [r.latency_ms for r in rows if r.latency_ms is not None]
        by_action: dict[str, list[float]] = {}
        for r in rows:
            by_action.setdefault(r.decision.action.value, []).append(r.latency_ms)
        return {
            "total": len(self.lines),
            "skipped": len(self.skipped),
            "skip_reasons": dict(Counter(r.skipped for r in self.skipped)),
            **self._accuracy(rows),
            "by_kind": by_kind,
            "knowledge_item": {"lines": len(kb_rows), "correct": sum(1 for r in kb_rows if r.kb_correct),
                               "accuracy": (sum(1 for r in kb_rows if r.kb_correct) / len(kb_rows))
                               if kb_rows else None},
            "cer": {"lines": len(cer_rows),
                    "overall": (sum(r.cer_edits for r in cer_rows) / sum(r.cer_length for r in cer_rows))
                    if cer_rows and sum(r.cer_length for r in cer_rows) else None,
                    "mean": sum(r.cer for r in cer_rows) / len(cer_rows) if cer_rows else None},
            "actions": dict(Counter(r.decision.action.value for r in rows)),
            "latency_ms": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
                           "max": max(latencies) if latencies else None,
                           "by_action": {a: {"n": len(v), "p50": percentile(v, 50), "p95": percentile(v, 95)}
                                         for a, v in sorted(by_action.items())}},
            "confusion": self.confusion(),
            "thresholds": {"route": T.ROUTE, "confirm": T.CONFIRM},
        }

    def confusion(self) -> dict[str, dict[str, int]]:
        """expected → got → count (None shown as "(none)")."""
        table: dict[str, dict[str, int]] = {}
        for r in self.evaluated:
            row = table.setdefault(r.expected or NONE_LABEL, {})
            got = r.got or NONE_LABEL
            row[got] = row.get(got, 0) + 1
        return table


# ------------------------------------------------------------------ running

def evaluate_lines(lines: Iterable[tuple[int, Mapping[str, Any]]], *, knowledge: Knowledge | None = None,
                   transcribe: Transcribe | None = None, base_dir: str | Path | None = None) -> Report:
    knowledge = knowledge or default_knowledge()
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    report = Report()
    for number, data in lines:
        data = dict(data)
        result = LineResult(line=number, input=data, kind=str(data.get("kind") or ("audio" if "audio" in data
                                                                                     else "text")),
                            expected=data.get("intent"))
        report.lines.append(result)
        if "audio" in data:
            path = Path(data["audio"])
            path = path if path.is_absolute() else base / path
            if transcribe is None:
                result.skipped = "audio line and no recogniser given (transcribe=None)"
                continue
            if not path.exists():
                result.skipped = f"audio file not found: {path}"
                continue
            try:
                transcript = transcribe(str(path))
            except Exception as exc:  # the recogniser's failure is reported, not raised
                result.skipped = f"transcription failed: {type(exc).__name__}: {exc}"
                continue
        else:
            transcript = data["text"]
        result.transcript = transcript
        started = time.perf_counter()
        result.decision = route(transcript, knowledge)
        result.latency_ms = (time.perf_counter() - started) * 1000
        if isinstance(data.get("reference"), str):
            ref, hyp = normalize(data["reference"]), normalize(transcript)
            result.cer_length = len(ref)
            result.cer_edits = levenshtein(ref, hyp)
            result.cer = cer(data["reference"], transcript)
    return report


def evaluate_manifest(path: str | Path, *, knowledge: Knowledge | None = None,
                      transcribe: Transcribe | None = None) -> Report:
    knowledge = knowledge or default_knowledge()
    lines = read_manifest(path, knowledge.departments)
    return evaluate_lines(lines, knowledge=knowledge, transcribe=transcribe, base_dir=Path(path).parent)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def format_report(report: Report, *, title: str | None = None, departments: Sequence[str] | None = None) -> str:
    s = report.summary()
    out = []
    if title:
        out.append(title)
    out.append(f"lines {s['total']}, evaluated {s['lines']}, skipped {s['skipped']}")
    for reason, n in s["skip_reasons"].items():
        out.append(f"  skipped {n}: {reason}")
    out.append(f"accuracy {_pct(s['accuracy'])} ({s['correct']}/{s['lines']}); routed without confirmation "
               f"{s['correct_without_confirmation']} correct, {s['wrong_without_confirmation']} wrong; "
               f"confirmed wrong but right at the second offer {s['right_at_second_offer']}")
    for kind, k in s["by_kind"].items():
        out.append(f"  {kind:<10} {_pct(k['accuracy']):>7} ({k['correct']}/{k['lines']}), "
                   f"wrong without confirmation {k['wrong_without_confirmation']}")
    if s["knowledge_item"]["lines"]:
        kb = s["knowledge_item"]
        out.append(f"knowledge item {_pct(kb['accuracy'])} ({kb['correct']}/{kb['lines']} lines naming one)")
    if s["cer"]["lines"]:
        out.append(f"character error rate {_pct(s['cer']['overall'])} over {s['cer']['lines']} lines "
                   f"(mean per line {_pct(s['cer']['mean'])})")
    out.append("actions: " + ", ".join(f"{a} {n}" for a, n in sorted(s["actions"].items())))
    lat = s["latency_ms"]
    if lat["p50"] is not None:
        out.append(f"routing latency p50 {lat['p50']:.2f} ms, p95 {lat['p95']:.2f} ms, max {lat['max']:.2f} ms")
    out.append("")
    out.append(format_confusion(s["confusion"], departments))
    errors = [r for r in report.evaluated if not r.correct]
    if errors:
        out.append("")
        out.append("misrouted:")
        for r in errors:
            d = r.decision
            out.append(f"  line {r.line} [{r.kind}] {r.transcript!r}: expected {r.expected}, got {d.department} "
                       f"({d.action.value} {d.confidence:.2f}) {d.reason}")
    return "\n".join(out)


def format_confusion(table: Mapping[str, Mapping[str, int]], departments: Sequence[str] | None = None) -> str:
    """Rows: expected; columns: got (numbered, legend below)."""
    labels = list(departments or [])
    for row, cols in table.items():
        for label in [row, *cols]:
            if label not in labels:
                labels.append(label)
    labels = [l for l in labels if l != NONE_LABEL] + [NONE_LABEL]
    shown = [l for l in labels if l in table or any(l in cols for cols in table.values())]
    width = max(len(l) for l in shown) if shown else 8
    header = " " * (width + 2) + "".join(f"{i:>4}" for i in range(len(shown)))
    lines = ["confusion (rows expected, columns got):", header]
    for label in shown:
        if label not in table:
            continue
        cells = "".join(f"{table[label].get(col, 0) or '.':>4}" for col in shown)
        lines.append(f"{label:<{width}}  {cells}")
    lines.append("columns: " + ", ".join(f"{i} {l}" for i, l in enumerate(shown)))
    return "\n".join(lines)


# ------------------------------------------------------------------ operator tools

def explain_route(text: str, knowledge: Knowledge | None = None, *, attempt: int = 1,
                  menu: str = "main") -> dict[str, Any]:
    """The decision for ``hotline route "..."`` as a JSON-serialisable dict: the
    decision itself plus the department's name and queue and, for self-service,
    the answer that would be played."""
    knowledge = knowledge or default_knowledge()
    decision = route(text, knowledge, attempt=attempt, menu=menu)
    out = decision.to_dict()
    if decision.department:
        dept = knowledge.settings.department(decision.department)
        out["department_name"] = dept.name
        out["queue"] = dept.queue
    if decision.item:
        item = knowledge.items[decision.item]
        out["item_question"] = item.question
        if decision.action == Action.SELF_SERVICE:
            out["answer"] = item.answer
    return out


def run_route(text: str, *, out: TextIO | None = None, knowledge: Knowledge | None = None) -> int:
    """``hotline route TEXT``: print the decision as JSON; exit status 0."""
    out = out or sys.stdout
    print(json.dumps(explain_route(text, knowledge), ensure_ascii=False, indent=2), file=out)
    return 0


def run_eval(manifest: str | Path, *, as_json: bool = False, transcribe: Transcribe | None = None,
             out: TextIO | None = None, err: TextIO | None = None, knowledge: Knowledge | None = None,
             min_accuracy: float | None = None) -> int:
    """``hotline asr eval MANIFEST [--json]``: a report (or, with ``as_json``, one
    JSON object per input line). Exit status: 0; 1 if ``min_accuracy`` is given
    and not reached; 2 if the manifest is invalid."""
    out, err = out or sys.stdout, err or sys.stderr
    knowledge = knowledge or default_knowledge()
    try:
        report = evaluate_manifest(manifest, knowledge=knowledge, transcribe=transcribe)
    except ManifestError as exc:
        print(f"invalid manifest {exc.source}:", file=err)
        for problem in exc.problems:
            print(f"  {problem}", file=err)
        return 2
    if as_json:
        for line in report.lines:
            print(json.dumps(line.to_dict(), ensure_ascii=False), file=out)
    else:
        print(format_report(report, title=f"manifest {manifest}", departments=knowledge.departments), file=out)
    accuracy = report.summary()["accuracy"]
    if min_accuracy is not None and (accuracy is None or accuracy < min_accuracy):
        return 1
    return 0
