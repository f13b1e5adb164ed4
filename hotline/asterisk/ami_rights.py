"""The AMI rights the hotline's user needs, and why (manager.conf ``read`` / ``write``).

Asterisk checks every AMI action against the user's ``write`` classes and sends an
event only to users whose ``read`` classes include the event's class. The bridge is
given exactly the classes that what it sends and what it consumes require, nothing
"just in case": a class is a power (``originate`` places calls through the carrier,
``system`` / ``command`` / ``config`` run or rewrite anything), so a new feature that
needs one adds it to manager.conf with its reason.

- :data:`ACTION_CLASSES`: for each AMI action, the write classes of which any one lets
  a user send it (the ``authority`` Asterisk 22 registers the action with:
  ``ast_manager_register_xml_core`` in main/manager.c, ``ast_manager_register_xml``
  in res/res_agi.c, apps/app_queue.c, apps/app_mixmonitor.c). An empty set: no right
  needed.
- :data:`EVENT_CLASSES`: the read class of each event (the ``Privilege:`` header of
  the real Asterisk 22.10.1 captures in tests/fixtures/asterisk/, checked by the tests).

Only the tables live here; tests/test_asterisk_config.py finds the actions the code
sends and the events it consumes and checks manager.conf against
:func:`needed_write_classes` / :func:`needed_read_classes`.
"""

from __future__ import annotations

from typing import Iterable, Mapping

__all__ = [
    "ACTION_CLASSES",
    "EVENT_CLASSES",
    "CLASS_POWER",
    "needed_write_classes",
    "needed_read_classes",
]

_NONE: frozenset[str] = frozenset()

ACTION_CLASSES: Mapping[str, frozenset[str]] = {
    # main/manager.c
    "Login": _NONE,
    "Logoff": _NONE,
    "Ping": _NONE,
    "Events": _NONE,
    "Challenge": _NONE,
    "Setvar": frozenset({"call"}),
    "Getvar": frozenset({"call", "reporting"}),
    "Hangup": frozenset({"system", "call"}),
    "Redirect": frozenset({"call"}),
    "Status": frozenset({"system", "call", "reporting"}),
    "CoreShowChannels": frozenset({"system", "reporting"}),
    "Originate": frozenset({"originate"}),  # + system when it runs System/Exec/... apps
    "Command": frozenset({"command"}),
    "UserEvent": frozenset({"user"}),
    "GetConfig": frozenset({"system", "config"}),
    "UpdateConfig": frozenset({"config"}),
    "Reload": frozenset({"system", "config"}),
    # res/res_agi.c
    "AGI": frozenset({"agi"}),
    # apps/app_queue.c
    "QueueStatus": _NONE,
    "QueueSummary": _NONE,
    "QueueAdd": frozenset({"agent"}),
    "QueueRemove": frozenset({"agent"}),
    "QueuePause": frozenset({"agent"}),
    "QueuePenalty": frozenset({"agent"}),
    # apps/app_mixmonitor.c
    "MixMonitor": frozenset({"system"}),
    "StopMixMonitor": frozenset({"system", "call"}),
}

EVENT_CLASSES: Mapping[str, str] = {
    "FullyBooted": "system", "Shutdown": "system", "ContactStatus": "system", "PeerStatus": "system",
    "Newchannel": "call", "Newstate": "call", "Hangup": "call", "HangupRequest": "call",
    "SoftHangupRequest": "call", "DialBegin": "call", "DialEnd": "call", "BridgeCreate": "call",
    "BridgeDestroy": "call", "BridgeEnter": "call", "BridgeLeave": "call", "DeviceStateChange": "call",
    "MixMonitorStart": "call", "MixMonitorStop": "call", "MusicOnHoldStart": "call",
    "MusicOnHoldStop": "call", "NewCallerid": "call", "NewConnectedLine": "call",
    "OriginateResponse": "call", "ChanSpyStart": "call", "ChanSpyStop": "call",
    "AgentCalled": "agent", "AgentConnect": "agent", "AgentComplete": "agent",
    "AgentRingNoAnswer": "agent", "QueueCallerJoin": "agent", "QueueCallerLeave": "agent",
    "QueueCallerAbandon": "agent", "QueueMemberAdded": "agent", "QueueMemberRemoved": "agent",
    "QueueMemberPause": "agent", "QueueMemberStatus": "agent", "QueueMemberPenalty": "agent",
    "Newexten": "dialplan", "VarSet": "dialplan",
    "AsyncAGIStart": "agi", "AsyncAGIExec": "agi", "AsyncAGIEnd": "agi",
    "AGIExecStart": "agi", "AGIExecEnd": "agi",
    "Cdr": "cdr",
    "DTMFBegin": "dtmf", "DTMFEnd": "dtmf",
    "RTCPSent": "reporting", "RTCPReceived": "reporting",
    # The dialplan's UserEvent() application (extensions.conf: HotlineSpy).
    "UserEvent": "user",
}

# Least powerful first: where an action accepts several classes, the bridge is
# given the first of them in this order.
CLASS_POWER: tuple[str, ...] = (
    "reporting", "cdr", "dtmf", "dialplan", "agent", "call", "agi", "user",
    "originate", "config", "system", "command",
)


def needed_write_classes(actions: Iterable[str]) -> dict[str, list[str]]:
    """class -> the actions that need it, for a user that must send ``actions``.
    An action that several classes allow is covered by one already needed, else by
    its least powerful class. Raises KeyError for an action not in the table."""
    actions = sorted(set(actions))
    allowed = {action: ACTION_CLASSES[action] for action in actions}
    needed: dict[str, list[str]] = {}
    for action, classes in allowed.items():
        if len(classes) == 1:
            needed.setdefault(next(iter(classes)), []).append(action)
    for action, classes in allowed.items():
        if len(classes) > 1:
            covered = sorted(classes & set(needed), key=CLASS_POWER.index)
            chosen = covered[0] if covered else min(classes, key=CLASS_POWER.index)
            needed.setdefault(chosen, []).append(action)
    return needed


def needed_read_classes(events: Iterable[str]) -> dict[str, list[str]]:
    """class -> the events that need it, for a user that must receive ``events``.
    Raises KeyError for an event not in the table."""
    needed: dict[str, list[str]] = {}
    for event in sorted(set(events)):
        needed.setdefault(EVENT_CLASSES[event], []).append(event)
    return needed
