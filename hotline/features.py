"""The features plugged into the composition root: one list, in start order.

A feature is a package with the same rooms (see README, "Architecture"):
``setup.py`` with ``setup(app, core)``, ``service.py``, ``events.py``,
``http.py``, ``store.py`` and ``migrations/NNN_name.sql``; a feature only has
the rooms it needs. The order matters twice: features are set up (and their
login hooks run) in this order, and their migrations are applied in version
order across all of them.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

FEATURES: tuple[str, ...] = (
    "hotline.auth",   # first: every route after it is checked (API tokens, roles, audit log)
    "ivr.calls",      # call records: the tracker's facts, resync, the calls API
    "knowledge",      # the knowledge base's tables (the router reads the files)
    "recordings",     # finished MixMonitor files -> the recordings index
    "agents",         # queue membership from queue events and QueueStatus
    "agents.console", # the agents' console: page, WebSocket, screen-pop, dispositions (uses the desk)
    "ivr.menu",       # the voice menu: AsyncAGI sessions, spoken and keypad
    "tickets",        # unresolved cases: deadlines, timers, 12345 outbox, ledger
    "reports",        # the supervisors' report: calls, voice menu, unplaced questions, tickets
)


def migration_dirs(features: tuple[str, ...] = FEATURES) -> list[Path]:
    """Each feature's ``migrations/`` folder, where it has one."""
    found = []
    for name in features:
        package = importlib.import_module(name)
        folder = Path(package.__file__).parent / "migrations"  # type: ignore[arg-type]
        if folder.is_dir():
            found.append(folder)
    return found


def setup_module(name: str) -> ModuleType | None:
    """The feature's ``setup`` module, or None for a feature with tables only."""
    try:
        return importlib.import_module(f"{name}.setup")
    except ModuleNotFoundError as exc:
        if exc.name != f"{name}.setup":
            raise
        return None
