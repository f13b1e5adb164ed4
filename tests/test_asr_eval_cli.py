"""``hotline asr eval`` on audio: real Vosk (the Korean test model) decodes the
manifest's audio lines, the router decides, and the report has the character
error rate; without a model the audio lines say why they were skipped."""

from __future__ import annotations

import json
from pathlib import Path

from asr.engine import bundled_test_model_path
from hotline.cli import main

AUDIO = Path(__file__).parent / "data" / "audio"


def manifest(tmp_path: Path) -> Path:
    lines = [
        {"audio": str(AUDIO / "clean/03-gukmin-yeongeum.wav"), "reference": "국민 연금", "intent": None},
        {"audio": str(AUDIO / "noisy/01-segeum-singo.wav"), "reference": "세금 신고", "intent": None},
        {"text": "喂你好我想问下公积金怎么提取", "intent": "housing_fund"},
    ]
    path = tmp_path / "manifest.jsonl"
    path.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines), encoding="utf-8")
    return path


def test_audio_lines_are_recognised_and_scored(tmp_path, capsys):
    grammar = tmp_path / "grammar.txt"
    grammar.write_text("국민 연금\n세금 신고\n건강 보험\n부동산 등기\n", encoding="utf-8")
    status = main(["asr", "eval", str(manifest(tmp_path)), "--json", "--model", str(bundled_test_model_path()),
                   "--grammar", str(grammar)])
    assert status == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["kind"] for r in results] == ["audio", "audio", "text"]
    assert [r["transcript"] for r in results[:2]] == ["국민 연금", "세금 신고"]
    assert [r["cer"] for r in results[:2]] == [0.0, 0.0]
    assert results[2]["got"] == "housing_fund" and results[2]["correct"] is True

    status = main(["asr", "eval", str(manifest(tmp_path)), "--model", str(bundled_test_model_path()),
                   "--grammar", str(grammar)])
    report = capsys.readouterr().out
    assert "character error rate 0.0% over 2 lines" in report and "skipped 0" in report


def test_audio_lines_without_a_model_are_skipped_with_the_reason(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HOTLINE_ASR_MODEL_PATH", raising=False)
    assert main(["asr", "eval", str(manifest(tmp_path)), "--json"]) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert results[0]["transcript"] is None and "no speech model configured" in results[0]["skipped"]
    assert results[2]["correct"] is True
