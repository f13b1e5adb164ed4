"""The intent router: transcript → department, knowledge item, confidence and
the menu's reaction. Pure (no I/O): give it the text and a :class:`Knowledge`.

Order of decisions:
1. an operator request ("人工", "转人工", "找人", "0", ...) → operator, always;
2. a key said or typed ("按3", "选三", a lone "3") → that key of the keypad menu;
3. speech: department terms found by characters, toneless pinyin, fuzzy pinyin,
   or with one syllable dropped/added/changed; departments scored (see
   :mod:`routing.thresholds`); the best item of the chosen department;
   self-service topics (hours, address, progress) pick the self-service item;
4. nothing placed: re-prompt, then keypad ("三号" alone is used here as a key).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from routing import thresholds as T
from routing.corpus import NONE, OPERATOR
from routing.decision import Action, Decision, Match
from routing.index import Knowledge, Term, topics_in
from routing.text import fuzzy_all, normalize, strip_fillers, syllables
from routing.vocabulary import (
    COMMON_SYLLABLES,
    COMPLAINT_CUES,
    DIGITS,
    KEY_SUFFIXES,
    CLAUSE_SUBJECTS,
    DONE_CUES,
    DONE_WINDOW,
    IDENTITY_CUES,
    QUESTION_CUES,
    QUESTION_WINDOW,
    REASON_CUES,
    REQUEST_CUES,
    REQUEST_WINDOW,
    KEY_VERBS,
    NAMED_KEYS,
    NOT_KEY_AFTER,
    OPERATOR_NOUNS,
    OPERATOR_EXCEPTIONS,
    OPERATOR_NEGATIONS,
    NEGATION_EXCEPTIONS,
    TRANSFER_CUES,
)


def _quality(table: dict[int, float], length: int) -> float:
    best = 0.0
    for min_len, value in sorted(table.items()):
        if length >= min_len:
            best = value
    return best


# ------------------------------------------------------------------ operator

def _operator_term(norm: str, syl: tuple[str, ...], knowledge: Knowledge,
                   skip: tuple[str, ...] = ()) -> str | None:
    text = norm
    for exception in OPERATOR_EXCEPTIONS:
        text = text.replace(exception, "_" * len(exception))
    for word, word_syl in knowledge.operator_terms:
        if word in skip:
            continue
        n = len(word)
        for start in range(len(text) - n + 1):
            chunk = text[start:start + n]
            if "_" in chunk:
                continue
            if chunk != word and tuple(syl[start:start + n]) != word_syl:
                continue
            before = text[max(0, start - 4):start]
            for word_with_bie in NEGATION_EXCEPTIONS:
                before = before.replace(word_with_bie, "_" * len(word_with_bie))
            if any(neg in before[-3:] for neg in OPERATOR_NEGATIONS):
                continue
            if chunk != word:
                # A homophone (人公) must not be part of a real word (老年人公交卡).
                exact = [m for m in find_matches(norm, knowledge) if m.kind == "exact"]
                if any(m.start < start + n and start < m.end for m in exact):
                    continue
            return word if chunk == word else f"{word}<-{chunk}"
    return None


def _complaint_heard(norm: str, knowledge: Knowledge) -> bool:
    """A complaint department term heard exactly, or the classifier's complaint, or
    complaint words ("提交了五次") with the classifier finding a complaint likely."""
    content = strip_fillers(norm)[0]
    if any(m.kind == "exact" and set(m.departments) & set(T.PRIORITY_DEPARTMENTS)
           for m in find_matches(content, knowledge)):
        return True
    probs = knowledge.classifier.probabilities(content)
    likely = T.COMPLAINT_LIKELY if _COMPLAINT_CUE.search(content) else T.CLASSIFIER_COMPLAINT
    return any(probs.get(d, 0.0) >= likely for d in T.PRIORITY_DEPARTMENTS)


# ------------------------------------------------------------------ keys

_DIGIT_CLASS = "".join(re.escape(d) for d in DIGITS)
_COMPLAINT_CUE = re.compile("|".join(COMPLAINT_CUES))

# Not after a digit: "四点五吨" is a decimal, not "press 5".
_EXPLICIT_KEY = re.compile(
    rf"(?<![{_DIGIT_CLASS}])[{KEY_VERBS}]([{_DIGIT_CLASS}])(?![{_DIGIT_CLASS}]|[{NOT_KEY_AFTER.replace('号', '')}])")
_SUFFIX_KEY = re.compile(
    rf"(?<![{_DIGIT_CLASS}十百])([{_DIGIT_CLASS}])(?:{'|'.join(KEY_SUFFIXES)})(?![楼线路院门窗厅口位])")


@dataclass(frozen=True)
class _Key:
    digit: str
    explicit: bool
    heard: str


def _key(norm: str, content: str) -> _Key | None:
    for name, digit in NAMED_KEYS.items():
        if name in norm:
            return _Key(digit, True, name)
    found = _EXPLICIT_KEY.search(norm)
    if found:
        return _Key(DIGITS[found.group(1)], True, found.group(0))
    if len(content) == 1 and content in DIGITS:
        return _Key(DIGITS[content], True, content)
    found = _SUFFIX_KEY.search(norm)
    if found:
        whole = content == found.group(0)
        return _Key(DIGITS[found.group(1)], whole, found.group(0))
    return None


# ------------------------------------------------------------------ matching

def _approx_find(pattern: tuple[str, ...], text: tuple[str, ...]) -> tuple[int, int, int]:
    """Best (edits, start, end) of ``pattern`` against any span of ``text``
    (semi-global Levenshtein over syllables)."""
    n = len(text)
    prev_cost = [0] * (n + 1)
    prev_start = list(range(n + 1))
    for i in range(1, len(pattern) + 1):
        cost = [i] + [0] * n
        start = [0] + [0] * n
        p = pattern[i - 1]
        for j in range(1, n + 1):
            best, origin = prev_cost[j - 1] + (p != text[j - 1]), prev_start[j - 1]
            if prev_cost[j] + 1 < best:                 # pattern syllable missing from text
                best, origin = prev_cost[j] + 1, prev_start[j]
            if cost[j - 1] + 1 < best:                  # extra syllable in text
                best, origin = cost[j - 1] + 1, start[j - 1]
            cost[j], start[j] = best, origin
        prev_cost, prev_start = cost, start
    best_j = min(range(n + 1), key=lambda j: (prev_cost[j], -(j - prev_start[j])))
    return prev_cost[best_j], prev_start[best_j], best_j


def _dropped_one(pattern: tuple[str, ...], text: tuple[str, ...]) -> tuple[int, int] | None:
    """Span of ``pattern`` with one syllable (not the first) missing, if ``text`` holds it."""
    m = len(pattern) - 1
    for skip in range(1, len(pattern)):
        short = pattern[:skip] + pattern[skip + 1:]
        for i in range(len(text) - m + 1):
            if text[i:i + m] == short:
                return i, i + m
    return None


def _inserted_one(pattern: tuple[str, ...], text: tuple[str, ...]) -> tuple[int, int] | None:
    """Span of ``pattern`` with one extra syllable inside it, if ``text`` holds it."""
    m = len(pattern) + 1
    for i in range(len(text) - m + 1):
        window = text[i:i + m]
        for extra in range(1, m - 1):
            if window[:extra] + window[extra + 1:] == pattern:
                return i, i + m
    return None


def _match(t: Term, content: str, start: int, end: int, kind: str) -> Match:
    length = len(t.syl)
    table = {"exact": T.QUALITY_EXACT, "pinyin": T.QUALITY_PINYIN, "fuzzy": T.QUALITY_FUZZY,
             "approx": T.QUALITY_APPROX}[kind]
    return Match(term=t.text, heard=content[start:end], kind=kind, quality=_quality(table, length),
                 start=start, end=end, departments=tuple(sorted(t.departments)), items=tuple(t.items))


def find_matches(content: str, knowledge: Knowledge) -> list[Match]:
    """Terms of the knowledge base heard in ``content`` (normalised, no fillers),
    the best match per term, overlapping weaker matches removed."""
    if not content:
        return []
    syl = syllables(content)
    fz = fuzzy_all(syl)
    n = len(content)
    best: dict[str, Match] = {}
    covered: set[int] = set()  # every position heard as some term (all occurrences)

    def keep(m: Match) -> None:
        if m.kind != "approx":
            covered.update(range(m.start, m.end))
        old = best.get(m.term)
        if old is None or m.quality > old.quality:
            best[m.term] = m

    for i in range(n):
        for t in knowledge.by_first_char.get(content[i], ()):
            if content.startswith(t.text, i):
                keep(_match(t, content, i, i + len(t.text), "exact"))
        for t in knowledge.by_first_fuzzy.get(fz[i], ()):
            m = len(t.fz)
            if i + m <= n and fz[i:i + m] == t.fz:
                if content[i:i + m] == t.text:
                    kind = "exact"
                elif syl[i:i + m] == t.syl:
                    kind = "pinyin"
                else:
                    kind = "fuzzy"
                keep(_match(t, content, i, i + m, kind))

    # One syllable dropped, added or changed, for terms of 3+ syllables; on plain
    # toneless syllables (a fuzzy near-miss *and* a dropped syllable is too loose).
    present = set(syl)
    counts: dict[int, int] = {}
    candidates: dict[int, Term] = {}
    for s in present:
        for t in knowledge.by_plain_syllable.get(s, ()):
            counts[id(t)] = counts.get(id(t), 0) + 1
            candidates[id(t)] = t
    for key, t in candidates.items():
        if t.text in best or t.topic_only:
            continue
        if counts[key] < max(2, len(set(t.syl)) - T.APPROX_MAX_EDITS):
            continue
        if len(t.syl) == T.APPROX_MIN_SYLLABLES:
            # Three syllables: only the middle or last one dropped (公积 for 公积金,
            # 社卡 for 社保卡) or one syllable inserted inside (开个公司 for 开公司); a
            # changed one, or the first dropped, would leave a word of its own
            # (公司 from 开公司, 户口 from 上户口).
            span = _dropped_one(t.syl, syl) or _inserted_one(t.syl, syl)
            if span is None:
                continue
            (start, end), needed = span, 1
        else:
            edits, start, end = _approx_find(t.syl, syl)
            if edits > T.APPROX_MAX_EDITS or end - start < 2:
                continue
            needed = T.APPROX_MIN_CONTENT_SYLLABLES
        wanted = set(t.syl)
        support = [k for k in range(start, end) if syl[k] in wanted and syl[k] not in COMMON_SYLLABLES]
        # ...and add something beyond the terms already heard there (取公积金 must
        # not be "heard" in 公积金公积金 just because 公积金 was).
        if len(support) >= needed and any(k not in covered for k in support):
            keep(_match(t, content, start, end, "approx"))

    exact_spans = [(m.start, m.end, m.term) for m in best.values() if m.kind == "exact"]
    accepted: list[Match] = []
    for m in sorted(best.values(), key=lambda m: (-m.quality, -(m.end - m.start), m.start)):
        length = m.end - m.start
        # Characters heard exactly as one term are not re-read as a homophone of
        # another (住房 in 住房公积金 is not 租房).
        if m.kind != "exact" and any(s <= m.start and m.end <= e and t != m.term for s, e, t in exact_spans):
            continue
        # Two readings of the same characters for different departments: keep the
        # better one, unless the weaker is a longer match around it (营执照: 执照
        # exact, 营业执照 with a dropped 业). Same-department overlaps all stay
        # (住房公积金 + 公积金提取 in 住房公积金提取): they only help choose the item.
        overlaps = any(min(m.end, a.end) - max(m.start, a.start) >= length / 2
                       and m.departments and a.departments
                       and not set(m.departments) & set(a.departments)
                       and not (m.start <= a.start and a.end <= m.end and length > a.end - a.start)
                       for a in accepted)
        if not overlaps:
            accepted.append(m)
    accepted.sort(key=lambda m: (m.start, m.end))
    return accepted


# ------------------------------------------------------------------ scoring

def _strong(m: Match) -> bool:
    """Exact characters, or the same toneless pinyin over 3+ syllables. Anything
    else (a 2-syllable homophone, a fuzzy or approximate match) can be an accident
    of where the match starts and ends (认证 heard as 人证 in 要认证)."""
    return m.kind == "exact" or (m.kind == "pinyin" and m.end - m.start >= 3)


def _heard_exactly(department: str | None, matches: list[Match]) -> bool:
    """One of the department's own words was heard as written."""
    return any(m.kind == "exact" and department in m.departments for m in matches)


