"""One report: the store's counts for a period, composed into figures."""

from __future__ import annotations

from typing import Any

import asyncpg

from hotline.settings import Settings
from reports import store
from reports.figures import Period, compose


async def build_report(conn: asyncpg.Connection, settings: Settings, period: Period) -> dict[str, Any]:
    """Every figure for ``period``, read in one repeatable-read snapshot so
    the sections agree with each other."""
    reports = settings.reports
    since, until, department = period.since, period.until, period.department
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        calls = await store.call_figures(conn, since, until, department, reports.service_level_seconds)
        topics = await store.hot_topics(conn, since, until, department, reports.top)
        routed = await store.intents(conn, since, until, department, reports.top)
        unanswered = await store.unanswered_questions(conn, since, until, department, reports.top)
        tickets = await store.ticket_figures(conn, since, until, department)
        ratings = await store.satisfaction(conn, since, until, department)
    return compose(period, calls, topics, routed, unanswered, tickets, ratings, reports, settings.tickets,
                   {d.code: d.name for d in settings.departments})
