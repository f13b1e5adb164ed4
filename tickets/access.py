"""Who may see a ticket, and how a request's filters of the tickets are read:
shared by the JSON routes (:mod:`tickets.http`) and the pages
(:mod:`tickets.pages`), so both answer the same question the same way."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from hotline.auth.roles import Identity, Role
from tickets.model import STATE_LABELS, TicketState

BY_LABEL = {label: state for state, label in STATE_LABELS.items()}


class BadRequest(ValueError):
    pass


def account_of(identity: Identity) -> int | None:
    """The identity's agent account, when it is a person's (the accounts' sessions)."""
    return identity.id if identity.kind == "account" else None


def visible(identity: Identity, ticket: Mapping[str, Any]) -> bool:
    """Supervisors see every ticket; an agent those they opened or that are theirs."""
    if identity.role.admits(Role.SUPERVISOR):
        return True
    account = account_of(identity)
    return ticket["opened_by"] == identity.actor or (account is not None and ticket["assignee_account_id"] == account)


def only_visible(identity: Identity) -> dict[str, Any]:
    """The listing's restriction for this identity (none for supervisors)."""
    if identity.role.admits(Role.SUPERVISOR):
        return {}
    return {"visible_to": identity.actor, "visible_account": account_of(identity)}


def state_of(value: str) -> TicketState:
    """A state by its code (``in_progress``) or its Chinese name (处理中)."""
    value = value.strip()
    if value in BY_LABEL:
        return BY_LABEL[value]
    try:
        return TicketState(value)
    except ValueError:
        raise BadRequest(f"unknown state {value!r} (one of {', '.join(s.value for s in TicketState)} "
                         f"or {'、'.join(BY_LABEL)})") from None


def moment(raw: str, tz: ZoneInfo, *, end: bool) -> datetime:
    """YYYY-MM-DD (local; ``end``: the midnight after it) or an ISO time with offset."""
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw) + (timedelta(days=1) if end else timedelta(0))
            return datetime.combine(day, time(0), tzinfo=tz)
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{raw!r} is not a date (YYYY-MM-DD) or a time with its offset") from None
    if at.tzinfo is None:
        raise BadRequest(f"{raw!r} has no UTC offset")
    return at


def whole(raw: str | None, name: str, low: int = 1, high: int = 2**62) -> int | None:
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdecimal()) or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def filters(query: Mapping[str, str], tz: ZoneInfo, department_names: Mapping[str, str]) -> dict[str, Any]:
    """``from``, ``to`` (local dates), ``department``, ``state`` (comma-separated
    codes or names), ``overdue``, ``assignee``: the keywords of
    :func:`tickets.store.find_tickets`."""
    department = query.get("department") or None
    if department is not None and department not in department_names:
        raise BadRequest(f"unknown department {department!r}")
    states = [state_of(s).value for s in query.get("state", "").split(",") if s.strip()] or None
    return {"since": moment(query["from"], tz, end=False) if query.get("from") else None,
            "until": moment(query["to"], tz, end=True) if query.get("to") else None,
            "department": department, "states": states,
            "overdue": query.get("overdue", "") in ("1", "true", "yes", "on"),
            "assignee": whole(query.get("assignee"), "assignee")}