def score_departments(matches: list[Match], knowledge: Knowledge) -> list[tuple[str, float]]:
    """Departments with a positive score, best first (see thresholds)."""
    miss: dict[str, float] = {}
    raw: dict[str, float] = {}
    for m in matches:
        if not m.departments:
            continue
        share = 1.0 / len(m.departments)
        for dept in m.departments:
            s = m.quality * share
            miss[dept] = miss.get(dept, 1.0) * (1.0 - s)
            raw[dept] = raw.get(dept, 0.0) + s
    scores = {dept: 1.0 - p for dept, p in miss.items()}
    strong = {d for m in matches if _strong(m) for d in m.departments}
    if strong:
        for dept in scores:
            if dept not in strong:
                scores[dept] *= T.WEAK_ONLY_DEMOTION
    exact = {d for m in matches if m.kind == "exact" for d in m.departments}
    if any(scores.get(p, 0.0) >= T.ROUTE and p in exact for p in T.PRIORITY_DEPARTMENTS):
        for dept in scores:
            if dept not in T.PRIORITY_DEPARTMENTS:
                scores[dept] *= T.PRIORITY_DEMOTION
    fallback = knowledge.fallback_department
    if fallback in scores and any(s >= T.CONFIRM for d, s in scores.items() if d != fallback):
        scores[fallback] *= T.FALLBACK_DEMOTION
    order = {code: i for i, code in enumerate(knowledge.departments)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], -raw[kv[0]], order[kv[0]]))


