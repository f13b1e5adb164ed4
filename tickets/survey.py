"""The satisfaction survey: 1 满意, 2 基本满意, 3 不满意, over AsyncAGI.

Asked in two places (config/asterisk/extensions.conf):

* ``after_call``: the agent hung up and the caller is still on the line (Queue()
  with option ``c`` returned ``QUEUESTATUS=CONTINUE``); ``[hotline-survey]``
  checks the bridge's heartbeat and runs ``AGI(agi:async,survey)``;
* ``follow_up`` (回访): the hotline calls the caller after a ticket was answered
  (tickets/calls.py); ``[hotline-follow-up]`` runs ``AGI(agi:async,follow_up,<ticket>)``.

The answer is stored on the call (``call_surveys``, and a ``survey.*`` row of
the call's timeline), and for a ticket on the ticket
(:meth:`~tickets.service.TicketService.survey_answered`: 不满意 opens or
reopens one with the 2 h / 24 h clock). A caller who presses nothing, or hangs
up, is stored as such. The answer is committed before the closing words play,
so a caller who hangs up then is still counted.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from hotline.logs import get_logger
from hotline.settings import Settings
from ivr.menu.async_agi import AgiCommandError, AgiHangup, AsyncAgiChannel
from ivr.menu.prompt_failure import PromptFailed, play
from tickets import store
from tickets.model import SURVEY_KEYS, SURVEY_UNSATISFIED
from tickets.service import ACTOR_SURVEY, TicketService

log = get_logger(__name__)

Record = Callable[[str, Mapping[str, Any]], None]
AFTER_CALL = "after_call"
FOLLOW_UP = "follow_up"
ALL_KEYS = "0123456789*#"


@dataclass(frozen=True)
class SurveyAnswer:
    outcome: str                 # rated, no_key, hung_up, failed
    rating: str | None = None
    key: str | None = None
    asked: int = 0


class SurveySession:
    def __init__(self, agi: AsyncAgiChannel, record: Record, service: TicketService, settings: Settings,
                 kind: str, ticket_id: int | None = None):
        self.agi = agi
        self.record = record
        self.service = service
        self.settings = settings
        self.prompts = settings.tickets.prompts
        self.kind = kind
        self.ticket_id = ticket_id
        self.started_at = datetime.now(timezone.utc)
        self.saved = False

    async def run(self) -> None:
        self.record("survey.started", {"kind": self.kind, **({"ticket_id": self.ticket_id} if self.ticket_id else {})})
        asked = 0
        try:
            if self.kind == FOLLOW_UP:
                await play(self.agi, "STREAM FILE", self.prompts["follow_up_intro"], '""')
            answer = None
            while answer is None and asked < self.settings.tickets.survey_attempts:
                asked += 1
                result = await play(self.agi, "GET DATA", self.prompts["survey_question"],
                                    f"{self.settings.menu.digit_timeout_ms} 1")
                key = result.digits()
                if key in SURVEY_KEYS:
                    answer = SurveyAnswer("rated", SURVEY_KEYS[key], key, asked)
                elif key:
                    self.record("survey.invalid_key", {"key": key})
                    await play(self.agi, "STREAM FILE", self.prompts["survey_invalid"], '""')
            answer = answer or SurveyAnswer("no_key", asked=asked)
            await self._save(answer)
            closing = "survey_sorry" if answer.rating == SURVEY_UNSATISFIED else "survey_thanks"
            await play(self.agi, "STREAM FILE", self.prompts[closing], '""')
            await self.agi.command("HANGUP")
        except AgiHangup:
            await self._save(SurveyAnswer("hung_up", asked=asked))
        except PromptFailed as failed:
            log.error("survey.prompt_failed", file=failed.prompt, result=failed.result,
                      channel=self.agi.channel, uniqueid=self.agi.uniqueid)
            await self._save(SurveyAnswer("failed", asked=asked))
            await self._end()
        except (AgiCommandError, asyncio.TimeoutError) as exc:
            log.error("survey.failed", error=repr(exc))
            await self._save(SurveyAnswer("failed", asked=asked))
            await self._end()

    async def _save(self, answer: SurveyAnswer) -> None:
        """Store the answer once (the first outcome known is the one kept)."""
        if self.saved:
            return
        self.saved = True
        detail = {"kind": self.kind, "outcome": answer.outcome, "asked": answer.asked,
                  **({"rating": answer.rating, "key": answer.key} if answer.rating else {})}
        ticket = None
        try:
            ticket = await self._store(answer)
        except Exception:   # the timeline row below still says what the caller answered
            log.exception("survey.store_failed", outcome=answer.outcome, rating=answer.rating)
            detail["stored"] = False
        if ticket is not None:
            detail.update(ticket_id=ticket["id"], ticket=ticket["number"], ticket_state=ticket["state"])
        kind = {"rated": "survey.answered", "no_key": "survey.no_key", "hung_up": "survey.hung_up"}.get(
            answer.outcome, "survey.failed")
        self.record(kind, detail)
        log.info(kind, rating=answer.rating, survey=self.kind, ticket=detail.get("ticket"))

    async def _store(self, answer: SurveyAnswer) -> dict[str, Any] | None:
        """The answer on the call and, when rated, on the ticket: one transaction."""
        async with self.service.changing() as change:
            saved = await store.add_survey(change.conn, {
                "linkedid": self.agi.linkedid, "uniqueid": self.agi.uniqueid, "kind": self.kind,
                "ticket_id": self.ticket_id, "outcome": answer.outcome, "rating": answer.rating,
                "key": answer.key, "asked": answer.asked, "started_at": self.started_at})
            if saved is None or answer.rating is None:
                return None
            opened = await self.service.survey_answered(change, self.agi.linkedid, answer.rating, ACTOR_SURVEY,
                                                        ticket_id=self.ticket_id)
            if opened is None:
                return None
            await store.survey_ticket(change.conn, saved["id"], opened.ticket["id"])
            return opened.ticket

    async def _end(self) -> None:
        try:
            await self.agi.command("HANGUP", timeout=5.0)
        except (AgiHangup, AgiCommandError, asyncio.TimeoutError):
            pass


def survey_script(service: TicketService, settings: Settings, kind: str):
    """The AGI script ``survey`` / ``follow_up`` for :meth:`MenuSessions.add_script`."""
    async def run(agi: AsyncAgiChannel, record: Record, args: list[str]) -> None:
        ticket_id = None
        if kind == FOLLOW_UP:
            if not args or not args[0].isdigit():
                log.error("survey.follow_up_without_ticket", args=args)
                record("survey.failed", {"kind": kind, "reason": "no ticket named by the dialplan"})
                try:
                    await agi.command("HANGUP", timeout=5.0)
                except (AgiHangup, AgiCommandError, asyncio.TimeoutError):
                    pass
                return
            ticket_id = int(args[0])
        await SurveySession(agi, record, service, settings, kind, ticket_id).run()

    return run
