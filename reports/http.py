"""The report for supervisors: ``GET /reports`` (the page), ``GET
/api/reports`` (JSON) and ``GET /api/reports.csv``, each with ``from``,
``to`` (local dates, both included; default the last seven days) and
``department``. Every reading is in the audit log (``report.viewed``)."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp import web

from hotline.app import CORE
from hotline.auth.audit import record_request
from hotline.auth.roles import Role, page, requires
from hotline.http import json_response
from hotline.web import add_nav, add_templates, render, render_error
from reports.figures import BadPeriod, Period, period_of, to_csv
from reports.service import build_report
from tickets.model import SOURCE_LABELS, SURVEY_RATINGS


async def _today(conn: asyncpg.Connection, zone: str) -> date:
    return await conn.fetchval("SELECT (now() AT TIME ZONE $1)::date", zone)


async def _report(request: web.Request, form: str) -> tuple[Period, dict[str, Any]]:
    """The report the query asks for (BadPeriod for a bad one), audited."""
    core = request.app[CORE]
    settings = core.settings
    query = request.query
    async with core.api_pool.acquire(timeout=settings.database.connect_timeout) as conn:
        period = period_of(query.get("from"), query.get("to"), query.get("department"),
                           _zone(request), {d.code: d.name for d in settings.departments},
                           await _today(conn, settings.tickets.timezone))
        report = await build_report(conn, settings, period)
        await record_request(conn, request, "report.viewed", detail={**report["period"], "form": form})
    return period, report


def _zone(request: web.Request) -> ZoneInfo:
    return ZoneInfo(request.app[CORE].settings.tickets.timezone)


def _busy() -> web.Response:
    response = json_response({"error": "the database is busy; try again shortly"}, 503)
    response.headers["Retry-After"] = "1"
    return response


@page
@requires(Role.SUPERVISOR)
async def report_page(request: web.Request) -> web.Response:
    try:
        period, report = await _report(request, "page")
    except BadPeriod as exc:
        return await render_error(request, 400, f"统计条件有误：{exc}")
    except (asyncpg.QueryCanceledError, asyncio.TimeoutError):
        return await render_error(request, 503, "统计耗时过长或系统繁忙，请缩小日期范围或稍后再试。")
    settings = request.app[CORE].settings
    return render(request, "report.html", {
        "report": report, "period": period, "departments": settings.departments,
        "query": {k: v for k, v in request.query.items() if v}, "ratings": SURVEY_RATINGS,
        "source_labels": {s.value: label for s, label in SOURCE_LABELS.items()}})


async def _answered(request: web.Request, form: str,
                    answer: Callable[[Period, dict[str, Any]], web.Response]) -> web.Response:
    """A JSON or CSV route: ``answer`` with the report, or the refusal as JSON."""
    try:
        period, report = await _report(request, form)
    except BadPeriod as exc:
        return json_response({"error": str(exc)}, 400)
    except (asyncpg.QueryCanceledError, asyncio.TimeoutError):
        return _busy()
    return answer(period, report)


def _attachment(period: Period, report: dict[str, Any]) -> web.Response:
    response = web.Response(body=to_csv(report).encode("utf-8-sig"), content_type="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="report-{period.first}-{period.last}.csv"'
    return response


@requires(Role.SUPERVISOR)
async def report_json(request: web.Request) -> web.Response:
    return await _answered(request, "json", lambda _period, report: json_response({"report": report}))


@requires(Role.SUPERVISOR)
async def report_csv(request: web.Request) -> web.Response:
    return await _answered(request, "csv", _attachment)


def add_routes(app: web.Application) -> None:
    add_templates(app, Path(__file__).parent / "templates")
    app.router.add_get("/reports", report_page)
    app.router.add_get("/api/reports", report_json)
    app.router.add_get("/api/reports.csv", report_csv)
    add_nav(app, "统计报表", "/reports", Role.SUPERVISOR)