def choose_item(department: str, matches: list[Match], topics: tuple[str, ...], content: str,
                knowledge: Knowledge) -> tuple[str | None, float, str]:
    """(item id, score, how) for the chosen department: a specific item whose
    keywords were heard; else one whose standard question is worded much like
    the transcript; else, for a self-service topic, the department's self-service
    item on that topic; else the department's overview item. Only "keywords" and
    "topic" items are played as self-service answers."""
    scored: dict[str, float] = {}
    for m in matches:
        if not m.departments:
            continue
        for item_id in m.items:
            item = knowledge.items[item_id]
            if item.department != department or item.overview:
                continue
            share = knowledge.item_share.get((department, m.term), 1)
            s = m.quality / share
            scored[item_id] = 1.0 - (1.0 - scored.get(item_id, 0.0)) * (1.0 - s)
    if scored:
        item_id = max(scored, key=lambda i: (scored[i], knowledge.question_similarity(i, content)))
        if scored[item_id] >= T.ITEM_MIN:
            return item_id, scored[item_id], "keywords"
    similar = [(knowledge.question_similarity(i, content), i) for i in knowledge.specific.get(department, ())]
    if similar:
        similarity, item_id = max(similar)
        if similarity >= T.ITEM_SIMILARITY_MIN and not (topics and knowledge.items[item_id].self_service):
            return item_id, similarity, "question"
    if topics:
        heard = {i for m in matches for i in m.items}
        candidates = [i for i in knowledge.specific.get(department, ())
                      if knowledge.items[i].self_service and set(knowledge.item_topics[i]) & set(topics)]
        if candidates:
            item_id = max(candidates, key=lambda i: (i in heard, knowledge.question_similarity(i, content)))
            return item_id, 1.0, "topic"
    if department in knowledge.overview:
        item_id = knowledge.overview[department]
        score = max((m.quality for m in matches if item_id in m.items), default=0.0)
        return item_id, score, "overview"
    return None, 0.0, "none"


