"""The agents' desk: what the console and the supervisors' desk call.

:class:`AgentDesk` logs agents in and out of their queues, pauses them with a
reason, ends their wrap-up, transfers their caller, and answers what state an
agent is in and what the queues look like. Every change of an agent's state is
written to ``agent_state_log`` (through the call writer) and published on the
hub topic ``agents``; the queue panel on ``queues`` (at most every
``[agents] panel_interval``). The state itself comes from Asterisk's events
(:mod:`agents.board`), never from the answers to our own actions, so the
console shows what Asterisk does, whoever changed it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any, Iterable

from agents import store
from agents.actions import ActionReport, Outcome, QueueActions, QueueResult
from agents.board import AgentBoard, AgentState, AgentStatus, Device, Fact, Membership, RingNoAnswer, StateChange
from agents.live import LiveFeed, Throttle
from agents.membership import QueueMemberState
from agents.panel import QueuePanel, QueueView
from agents.seat import AgentSeat, interface_of
from agents.transfer import TransferReport, Transfers, TransferTarget
from hotline.core import Core
from hotline.facts import ChangeSet
from hotline.hub import TOPIC_AGENTS, TOPIC_QUEUES
from hotline.logs import get_logger
from ivr.ami.message import Event

log = get_logger(__name__)

STATE_SINK = "agent_states"


class AgentDesk:
    def __init__(self, core: Core):
        self.core = core
        self.settings = core.settings.agents
        self.board = AgentBoard(self.settings.wrapup_max)
        self.panel = QueuePanel([(d.queue, d.code, d.name) for d in core.settings.departments])
        self.actions = QueueActions(lambda: core.ami)
        self.transfers = Transfers(core.settings, lambda: core.ami, core.writer.submit)
        self.feed = LiveFeed(core.hub, lambda: core.pool)
        self._panel = Throttle(self.settings.panel_interval, self._publish_panel)
        self._seats: dict[str, AgentSeat] = {}
        self._wrapups: dict[str, tuple[str, asyncio.TimerHandle]] = {}

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.feed.start()

    async def close(self) -> None:
        self._panel.cancel()
        for _, timer in self._wrapups.values():
            timer.cancel()
        self._wrapups.clear()
        await self.feed.close()

    # -- what the console calls -------------------------------------------------------------

    def register(self, seat: AgentSeat) -> None:
        """Tell the desk who sits at an extension (the account behind its state
        changes); login and the other operations do it themselves."""
        self._seats[seat.interface] = seat

    def seat_of(self, interface: str) -> AgentSeat | None:
        return self._seats.get(interface)

    async def login(self, seat: AgentSeat, *, paused: bool = False, reason: str | None = None) -> ActionReport:
        """QueueAdd of ``PJSIP/<ext>`` to each of the agent's queues, with the
        agent's name, penalty per queue, paused (with one of the pause reasons)
        or not; a member already there gets the chosen pause state with one
        QueuePause. Queues the agent no longer serves are left."""
        refused = self._refusal(seat) or (self._reason_refusal(reason) if paused else None)
        if refused:
            return self._refused("login", seat, refused)
        self.register(seat)
        results = list(await asyncio.gather(*(self.actions.add(seat, q, paused, reason) for q in seat.queues)))
        if any(r.outcome is Outcome.ALREADY for r in results):
            results.append(await self.actions.pause(seat.interface, paused, reason))
        stale = sorted({m.queue for m in self._memberships(seat)} - set(seat.queue_names))
        results += await asyncio.gather(*(self.actions.remove(seat.interface, q) for q in stale))
        return self._report("login", seat, results)

    async def logout(self, seat: AgentSeat) -> ActionReport:
        """QueueRemove from each of the agent's queues (and any other the agent is
        still in); an agent already out is fine."""
        self.register(seat)
        queues = sorted(set(seat.queue_names) | {m.queue for m in self._memberships(seat)})
        results = await asyncio.gather(*(self.actions.remove(seat.interface, q) for q in queues))
        return self._report("logout", seat, results)

    async def pause(self, seat: AgentSeat, reason: str) -> ActionReport:
        """QueuePause with ``reason`` (one of ``[agents] pause_reasons``) in all the agent's queues."""
        refused = self._reason_refusal(reason)
        if refused:
            return self._refused("pause", seat, refused)
        self.register(seat)
        return self._report("pause", seat, [await self.actions.pause(seat.interface, True, reason)])

    async def unpause(self, seat: AgentSeat) -> ActionReport:
        self.register(seat)
        return self._report("unpause", seat, [await self.actions.pause(seat.interface, False)])

    def finish_wrapup(self, seat: AgentSeat) -> AgentState:
        """The agent marked the call done: the wrap-up (整理中) ends. Returns the
        agent's state (unchanged when there was no wrap-up)."""
        self.register(seat)
        change = self.board.finish_wrapup(seat.interface, _now())
        if change is not None:
            self._changed([change])
        return self.state(seat)

    async def transfer(self, seat: AgentSeat, target: TransferTarget) -> TransferReport:
        """Send the agent's caller to another department's queue or an extension
        (Redirect of the caller's channel; recorded in the call's timeline)."""
        self.register(seat)
        current = self.board.state(seat.interface)
        return await self.transfers.transfer(seat, current.call if current else None, target)

    def state(self, seat: AgentSeat | str) -> AgentState:
        """The agent's state (by seat or extension); 离线 for an agent Asterisk never listed."""
        interface = seat.interface if isinstance(seat, AgentSeat) else interface_of(seat)
        found = self.board.state(interface)
        if found is not None:
            return found
        name = seat.name if isinstance(seat, AgentSeat) else None
        return AgentState(interface, name, AgentStatus.OFFLINE, _now(), None, None, None, (), Device.UNKNOWN)

    def states(self) -> list[AgentState]:
        return self.board.states()

    def queues(self) -> list[QueueView]:
        """The queue panel now."""
        return self.panel.view(self.board.states())

    @property
    def pause_reasons(self) -> tuple[str, ...]:
        return self.settings.pause_reasons

    # -- what the AMI events and the login resync call ----------------------------------------

    def apply(self, event: Event, at: datetime) -> None:
        """One AMI event (never waits: on the AMI reader's path)."""
        facts = self.board.apply(event, at)
        if self.panel.apply(event, at):
            self._panel.changed()
        if facts:
            self._changed(facts)

    def rebuild(self, members: Iterable[QueueMemberState], entries: Iterable[Event],
                live_uniqueids: Iterable[str], at: datetime) -> None:
        """After every AMI login: Asterisk's QueueStatus and live channels are the truth."""
        self.panel.rebuild(entries, at)
        changes = self.board.rebuild(members, live_uniqueids, at)
        self._changed(changes)
        self._panel.changed()
        log.info("agents.resynced", agents=len(self.board.states()), changed=len(changes))

    # -- internals -----------------------------------------------------------------------------

    def _changed(self, facts: list[Fact]) -> None:
        rows = []
        for fact in facts:
            seat = self._seats.get(fact.agent.interface)
            account_id = seat.account_id if seat is not None else None
            if isinstance(fact, RingNoAnswer):
                log.warning("agents.ring_no_answer", interface=fact.agent.interface, queue=fact.queue,
                            call_id=fact.linkedid, ring_ms=fact.ring_ms)
                self.feed.publish(TOPIC_AGENTS, _ring_no_answer(fact, account_id))
                continue
            self._follow_wrapup(fact)
            self.feed.publish(TOPIC_AGENTS, _state_message(fact, account_id))
            if not fact.moved:
                continue
            rows.append(store.AgentStateRow(
                account_id=account_id, interface=fact.agent.interface, agent_name=fact.agent.name,
                from_state=fact.before.value, to_state=fact.agent.status.value, reason=fact.agent.reason,
                cause=fact.cause, uniqueid=fact.uniqueid, occurred_at=fact.at))
        if rows:
            self.core.writer.submit(ChangeSet(rows={STATE_SINK: rows}))
            self._panel.changed()

    def _follow_wrapup(self, change: StateChange) -> None:
        """Keep one timer per agent for the wrap-up's maximum."""
        interface, wrapup = change.agent.interface, change.agent.wrapup
        current = self._wrapups.get(interface)
        if current is not None and (wrapup is None or current[0] != wrapup.uniqueid):
            current[1].cancel()
            del self._wrapups[interface]
            current = None
        if wrapup is None or current is not None:
            return
        delay = max(0.0, (wrapup.deadline - _now()).total_seconds())
        timer = asyncio.get_running_loop().call_later(delay, self._wrapup_over, interface, wrapup.uniqueid)
        self._wrapups[interface] = (wrapup.uniqueid, timer)

    def _wrapup_over(self, interface: str, uniqueid: str) -> None:
        self._wrapups.pop(interface, None)
        change = self.board.expire_wrapup(interface, uniqueid, _now())
        if change is not None:
            self._changed([change])

    def _publish_panel(self) -> None:
        at = _now()
        self.feed.publish(TOPIC_QUEUES, {"type": "panel", "at": at.isoformat(),
                                         "queues": [v.as_json(at) for v in self.queues()]})

    def _memberships(self, seat: AgentSeat) -> tuple[Membership, ...]:
        state = self.board.state(seat.interface)
        return state.queues if state is not None else ()

    def _refusal(self, seat: AgentSeat) -> str | None:
        problems = seat.problems(self.core.settings)
        return "; ".join(problems) if problems else None

    def _reason_refusal(self, reason: str | None) -> str | None:
        if reason not in self.settings.pause_reasons:
            return f"pause reason {reason!r} is not one of {list(self.settings.pause_reasons)}"
        return None

    def _refused(self, operation: str, seat: AgentSeat, error: str) -> ActionReport:
        log.warning("agents.refused", operation=operation, interface=seat.interface, error=error)
        return ActionReport(operation, seat.interface, (), error)

    def _report(self, operation: str, seat: AgentSeat, results: list[QueueResult]) -> ActionReport:
        report = ActionReport(operation, seat.interface, tuple(results))
        log.info("agents.operation", operation=operation, interface=seat.interface, ok=report.ok,
                 outcomes=[f"{r.action}:{r.queue or '*'}:{r.outcome.value}" for r in results])
        return report


def _state_message(change: StateChange, account_id: int | None) -> dict[str, Any]:
    return {"type": "state", "account_id": account_id, "agent": change.agent.as_json(),
            "from": change.before.value, "cause": change.cause, "uniqueid": change.uniqueid,
            "at": change.at.isoformat()}


def _ring_no_answer(fact: RingNoAnswer, account_id: int | None) -> dict[str, Any]:
    return {"type": "ring_no_answer", "account_id": account_id, "interface": fact.agent.interface,
            "extension": fact.agent.extension, "name": fact.agent.name, "queue": fact.queue,
            "uniqueid": fact.uniqueid, "linkedid": fact.linkedid, "caller_number": fact.caller_number,
            "ring_ms": fact.ring_ms, "at": fact.at.isoformat()}


def _now() -> datetime:
    return datetime.now(timezone.utc)
