"""Intent routing for the voice menu: a transcript (or typed text) becomes a
department, a knowledge item, a confidence and the menu's reaction, with the
reasons, robust to the errors a phone-line recogniser makes.

    from routing import default_knowledge, route
    decision = route("我想问一下公积金怎么提取", default_knowledge())
    decision.action, decision.department, decision.item, decision.confidence
"""

from routing.decision import Action, Decision, Match, timeline_detail
from routing.index import Knowledge, default_knowledge
from routing.router import route

__all__ = ["Action", "Decision", "Knowledge", "Match", "default_knowledge", "route", "timeline_detail"]
