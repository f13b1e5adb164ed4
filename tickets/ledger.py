"""The ledger (台账): one row per ticket with every deadline and whether it was
met, in CSV and XLSX, with Simplified Chinese column labels and local times.

Pure apart from the XLSX bytes (openpyxl: the de-facto library for writing
.xlsx from Python, pure Python, no spreadsheet program needed)."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence
from zoneinfo import ZoneInfo

from tickets.model import DUE_COLUMN, MET_COLUMN, Deadline, TicketSource, TicketState

MET = "按时"
LATE = "超时"
PENDING = "未到期"
OVERDUE = "已超期"


def met(due: datetime | None, done: datetime | None, now: datetime, moot: bool = False) -> str:
    """按时 / 超时 (met, late), 已超期 (unmet, passed) / 未到期 (unmet, running); empty without a deadline."""
    if due is None:
        return ""
    if done is not None:
        return MET if done <= due else LATE
    if moot:
        return ""
    return OVERDUE if due < now else PENDING


def _local(value: datetime | None, tz: ZoneInfo) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M") if value is not None else ""


def _state_moot(ticket: Mapping[str, Any], deadline: Deadline) -> bool:
    state = TicketState(ticket["state"])
    if state is TicketState.CLOSED:
        return True
    return deadline is not Deadline.KNOWLEDGE and state is TicketState.DISPATCHED


def deadline_status(ticket: Mapping[str, Any], deadline: Deadline, now: datetime) -> str:
    """How a ticket stands against one of its deadlines, as the ledger says it."""
    return met(ticket[DUE_COLUMN[deadline]], ticket[MET_COLUMN[deadline]], now, _state_moot(ticket, deadline))


Column = tuple[str, Callable[[Mapping[str, Any], ZoneInfo, datetime, Mapping[str, str]], Any]]

COLUMNS: tuple[Column, ...] = (
    ("工单编号", lambda t, tz, now, d: t["number"]),
    ("来源", lambda t, tz, now, d: TicketSource(t["source"]).label),
    ("状态", lambda t, tz, now, d: TicketState(t["state"]).label),
    ("部门", lambda t, tz, now, d: d.get(t["department"] or "", t["department"] or "")),
    ("承办坐席", lambda t, tz, now, d: "" if t["assignee_account_id"] is None else str(t["assignee_account_id"])),
    ("来电号码", lambda t, tz, now, d: t["caller_number"] or ""),
    ("通话编号", lambda t, tz, now, d: t["linkedid"] or ""),
    ("主题", lambda t, tz, now, d: t["subject"]),
    ("受理原因", lambda t, tz, now, d: t["reason"] or ""),
    ("需回拨", lambda t, tz, now, d: "是" if t["callback"] else "否"),
    ("知识库缺失", lambda t, tz, now, d: "是" if t["knowledge_gap"] else "否"),
    ("受理时间", lambda t, tz, now, d: _local(t["opened_at"], tz)),
    ("核实时限", lambda t, tz, now, d: _local(t["verify_due"], tz)),
    ("核实时间", lambda t, tz, now, d: _local(t["verified_at"], tz)),
    ("核实是否按时", lambda t, tz, now, d: deadline_status(t, Deadline.VERIFY, now)),
    ("答复时限", lambda t, tz, now, d: _local(t["answer_due"], tz)),
    ("答复时间", lambda t, tz, now, d: _local(t["answered_at"], tz)),
    ("答复是否按时", lambda t, tz, now, d: deadline_status(t, Deadline.ANSWER, now)),
    ("知识库补充时限", lambda t, tz, now, d: _local(t["knowledge_due"], tz)),
    ("知识库补充时间", lambda t, tz, now, d: _local(t["knowledge_done_at"], tz)),
    ("知识库补充是否按时", lambda t, tz, now, d: deadline_status(t, Deadline.KNOWLEDGE, now)),
    ("已上报超时", lambda t, tz, now, d: _local(t["escalated_at"], tz)),
    ("重新打开次数", lambda t, tz, now, d: t["reopened_count"]),
    ("派发12345时间", lambda t, tz, now, d: _local(t["dispatched_at"], tz)),
    ("12345编号", lambda t, tz, now, d: t.get("external_id") or ""),
    ("满意度", lambda t, tz, now, d: t["survey_rating"] or ""),
    ("办结时间", lambda t, tz, now, d: _local(t["closed_at"], tz)),
)
LABELS = tuple(label for label, _ in COLUMNS)


def rows(tickets: Sequence[Mapping[str, Any]], tz: ZoneInfo, now: datetime,
         department_names: Mapping[str, str]) -> list[list[Any]]:
    """The ledger's rows (labels first)."""
    out: list[list[Any]] = [list(LABELS)]
    for ticket in tickets:
        out.append([value(ticket, tz, now, department_names) for _, value in COLUMNS])
    return out


def to_csv(table: Sequence[Sequence[Any]]) -> bytes:
    """UTF-8 with a byte-order mark, so spreadsheet programs read the Chinese right."""
    text = io.StringIO()
    csv.writer(text).writerows(table)
    return text.getvalue().encode("utf-8-sig")


def to_xlsx(table: Sequence[Sequence[Any]], title: str = "工单台账") -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = title
    for row in table:
        sheet.append(list(row))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    for index, label in enumerate(table[0] if table else (), start=1):
        sheet.column_dimensions[sheet.cell(row=1, column=index).column_letter].width = max(10, 2 * len(str(label)) + 2)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