# ------------------------------------------------------------------ route

def _give_up(attempt: int) -> Action:
    return Action.KEYPAD if attempt >= T.MAX_SPEECH_ATTEMPTS else Action.REPROMPT


def _describe(matches: list[Match]) -> str:
    parts = []
    for m in matches:
        parts.append(m.term if m.kind == "exact" else f"{m.term}<-{m.heard}({m.kind})")
    return ", ".join(parts)


def route(text: str, knowledge: Knowledge, *, attempt: int = 1, menu: str = "main") -> Decision:
    """Decide what the menu does with one final transcript (or typed text).

    ``attempt`` counts the caller's speech turns (1 for the first answer to the
    greeting): a low-confidence first attempt re-prompts, a later one goes to
    the keypad. ``menu`` is the keypad menu a spoken key refers to."""
    norm = normalize(text)
    base = dict(text=text, attempt=attempt, model_id=tuple(knowledge.classifier.info.short().items()))
    fallback = knowledge.fallback_department

    operator = _operator_term(norm, syllables(norm), knowledge)
    if operator and operator.split("<-")[0] in OPERATOR_NOUNS and _complaint_heard(norm, knowledge):
        operator = _operator_term(norm, syllables(norm), knowledge, skip=OPERATOR_NOUNS)
    if operator:
        return Decision(**base, content=norm, action=Action.OPERATOR, department=fallback, item=None,
                        confidence=1.0, reason=f"operator requested: {operator}")

    content, fillers = strip_fillers(norm)
    base["fillers"] = tuple(fillers)
    key = _key(norm, content)
    if key is not None and key.digit == knowledge.operator_digit:
        return Decision(**base, content=content, action=Action.OPERATOR, department=fallback, item=None,
                        confidence=1.0, reason=f"operator key {key.digit} ({key.heard})", key=key.digit)
    if not content:
        return Decision(**base, content="", action=_give_up(attempt), department=None, item=None,
                        confidence=0.0, reason="no words heard" + (" (only fillers)" if fillers else ""),
                        menu=menu if attempt >= T.MAX_SPEECH_ATTEMPTS else None)

    options = knowledge.keypads.get(menu, {})

    def key_decision(k: _Key, confidence: float) -> Decision | None:
        target = options.get(k.digit)
        if target is None:
            return None
        if target.startswith("@"):
            return Decision(**base, content=content, action=Action.KEYPAD, department=None, item=None,
                            confidence=confidence, reason=f"key {k.digit} ({k.heard}) opens menu {target[1:]}",
                            key=k.digit, menu=target[1:])
        return Decision(**base, content=content, action=Action.ROUTE, department=target,
                        item=knowledge.overview.get(target), confidence=confidence,
                        reason=f"key {k.digit} ({k.heard}) in menu {menu} -> {target}", key=k.digit)

    if key is not None and key.explicit:
        decided = key_decision(key, T.KEY_CONFIDENCE)
        if decided is not None:
            return decided

    matches = find_matches(content, knowledge)
    scores = score_departments(matches, knowledge)
    topics = topics_in(content)
    transfer = any(cue in content for cue in TRANSFER_CUES)
    classifier = knowledge.classifier
    abstain = classifier.known_share(content) < T.CLASSIFIER_MIN_KNOWN
    probs = {} if abstain else classifier.probabilities(content)
    model = _model_note(probs)
    common = dict(base, content=content, matches=tuple(matches), scores=tuple(scores), topics=topics,
                  model=model)
    best, best_score = scores[0] if scores else (None, 0.0)
    runner_up = scores[1][1] if len(scores) > 1 else 0.0
    matcher_confidence = max(0.0, best_score - T.COMPETITION * runner_up)
    named = matcher_confidence >= T.ROUTE and _heard_exactly(best, matches)
    if probs.get(OPERATOR, 0.0) >= T.CLASSIFIER_OPERATOR and not named:
        # A person asked for in other words ("不要机器，我跟真人说"); a caller who
        # names the service clearly ("我不要人工，我要问社保") gets the service.
        return Decision(**common, action=Action.OPERATOR, department=fallback, item=None,
                        confidence=probs[OPERATOR], reason=f"operator requested (classifier {probs[OPERATOR]:.2f})")
    if probs.get(NONE, 0.0) >= T.CLASSIFIER_NONE and matcher_confidence < T.ROUTE and key is None:
        p_best = max((p for d, p in probs.items() if d in knowledge.departments), default=0.0)
        # "喂喂，听得到吗", "今天天气怎么样", talk to someone in the room: no question to
        # place (and nothing for the knowledge-base editors).
        return Decision(**common, action=_give_up(attempt), department=None, item=None,
                        confidence=min(p_best, 0.99 * T.CONFIRM), out_of_scope=True,
                        reason=f"out of scope (classifier none {probs[NONE]:.2f})",
                        menu=menu if attempt >= T.MAX_SPEECH_ATTEMPTS else None)
    heard = _describe(matches)
    if probs and OPERATOR in probs:
        # A request for a person and the general desk lead to the same queue: "要个人帮我"
        # split between the two is not less sure than a department's share.
        probs = {**probs, fallback: probs.get(fallback, 0.0) + probs[OPERATOR]}
    ranked = sorted(((p, d) for d, p in probs.items() if d in knowledge.departments), reverse=True)
    p_best, guess = ranked[0] if ranked else (0.0, None)
    p_of = lambda d: probs.get(d, 0.0)  # noqa: E731
    said = "classifier abstains (unknown words)" if abstain else f"classifier {guess} {p_best:.2f}"
    if abstain:
        guess, p_best = best, 0.0

    if best is None or matcher_confidence < T.CONFIRM:
        if key is not None:
            decided = key_decision(key, T.KEY_WEAK_CONFIDENCE)
            if decided is not None:
                return decided
        if (best is None and topics and not transfer
                and (abstain or (guess == fallback and p_best >= T.SELF_SERVICE_AGREEMENT))):
            item_id, item_score, how = choose_item(fallback, matches, topics, content, knowledge)
            item = knowledge.items.get(item_id) if item_id else None
            if item is not None and item.self_service and how == "topic":
                return Decision(**common, action=Action.SELF_SERVICE, department=fallback, item=item_id,
                                confidence=T.TOPIC_ONLY_CONFIDENCE, item_score=item_score,
                                reason=f"self-service topic {'/'.join(topics)} with no department -> {item_id}"
                                       f"; {said}")
        if guess is not None and p_best >= (T.FALLBACK_CONFIRM if guess == fallback else T.CLASSIFIER_CONFIRM):
            best, confidence = guess, p_best
            if confidence < T.CLASSIFIER_ROUTE:
                confidence = min(confidence, T.DISAGREE_CAP)
        else:
            why = ("no department terms heard" if best is None else
                   f"too unsure: {best} {best_score:.2f} vs {scores[1][0] if len(scores) > 1 else '-'} "
                   f"{runner_up:.2f} ({heard})")
            return Decision(**common, action=_give_up(attempt), department=None, item=None,
                            confidence=max(matcher_confidence, p_best), reason=f"{why}; {said}",
                            menu=menu if attempt >= T.MAX_SPEECH_ATTEMPTS else None)
    elif abstain:
        confidence = matcher_confidence
    elif guess == best:
        confidence = min(1.0, max(matcher_confidence, p_best) + T.AGREE_BONUS)
        if p_best < T.CLASSIFIER_SUPPORT and not _heard_exactly(best, matches):
            # Only sound-alikes heard (卖房子 for 买房子) and the classifier not sure.
            confidence = min(confidence, T.DISAGREE_CAP)
    else:
        exact = _heard_exactly(best, matches)
        complaint = guess in T.PRIORITY_DEPARTMENTS and p_best >= T.CLASSIFIER_COMPLAINT
        # The general desk's words are generic ("办事大厅"): they do not stand against
        # a classifier that places the caller elsewhere.
        # Nor do words said as background ("离婚手续办完了，房子…"; "我是开出租的").
        keeps = (exact and matcher_confidence >= T.ROUTE and p_of(best) >= T.MATCHER_KEEPS and best != fallback
                 and _word_scores(content, matches, (best,)).get(best, (0, 0))[0] >= 0)
        if complaint or not keeps:
            # A department the matcher heard surely (a term or its sound-alike) is not
            # given up for a classifier that barely prefers another ("企业年包": 企业年报).
            margin = T.CLASSIFIER_OVERRIDE if matcher_confidence >= T.ROUTE else 0.0
            if p_best >= p_of(best) + margin or complaint:
                best = guess
        confidence = min(max(matcher_confidence, p_of(best)), T.DISAGREE_CAP)

    complaint_words = _COMPLAINT_CUE.search(content) is not None
    doubt = (best not in T.PRIORITY_DEPARTMENTS
             and (any(probs.get(d, 0.0) >= T.COMPLAINT_DOUBT for d in T.PRIORITY_DEPARTMENTS)
                  or complaint_words))
    if doubt:
        # Perhaps a complaint about the service it names ("营业执照被退回三次"): ask,
        # do not transfer to the department complained about; and with complaint words
        # heard and the classifier finding it likely enough, the complaint is what is asked.
        confidence = min(confidence, T.DISAGREE_CAP)
        complaint = next((d for d in T.PRIORITY_DEPARTMENTS if probs.get(d, 0.0) >= T.COMPLAINT_LIKELY), None)
        if complaint is not None and complaint_words:
            best = complaint
    others = _other_departments(best, matches, scores)
    other = others[0] if others else None
    if other is not None:
        # Two departments' matters named ("公积金贷款买的房，想办房产证"): what the
        # caller asks to do decides, and that is too easy to get wrong to transfer.
        confidence = min(confidence, T.DISAGREE_CAP)
        asked = _asked_for(content, matches, (best, *others), probs)
        if asked is not None and asked != best and not {best, asked} & set(T.PLACE_DEPARTMENTS):
            best, other = asked, best

    item_id, item_score, how = choose_item(best, matches, topics, content, knowledge)
    item = knowledge.items.get(item_id) if item_id else None
    if confidence >= T.ROUTE:
        if (item is not None and item.self_service and not transfer and how in ("keywords", "topic")
                and (abstain or (guess == best and p_best >= T.SELF_SERVICE_AGREEMENT))):
            action = Action.SELF_SERVICE
        else:
            action = Action.ROUTE
    else:
        action = Action.CONFIRM
    alternative = _alternative(best, other, ranked) if action is Action.CONFIRM else None
    reason = f"{best} {dict(scores).get(best, 0.0):.2f} ({heard}); {said}"
    if len(scores) > 1:
        reason += f"; next {scores[1][0]} {runner_up:.2f}"
    if item_id:
        reason += f"; item {item_id} by {how}"
    if topics:
        reason += f"; topic {'/'.join(topics)}"
    if transfer:
        reason += "; transfer asked"
    if other is not None:
        reason += f"; also named {other}: confirm"
    if doubt:
        reason += "; perhaps a complaint: confirm"
    if alternative is not None:
        reason += f"; if not, {alternative}"
    return Decision(**common, action=action, department=best, item=item_id, confidence=confidence,
                    item_score=item_score, reason=reason, alternative=alternative)


