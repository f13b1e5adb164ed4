"""The repository's knowledge base at the scale the service runs (issue 12):
every department with its common procedures and materials, every item with
several ways callers ask, and the router placing callers who ask in those ways
or in words of their own."""

from __future__ import annotations

from collections import Counter

import pytest

from routing import Action, default_knowledge, route
from routing.corpus import generate

MIN_ITEMS = 400
# Per department: items with steps, materials and at least two other ways callers ask.
MIN_COMPLETE_ITEMS = 14
MIN_ALTERNATIVES = 2
PLACED = (Action.ROUTE, Action.CONFIRM, Action.SELF_SERVICE)


@pytest.fixture(scope="module")
def kb():
    return default_knowledge()


def test_every_department_has_its_common_procedures_and_ways_callers_ask(kb):
    items = list(kb.items.values())
    assert len(items) >= MIN_ITEMS
    complete = Counter(i.department for i in items
                       if i.procedure and i.materials and len(i.alternatives) >= MIN_ALTERNATIVES)
    short = {code: complete[code] for code in kb.departments if complete[code] < MIN_COMPLETE_ITEMS}
    assert not short, short
    few = [i.id for i in items if len(i.alternatives) < MIN_ALTERNATIVES]
    assert not few, few


def test_the_classifier_trains_on_the_alternative_questions(kb):
    taught = {(u.text, u.label) for u in generate(kb.items.values(), kb.departments)}
    missing = [(i.id, a) for i in kb.items.values() for a in i.alternatives if (a, i.department) not in taught]
    assert not missing, missing[:5]


def test_an_item_is_recognised_by_its_alternative_questions(kb):
    # No keyword of the item is in these words; only an alternative question is.
    item = kb.items["enterprise.individual_to_company"]
    text = "生意做大了想把个体户改成公司"
    assert text in item.alternatives and not any(k in text for k in item.keywords)
    assert kb.question_similarity(item.id, text) == 1.0
    assert kb.question_similarity(item.id, "驾照到期换证") == 0.0


# One alternative question of a new item per department, as a caller would say it.
ALTERNATIVES = [
    ("enterprise.special_equipment", "公司买了叉车要去哪登记"),
    ("tax.invoice_red", "红字发票怎么开"),
    ("social_security.survivor_benefit", "家里老人走了，社保里能领什么钱"),
    ("medical_insurance.long_term_care", "长护险怎么办"),
    ("housing_fund.withdraw_medical", "孩子得了重病公积金能取吗"),
    ("real_estate.residence_right", "居住权合同怎么登记"),
    ("household.hukou_cancel", "老人走了户口要去销吗"),
    ("vehicle.scrapping", "老车不开了怎么报废"),
    ("construction.public_rental", "低收入家庭能申请公租房吗"),
    ("civil_affairs.nursing_home", "敬老院怎么申请"),
    ("transport.dangerous_goods", "危化品运输公司怎么申请资质"),
    ("health.death_certificate", "老人在家走了死亡证明找谁开"),
    ("general.missing_materials", "忘带了一份材料能先办吗"),
    ("complaint.environment", "附近工厂晚上偷偷排污水"),
    ("district.village_agent", "村里有没有代办员"),
    ("medical_insurance.drug_list", "这个药能用医保报吗"),          # self-service
    ("housing_fund.loan_progress", "公积金贷款怎么还没放款"),      # self-service
]


@pytest.mark.parametrize("item_id, text", ALTERNATIVES)
def test_a_caller_asking_an_alternative_question_reaches_the_item_or_its_department(kb, item_id, text):
    item = kb.items[item_id]
    assert text in item.alternatives
    decision = route(text, kb)
    assert decision.action in PLACED and decision.department == item.department, decision.reason
    if decision.action is Action.SELF_SERVICE:   # an answer played must be this item's
        assert decision.item == item_id, decision.reason


# Callers' own words for the new items (in no item's question, alternatives or keywords).
OWN_WORDS = [
    ("给客户开的票金额写错了怎么冲掉", "tax"),
    ("老家农村的养老保险一年交多少钱", "social_security"),
    ("家里人得了癌症，公积金可以取出来治病吗", "housing_fund"),
    ("车位能单独办产权证吗", "real_estate"),
    ("我想给孩子改跟我姓", "household"),
    ("电瓶车要去哪里挂牌照", "vehicle"),
    ("我们单元想装电梯要走什么程序", "construction"),
    ("想把老人送到公家办的敬老院", "civil_affairs"),
    ("孩子的疫苗本找不到了", "health"),
    ("窗口的人故意为难我", "complaint"),
    ("我也不知道我住的地方属于哪个区", "district"),
]


@pytest.mark.parametrize("text, department", OWN_WORDS)
def test_callers_own_words_for_new_items_reach_the_department(kb, text, department):
    for item in kb.items.values():
        assert text not in (item.question, *item.alternatives, *item.keywords)
    decision = route(text, kb)
    assert decision.action in PLACED and decision.department == department, decision.reason
