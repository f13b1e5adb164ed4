"""Routing accuracy on the labelled utterances, and the evaluation tool itself
(manifests, character error rate, audio lines, per-line JSON)."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import pytest

from routing import default_knowledge
from routing.evaluate import (
    ManifestError,
    cer,
    evaluate_manifest,
    levenshtein,
    parse_manifest,
    run_eval,
)

DATA = Path(__file__).parent / "data"
MIN_ACCURACY = 0.95          # the target, on each part separately
MAX_WRONG_WITHOUT_CONFIRMATION = 0.02


@pytest.fixture(scope="module")
def kb():
    return default_knowledge()


def _lines(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def test_labelled_set_is_large_and_covers_every_department(kb):
    lines = _lines("utterances.jsonl")
    assert len(lines) >= 300
    kinds = Counter(line["kind"] for line in lines)
    assert set(kinds) == {"clean", "asr_error"} and kinds["asr_error"] >= 100
    for department in kb.departments:
        for kind in ("clean", "asr_error"):
            assert any(l["intent"] == department and l["kind"] == kind for l in lines), (department, kind)
    for line in lines:
        assert line.get("kb") is None or line["kb"] in kb.items, line
    held_out = _lines("utterances_holdout.jsonl") + _lines("utterances_holdout2.jsonl")
    assert len(held_out) >= 60
    assert not {l["text"] for l in held_out} & {l["text"] for l in lines}


@pytest.mark.parametrize("name", ["utterances.jsonl", "utterances_holdout.jsonl", "utterances_holdout2.jsonl"])
def test_routing_accuracy(kb, name):
    summary = evaluate_manifest(DATA / name, knowledge=kb).summary()
    for kind, part in summary["by_kind"].items():
        assert part["accuracy"] >= MIN_ACCURACY, (name, kind, part)
    assert summary["accuracy"] >= MIN_ACCURACY
    # Sending a caller to the wrong queue without asking is the costly error.
    assert summary["wrong_without_confirmation"] <= MAX_WRONG_WITHOUT_CONFIRMATION * summary["lines"]


def test_levenshtein_and_cer():
    assert levenshtein("", "") == 0
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("公积金", "公基金") == 1
    assert levenshtein("营业执照", "营执照") == 1
    assert cer("我想问一下公积金怎么提取", "我 想 问 一下 公 基金 怎么 提取") == pytest.approx(1 / 12)
    assert cer("社保", "") == 1.0
    assert cer("", "") == 0.0 and cer("", "啊") == 1.0
    assert cer("社保", "社保卡丢了") == pytest.approx(3 / 2)   # insertions count: CER can exceed 1


def test_manifest_problems_name_the_line(kb):
    text = "\n".join([
        json.dumps({"text": "公积金", "intent": "housing_fund"}),
        "{not json",
        json.dumps({"text": "x"}),
        json.dumps({"text": "x", "audio": "a.wav", "intent": "tax"}),
        json.dumps({"text": "x", "intent": "nonsense"}),
    ])
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, "m.jsonl", kb.departments)
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == ["line 2", "line 3", "line 4", "line 5"]
    assert "intent" in problems[1] and "exactly one" in problems[2] and "nonsense" in problems[3]


def _manifest(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "manifest.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def test_audio_lines_without_a_recogniser_are_skipped_with_a_reason(tmp_path, kb):
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    path = _manifest(tmp_path, [
        {"audio": "a.wav", "intent": "housing_fund", "reference": "公积金怎么提取"},
        {"text": "社保卡丢了", "intent": "social_security"},
    ])
    report = evaluate_manifest(path, knowledge=kb)
    summary = report.summary()
    assert summary["skipped"] == 1 and summary["lines"] == 1 and summary["accuracy"] == 1.0
    assert "no recogniser" in report.lines[0].skipped


def test_audio_lines_go_through_the_given_recogniser(tmp_path, kb):
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    (tmp_path / "b.wav").write_bytes(b"RIFF")
    heard = {"a.wav": "公 基金 怎么 提取", "b.wav": "设 保 怎么 交"}
    calls = []

    def transcribe(path: str) -> str:
        calls.append(path)
        if path.endswith("b.wav"):
            raise RuntimeError("decoder crashed")
        return heard[Path(path).name]

    path = _manifest(tmp_path, [
        {"audio": "a.wav", "intent": "housing_fund", "reference": "公积金怎么提取", "kind": "audio"},
        {"audio": "b.wav", "intent": "social_security"},
        {"audio": "missing.wav", "intent": "tax"},
    ])
    report = evaluate_manifest(path, knowledge=kb, transcribe=transcribe)
    assert calls == [str(tmp_path / "a.wav"), str(tmp_path / "b.wav")]
    first = report.lines[0]
    assert first.correct and first.cer == pytest.approx(1 / 7)
    assert "decoder crashed" in report.lines[1].skipped
    assert "not found" in report.lines[2].skipped
    summary = report.summary()
    assert summary["cer"]["overall"] == pytest.approx(1 / 7)
    assert summary["by_kind"]["audio"]["accuracy"] == 1.0


def test_run_eval_prints_report_or_json_lines(tmp_path, kb):
    path = _manifest(tmp_path, [
        {"text": "我想问一下公积金怎么提取", "intent": "housing_fund", "kind": "clean", "kb": "housing_fund.withdraw_general"},
        {"text": "设 保 怎么 交", "intent": "social_security", "kind": "asr_error", "reference": "社保怎么交"},
        {"text": "买房子的契税在哪里交", "intent": "tax", "kind": "clean"},
        {"text": "今天天气怎么样", "intent": "general", "kind": "clean"},
    ])
    out = io.StringIO()
    assert run_eval(path, out=out, knowledge=kb) == 0
    text = out.getvalue()
    assert "accuracy 75.0% (3/4)" in text
    assert "confusion" in text and "character error rate" in text and "misrouted" in text
    assert run_eval(path, out=io.StringIO(), knowledge=kb, min_accuracy=0.9) == 1

    out = io.StringIO()
    assert run_eval(path, as_json=True, out=out, knowledge=kb) == 0
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(rows) == 4
    assert rows[0]["input"]["text"] == "我想问一下公积金怎么提取"
    assert rows[0]["decision"]["department"] == "housing_fund" and rows[0]["correct"] is True
    assert rows[0]["kb_correct"] is True
    assert rows[1]["cer"] == pytest.approx(0.2)
    assert rows[3]["correct"] is False and rows[3]["decision"]["action"] == "reprompt"

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x"}\n', encoding="utf-8")
    err = io.StringIO()
    assert run_eval(bad, out=io.StringIO(), err=err, knowledge=kb) == 2
    assert "line 1" in err.getvalue()