def _alternative(best: str, other: str | None, ranked: list[tuple[float, str]]) -> str | None:
    """What a confirmation offers after a no: the other department named
    ("我想给孩子办医保，户口刚落好": 医保 confirmed, 户籍 next), else the
    classifier's next department if it finds it likely enough."""
    if other is not None:       # never ``best``: see _other_departments and the swap above
        return other
    return next((d for p, d in ranked if d != best and p >= T.ALTERNATIVE_OFFER), None)


def _other_departments(best: str, matches: list[Match], scores: list[tuple[str, float]]) -> list[str]:
    """Other departments named as surely as the chosen one: heard exactly, scoring
    at least ``TWO_DEPARTMENTS``, on words of their own (not the chosen department's
    too), best first. The complaint department is not "another" department: a
    complaint names the service it is about."""
    if best in T.PRIORITY_DEPARTMENTS:
        return []
    return [dept for dept, score in scores
            if dept != best and score >= T.TWO_DEPARTMENTS and dept not in T.PRIORITY_DEPARTMENTS
            and any(m.kind == "exact" and dept in m.departments and best not in m.departments for m in matches)]


def _asked_for(content: str, matches: list[Match], departments: tuple[str, ...],
               probs: dict[str, float]) -> str | None:
    """Of two (or more) departments named (each heard exactly), the one the caller asks for.

    Every exact word of either department is scored by what surrounds it: a wish or
    a question word before it ("想办", "怎么", "申请"), a question after it ("…吗",
    "在哪办", "要什么材料") count for it; an identity before it ("我是个体户") or
    something already done after it ("房产证已经拿到了", "契税交完了") against it. A
    department's score is its best word's. A tie goes to the one the classifier
    prefers by at least ``TIE_MARGIN``, else to the one named last: Mandarin tends to
    put the circumstances first and the request last ("营业执照办下来了，我想给员工
    交社保"). A transcript has no punctuation, so windows of characters stand in for
    clauses."""
    best = _word_scores(content, matches, departments)
    if len(best) < 2:
        return None
    top = max(score for score, _ in best.values())
    tied = sorted((d for d in best if best[d][0] == top), key=lambda d: -probs.get(d, 0.0))
    if len(tied) > 1 and probs.get(tied[0], 0.0) - probs.get(tied[1], 0.0) >= T.TIE_MARGIN:
        return tied[0]
    return max(tied, key=lambda d: best[d])


