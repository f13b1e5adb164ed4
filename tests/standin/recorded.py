"""Look up recorded messages in a capture (by ActionID, by event name)."""

from __future__ import annotations

from .framing import get_header, is_response, parse_message, split_messages
from .steps import Expect
from .transcript import Transcript


def in_messages(transcript: Transcript, conn: int | None = None) -> list[str]:
    """Every complete message Asterisk sent (all connections, or one), as text."""
    conns = [conn] if conn is not None else transcript.connections
    messages = []
    for number in conns:
        complete, _ = split_messages(transcript.in_bytes(number))
        messages.extend(m.decode("utf-8") for m in complete)
    return messages


def find_action_id(transcript: Transcript, action: str, occurrence: int = 1) -> str:
    """The recorded ActionID of the ``occurrence``-th ``Action: <action>`` the recorder sent."""
    seen = 0
    for conn in transcript.connections:
        for step in transcript.connection(conn):
            if isinstance(step, Expect) and step.action.lower() == action.lower():
                seen += 1
                if seen == occurrence:
                    return step.action_id
    raise LookupError(f"Action {action} #{occurrence} not in {transcript.path}")


def recorded_response(transcript: Transcript, action_id: str) -> str:
    """The recorded response (not event) carrying ``action_id``."""
    for raw in in_messages(transcript):
        headers = parse_message(raw)
        if is_response(headers) and get_header(headers, "ActionID") == action_id:
            return raw
    raise LookupError(f"no response with ActionID {action_id} in {transcript.path}")


def recorded_list(transcript: Transcript, action_id: str) -> list[str]:
    """A recorded list answer: the start response, the items and the ``...Complete`` event.

    Example: ``recorded_list(Transcript.load("actions.jsonl"),
    find_action_id(t, "QueueStatus"))`` gives the QueueStatus list of
    actions.jsonl, ready for ``emulator.lists["QueueStatus"]``.
    """
    result: list[str] = []
    for raw in in_messages(transcript):
        headers = parse_message(raw)
        if get_header(headers, "ActionID") != action_id:
            continue
        if not result and not is_response(headers):
            continue
        result.append(raw)
        if headers.get("EventList", "").lower() == "complete":
            return result
    raise LookupError(f"no complete list with ActionID {action_id} in {transcript.path}")


def recorded_event(transcript: Transcript, event: str, occurrence: int = 1, **match: str) -> str:
    """The ``occurrence``-th recorded ``Event: <event>`` whose headers equal ``match``."""
    seen = 0
    for raw in in_messages(transcript):
        headers = parse_message(raw)
        if headers.get("Event") != event:
            continue
        if all(get_header(headers, k) == v for k, v in match.items()):
            seen += 1
            if seen == occurrence:
                return raw
    raise LookupError(f"Event {event} {match} #{occurrence} not in {transcript.path}")
