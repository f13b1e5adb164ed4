"""The open consoles of this process and what each is sent.

Each console (one WebSocket per agent's page) gets only its own agent's
messages, the agent's state changes and calls not answered (hub topic
``agents``, matched by the agent's phone ``PJSIP/<ext>``), the queue panel
(topic ``queues``) and the screen-pops made for the agent's calls. Messages
come from the event hub, so a console in a ``--web-only`` process gets the
bridge's through NOTIFY like one beside the bridge.

A screen-pop is made once per call when it is offered (AgentCalled) and sent
again when it is answered (AgentConnect); making it reads PostgreSQL (the menu's
timeline rows, the knowledge items, the caller's history) on a task of its own,
after the agent's state, which goes out at once. Callers' numbers are masked
per console, by the role of its person (:mod:`.masking`); each message is
encoded at most once per way of showing numbers.

Sending never waits: a console too far behind is closed (1013) and reconnects.
"""

from __future__ import annotations

import asyncio
import copy
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

import asyncpg

from agents.console import store
from agents.console.masking import sees_full_number, shown_number
from agents.console.screen_pop import Pop, PopCall, department_of, history_json, knowledge_json, menu_summary
from agents.seat import AgentSeat
from agents.service import AgentDesk
from hotline.auth.roles import Role
from hotline.core import Core
from hotline.fanout import BrowserClient
from hotline.http import dumps
from hotline.hub import TOPIC_AGENTS, TOPIC_QUEUES
from hotline.logs import bound_call, get_logger

log = get_logger(__name__)

CLIENT_QUEUE = 256     # messages a console may be behind before it is closed
POPS_KEPT = 256        # screen-pops kept for calls still ringing, answered or in wrap-up
POOL_TIMEOUT = 2.0
FLUSH_WAIT = 1.0       # seconds the pop waits for the call writer before reading anyway
CALL_PHASES = {"ringing", "connected"}
STOPPING = "the service is stopping"


@dataclass(eq=False)
class ConsoleClient:
    seat: AgentSeat
    role: Role
    session_id: int
    outbox: BrowserClient

    @property
    def interface(self) -> str:
        return self.seat.interface