def _word_scores(content: str, matches: list[Match], departments: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """Per department, the best (score, start) of its exact words by what surrounds
    them (see :func:`_asked_for`): above 0 asked for, below 0 said as background."""
    best: dict[str, tuple[int, int]] = {}
    for m in matches:
        if m.kind != "exact":
            continue
        owners = [d for d in departments if d in m.departments]
        if len(owners) != 1:
            continue
        window = max(0, m.start - REQUEST_WINDOW)
        before = content[window:m.start]
        after = content[m.end:m.end + QUESTION_WINDOW]
        score = 0

        def governs(cue: str) -> bool:
            # A wish is for the next thing named: not across a new subject ("医保卡怎么办理，
            # 我户口刚迁过来") nor across another department's word ("我想申请低保人社那边…").
            end = window + before.rindex(cue) + len(cue)
            return (not any(p in content[end:m.start] for p in CLAUSE_SUBJECTS)
                    and not any(o.kind == "exact" and owners[0] not in o.departments and end <= o.start
                                and o.end <= m.start for o in matches))

        if any(cue in before and governs(cue) for cue in REQUEST_CUES):
            score += 1
        if any(cue in after for cue in QUESTION_CUES):
            score += 1
        if any(content[max(0, m.start - len(cue)):m.start] == cue for cue in IDENTITY_CUES):
            score -= 2
        if any(cue in content[m.end:m.end + DONE_WINDOW] for cue in DONE_CUES):
            score -= 2
        if any(cue in before for cue in REASON_CUES):
            score -= 1
        old = best.get(owners[0])
        if old is None or (score, m.start) > old:
            best[owners[0]] = (score, m.start)
    return best


def _model_note(probs: dict[str, float]) -> tuple[tuple[str, float], ...]:
    """The classifier's three most likely classes (for the decision's record)."""
    return tuple(sorted(probs.items(), key=lambda kv: -kv[1])[:3])
