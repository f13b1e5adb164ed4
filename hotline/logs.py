"""Structured logging: JSON in production, readable in a terminal.

Every line about a call carries ``call_id`` (Asterisk's Linkedid of the caller's
channel) through :mod:`structlog.contextvars`, so one grep finds a whole call.
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from typing import Iterator

import structlog


def configure_logging(log_format: str = "console", level: int = logging.INFO) -> None:
    """Route structlog and the standard library (panoramisk, asyncpg, aiohttp) to one
    renderer: ``json`` for log shippers, ``console`` for people."""
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)


@contextmanager
def bound_call(call_id: str | None, **extra: str) -> Iterator[None]:
    """Bind the call's unique id (and anything else) to every log line inside."""
    if not call_id:
        yield
        return
    with structlog.contextvars.bound_contextvars(call_id=call_id, **extra):
        yield