class Consoles:
    def __init__(self, core: Core, desk: AgentDesk):
        self.core = core
        self.desk = desk
        self.settings = core.settings
        self._clients: dict[str, set[ConsoleClient]] = {}
        self._last_state: dict[str, Mapping[str, Any]] = {}   # interface -> its latest state message
        self._last_panel: Mapping[str, Any] | None = None
        self._popped: dict[str, tuple[str, str]] = {}          # interface -> (uniqueid, phase) last popped
        self._pops: OrderedDict[str, asyncio.Task[Pop]] = OrderedDict()
        self._tasks: set[asyncio.Task] = set()
        self._unsubscribe: list[Callable[[], None]] = []

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        hub = self.core.hub
        self._unsubscribe = [hub.subscribe_live(TOPIC_AGENTS, self._agent_message),
                             hub.subscribe_live(TOPIC_QUEUES, self._panel_message)]

    async def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        self.close_all(STOPPING)
        for task in list(self._tasks) + list(self._pops.values()):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._pops.values(), return_exceptions=True)
        self._pops.clear()

    def close_all(self, reason: str) -> None:
        for clients in self._clients.values():
            for client in clients:
                client.outbox.drop(reason)

    # -- consoles -----------------------------------------------------------------------

    def attach(self, seat: AgentSeat, role: Role, session_id: int, address: str | None) -> ConsoleClient:
        """A console opened: it gets a ``hello`` (its agent's state, the queue
        panel, the pause reasons and departments) and, if the agent has a call
        or is wrapping one up, its screen-pop."""
        self.desk.register(seat)
        client = ConsoleClient(seat, role, session_id, BrowserClient(frozenset(), CLIENT_QUEUE, address))
        self._clients.setdefault(seat.interface, set()).add(client)
        agent = self.agent_json(seat)
        self._send(client, {
            "type": "hello", "agent": self._masked_agent(agent, role),
            "seat": {"account_id": seat.account_id, "name": seat.name, "extension": seat.extension,
                     "queues": [{"queue": q.queue, "penalty": q.penalty,
                                 "department": department_of(self.settings, queue=q.queue)} for q in seat.queues]},
            "pause_reasons": list(self.desk.pause_reasons),
            "departments": [{"code": d.code, "name": d.name, "queue": d.queue} for d in self.settings.departments],
            "full_numbers": sees_full_number(role, self.settings.console),
            "wrapup_max": self.desk.settings.wrapup_max,
            "panel": self._panel(),
        })
        call, wrapup = agent.get("call"), agent.get("wrapup")
        if call and call.get("linkedid"):
            self._pop_later([client], _pop_call(call), call.get("phase", "ringing"))
        elif wrapup and wrapup.get("linkedid"):
            self._pop_later([client], None, "wrap_up", wrapup["uniqueid"], wrapup["linkedid"])
        return client

    def detach(self, client: ConsoleClient) -> None:
        clients = self._clients.get(client.interface)
        if clients is not None:
            clients.discard(client)
            if not clients:
                del self._clients[client.interface]

    def clients(self, interface: str | None = None) -> int:
        if interface is not None:
            return len(self._clients.get(interface, ()))
        return sum(len(c) for c in self._clients.values())

    def agent_json(self, seat: AgentSeat) -> dict[str, Any]:
        """The agent's state: the desk's where this process follows Asterisk,
        else the latest state message heard (a web-only process), else offline."""
        if self.core.ami is None and seat.interface in self._last_state:
            return dict(self._last_state[seat.interface]["agent"])
        return self.desk.state(seat).as_json()

    # -- what the hub publishes ----------------------------------------------------------

    def _agent_message(self, message: Mapping[str, Any]) -> None:
        kind = message.get("type")
        if kind == "state":
            agent = message.get("agent") or {}
            interface = agent.get("interface")
            if not interface:
                return
            self._last_state[interface] = message
            clients = self._clients.get(interface)
            if not clients:
                return
            self._deliver(clients, message, _mask_state)
            call = agent.get("call")
            if not call:
                self._popped.pop(interface, None)
            elif call.get("linkedid") and call.get("phase") in CALL_PHASES:
                shown = (call["uniqueid"], call["phase"])
                if self._popped.get(interface) != shown:
                    self._popped[interface] = shown
                    self._pop_later(clients, _pop_call(call), call["phase"])
        elif kind == "ring_no_answer":
            clients = self._clients.get(str(message.get("interface")))
            if clients:
                self._deliver(clients, message, _mask_field("caller_number"))

    def _panel_message(self, message: Mapping[str, Any]) -> None:
        self._last_panel = message
        everyone = [c for clients in self._clients.values() for c in clients]
        if everyone:
            data = dumps(message).encode()
            for client in everyone:
                self._offer(client, data)

    def _panel(self) -> Mapping[str, Any]:
        if self._last_panel is not None and self.core.ami is None:
            return self._last_panel       # a web-only process: the bridge's panel
        at = datetime.now(timezone.utc)
        return {"type": "panel", "at": at.isoformat(), "queues": [v.as_json(at) for v in self.desk.queues()]}

    # -- screen-pops ----------------------------------------------------------------------

    def _pop_later(self, clients: Iterable[ConsoleClient], call: PopCall | None, phase: str,
                   uniqueid: str | None = None, linkedid: str | None = None) -> None:
        targets = list(clients)
        key = call.uniqueid if call is not None else str(uniqueid)
        made = self._pops.get(key)
        if made is None or (made.done() and not made.cancelled() and made.exception() is None
                            and made.result().problems):
            made = asyncio.create_task(self._make_pop(call, key, linkedid), name=f"console-pop-{key}")
            self._pops[key] = made
            while len(self._pops) > POPS_KEPT:
                _, old = self._pops.popitem(last=False)
                old.cancel()
        else:
            self._pops.move_to_end(key)
        sender = asyncio.create_task(self._send_pop(made, targets, phase))
        self._tasks.add(sender)
        sender.add_done_callback(self._tasks.discard)

    async def _send_pop(self, made: asyncio.Task[Pop], clients: list[ConsoleClient], phase: str) -> None:
        try:
            pop = await asyncio.shield(made)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("console.pop_failed")
            return
        encoded: dict[bool, bytes] = {}
        for client in clients:
            if client not in self._clients.get(client.interface, ()):
                continue          # closed meanwhile
            full = sees_full_number(client.role, self.settings.console)
            if full not in encoded:
                encoded[full] = dumps(pop.for_role(client.role, phase, self.settings.console)).encode()
            self._offer(client, encoded[full])

    async def _make_pop(self, call: PopCall | None, uniqueid: str, linkedid: str | None) -> Pop:
        console = self.settings.console
        problems: list[str] = []
        menu, knowledge, history = None, [], None
        with bound_call(call.linkedid if call else linkedid):
            try:
                # What this process already knows of the call (the menu's last rows may be
                # moments old when an agent is free at once) is in PostgreSQL before it is read.
                await self.core.writer.flush(timeout=FLUSH_WAIT)
            except asyncio.TimeoutError:
                problems.append("writer_behind")
            try:
                async with self.core.pool.acquire(timeout=POOL_TIMEOUT) as conn:
                    if call is None:
                        row = await store.call_caller(conn, str(linkedid))
                        call = PopCall(uniqueid, str(linkedid), row["queue"] if row else None,
                                       row["caller_number"] if row else None, row["caller_name"] if row else None)
                    rows = await store.menu_rows(conn, call.linkedid)
                    items = {str(r["detail"]["item"]) for r in rows if (r["detail"] or {}).get("item")}
                    questions = {i: await store.knowledge_question(conn, i) for i in items}
                    menu = menu_summary(rows, self.settings, {k: v for k, v in questions.items() if v})
                    intent = (menu or {}).get("intent") or department_of(self.settings, queue=call.queue)
                    matched = ((menu or {}).get("item") or {}).get("id")
                    if intent:
                        knowledge = knowledge_json(
                            await store.knowledge_for(conn, intent["code"], matched, console.knowledge_items))
                    history = []
                    if call.caller_number:
                        history = history_json(await store.previous_calls(
                            conn, call.caller_number, call.linkedid, datetime.now(timezone.utc),
                            console.history_days, console.history_limit), self.settings)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as exc:
                log.warning("console.pop_incomplete", uniqueid=uniqueid, error=repr(exc))
                problems.append("database")
            if call is None:
                call = PopCall(uniqueid, str(linkedid), None, None, None)
            log.info("console.pop_made", uniqueid=call.uniqueid, menu=(menu or {}).get("kind"),
                     knowledge=len(knowledge), history=None if history is None else len(history))
        return Pop(call, menu, knowledge, history, department_of(self.settings, queue=call.queue), problems)

    # -- sending ------------------------------------------------------------------------

    def _deliver(self, clients: Iterable[ConsoleClient], message: Mapping[str, Any],
                 mask: Callable[[Mapping[str, Any], Role, Any], Mapping[str, Any]]) -> None:
        """``message`` to ``clients``, numbers shown as each one's role may see them."""
        encoded: dict[bool, bytes] = {}
        for client in list(clients):
            full = sees_full_number(client.role, self.settings.console)
            if full not in encoded:
                encoded[full] = dumps(mask(message, client.role, self.settings.console)).encode()
            self._offer(client, encoded[full])

    def _send(self, client: ConsoleClient, message: Mapping[str, Any]) -> None:
        self._offer(client, dumps(message).encode())

    def _offer(self, client: ConsoleClient, data: bytes) -> None:
        if not client.outbox.offer(data):
            log.warning("console.client_dropped", interface=client.interface, reason=client.outbox.dropped_reason)
            self.detach(client)

    def _masked_agent(self, agent: Mapping[str, Any], role: Role) -> Mapping[str, Any]:
        return _mask_state({"agent": agent}, role, self.settings.console)["agent"]


def _pop_call(call: Mapping[str, Any]) -> PopCall:
    return PopCall(uniqueid=str(call["uniqueid"]), linkedid=str(call.get("linkedid") or call["uniqueid"]),
                   queue=call.get("queue"), caller_number=call.get("caller_number"),
                   caller_name=call.get("caller_name"))


def _mask_state(message: Mapping[str, Any], role: Role, console: Any) -> Mapping[str, Any]:
    call = (message.get("agent") or {}).get("call")
    if not call or not call.get("caller_number") or sees_full_number(role, console):
        return message
    masked = copy.deepcopy(dict(message))
    masked["agent"]["call"]["caller_number"] = shown_number(call["caller_number"], role, console)
    return masked


def _mask_field(name: str) -> Callable[[Mapping[str, Any], Role, Any], Mapping[str, Any]]:
    def mask(message: Mapping[str, Any], role: Role, console: Any) -> Mapping[str, Any]:
        if not message.get(name) or sees_full_number(role, console):
            return message
        return {**message, name: shown_number(message[name], role, console)}
    return mask
