"""``hotline report --from D [--to D] [--department CODE] [--csv]``: the report
on the operator's shell, as JSON (the API's shape) or as the CSV table;
audited as ``cli:<user>`` like the other commands that read callers' data."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from typing import TextIO
from zoneinfo import ZoneInfo

import asyncpg

from hotline.auth.audit import record
from hotline.settings import Settings
from reports.figures import BadPeriod, period_of, to_csv
from reports.service import build_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="first", required=True, help="first day, YYYY-MM-DD (local time)")
    parser.add_argument("--to", dest="last", help="last day, included (default: the first)")
    parser.add_argument("--department", help="one department's code (default: all)")
    parser.add_argument("--csv", action="store_true", help="the table (分类, 指标, 数值) instead of JSON")


async def _report(settings: Settings, args: argparse.Namespace) -> dict:
    conn = await asyncpg.connect(settings.database.url)
    try:
        today = await conn.fetchval("SELECT (now() AT TIME ZONE $1)::date", settings.tickets.timezone)
        period = period_of(args.first, args.last, args.department, ZoneInfo(settings.tickets.timezone),
                           {d.code: d.name for d in settings.departments}, today)
        report = await build_report(conn, settings, period)
        await record(conn, f"cli:{getpass.getuser()}", "report.viewed", detail={**report["period"], "form": "cli"})
        return report
    finally:
        await conn.close()


def run(settings: Settings, args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        report = asyncio.run(_report(settings, args))
    except BadPeriod as exc:
        print(f"hotline report: {exc}", file=sys.stderr)
        return 2
    if args.csv:
        out.write(to_csv(report))
    else:
        out.write(json.dumps(report, default=str, ensure_ascii=False, indent=2) + "\n")
    return 0
