"""The knowledge-base editors' tasks (知识库缺失): the editor side of the gap
loop, for supervisors.

A task is a ticket marked 知识库缺失 whose answer is not in yet (due at its
``knowledge_due``, 5 working days on the calendar, with its timers), or a
question the voice menu could not place that no such ticket covers (a person
answered that call; due 5 working days after it was kept, shown, not timed).
The editor answers it by linking an existing knowledge item or writing a new
one (checked as the knowledge files are, added to ``knowledge_items``); that
closes the task and records which item answered it
(:meth:`TicketService.resolve_knowledge_gap` for a ticket, the question's
``knowledge_item_id`` for a question). A question that is not one (noise,
a caller's aside) may be dismissed with a note. Every view and change is audited.

The voice menu reads ``config/knowledge/`` files, not the table: an item
written here reaches callers once it is exported to the files
(``hotline knowledge export``) and deployed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from aiohttp import web

from hotline.app import CORE
from hotline.auth.audit import record_request
from hotline.auth.middleware import IDENTITY
from hotline.auth.roles import Role, page, requires
from hotline.web import add_nav, add_templates, form_text, render, render_error
from knowledge.model import check_item
from knowledge.store import add_item, fetch_item, search, set_unplaced_status
from tickets import store
from tickets.http import TICKETS
from tickets.model import Deadline
from tickets.service import TicketInputError

QUESTIONS_SHOWN = 200
FIELD_LABELS = {"id": "编号", "department": "部门", "question": "标准问题", "answer": "答案", "procedure": "办理流程",
                "materials": "所需材料", "keywords": "关键词", "self_service": "可自助播报", "overview": "部门概述"}
DONE = {"answered": "已补充答案，任务已完成。", "dismissed": "已忽略该问题。"}


def _reading(request: web.Request):
    core = request.app[CORE]
    return core.api_pool.acquire(timeout=core.settings.database.connect_timeout)


@page
@requires(Role.SUPERVISOR)
async def gaps_page(request: web.Request) -> web.Response:
    service = request.app[TICKETS]
    async with _reading(request) as conn:
        tickets = await store.open_gap_tickets(conn)
        questions = await store.unticketed_questions(conn, QUESTIONS_SHOWN)
        now = await store.now(conn)
        await record_request(conn, request, "knowledge_gaps.viewed",
                             detail={"tickets": len(tickets), "questions": len(questions)})
    tasks = [{"kind": "ticket", "id": t["id"], "title": t["number"], "texts": t["questions"] or [t["subject"]],
              "due": t["knowledge_due"], "since": t["opened_at"], "linkedid": t["linkedid"]} for t in tickets]
    tasks += [{"kind": "question", "id": q["id"], "title": f"问题 {q['id']}", "texts": [q["text"]],
               "due": service.deadlines.due(Deadline.KNOWLEDGE, q["created_at"]), "since": q["created_at"],
               "linkedid": q["linkedid"]} for q in questions]
    tasks.sort(key=lambda t: (t["due"], t["kind"], t["id"]))
    return render(request, "gaps.html", {"tasks": tasks, "now": now, "done": DONE.get(request.query.get("done", "")),
                                         "working_days": service.settings.knowledge_working_days})


async def _task(request: web.Request, conn) -> dict[str, Any] | None:
    """The task of the URL while it is open, or None."""
    kind, task_id = request.match_info["kind"], int(request.match_info["task_id"])
    service = request.app[TICKETS]
    if kind == "ticket":
        ticket = await store.ticket(conn, task_id)
        if ticket is None or not ticket["knowledge_gap"] or ticket["knowledge_done_at"] is not None:
            return None
        questions = await store.unplaced_of(conn, ticket["linkedid"]) if ticket["linkedid"] else []
        return {"kind": kind, "id": task_id, "title": f"工单 {ticket['number']}", "ticket": ticket,
                "texts": [q["text"] for q in questions] or [ticket["subject"]], "due": ticket["knowledge_due"],
                "department": ticket["department"], "linkedid": ticket["linkedid"]}
    question = await conn.fetchrow("SELECT * FROM unplaced_questions WHERE id = $1 AND status IN ('new', 'in_progress')",
                                   task_id)
    if question is None:
        return None
    call = await store.call_of(conn, question["linkedid"]) if question["linkedid"] else None
    return {"kind": kind, "id": task_id, "title": f"未识别问题 {task_id}", "texts": [question["text"]],
            "due": service.deadlines.due(Deadline.KNOWLEDGE, question["created_at"]),
            "department": call["department"] if call else None, "linkedid": question["linkedid"]}


async def _task_page(request: web.Request, *, error: str | None = None, problems: list[str] | None = None,
                     form: Mapping[str, str] | None = None, status: int = 200) -> web.Response:
    service = request.app[TICKETS]
    typed = request.query.get("q", "").strip()[:50]
    async with _reading(request) as conn:
        task = await _task(request, conn)
        if task is None:
            return await render_error(request, 404, "这个任务不存在或已经完成。")
        hits = await search(conn, typed or task["texts"][0], limit=10)
        await record_request(conn, request, "knowledge_gap.viewed", f"{task['kind']}:{task['id']}")
    form = dict(form or {})
    form.setdefault("question", task["texts"][0][:80])
    form.setdefault("department", task["department"] or "")
    return render(request, "gap.html", {
        "task": task, "hits": hits, "q": typed, "error": error, "problems": problems or [], "form": form,
        "departments": [{"code": c, "name": n} for c, n in service.department_names.items()]}, status=status)


@page
@requires(Role.SUPERVISOR)
async def gap_page(request: web.Request) -> web.Response:
    return await _task_page(request)


def _lines(text: str, *separators: str) -> list[str]:
    for separator in separators:
        text = text.replace(separator, "\n")
    return [part.strip() for part in text.splitlines() if part.strip()]


def _new_item(request: web.Request, form: Mapping[str, Any]):
    """The item the form describes, checked as the knowledge files are:
    (item, problems in Chinese-labelled form)."""
    raw = {"id": form_text(form, "id"), "department": form_text(form, "department"), "question": form_text(form, "question"),
           "answer": form_text(form, "answer"), "procedure": _lines(form_text(form, "procedure")),
           "materials": _lines(form_text(form, "materials")),
           "keywords": _lines(form_text(form, "keywords"), ",", "，", "、", ";", "；"),
           "self_service": form.get("self_service") == "1"}
    item, problems = check_item(raw, file="网页表单", where="新条目",
                                departments=request.app[TICKETS].department_names)
    return item, [f"{FIELD_LABELS.get(p.field or '', p.field or '')}：{p.message}" for p in problems]


@page
@requires(Role.SUPERVISOR)
async def gap_answer(request: web.Request) -> web.StreamResponse:
    """POST /knowledge/gaps/{kind}/{id}/{link|create|dismiss}."""
    how = request.match_info["how"]
    form = await request.post()
    kept = {name: form_text(form, name) for name in ("item_id", "id", "department", "question", "answer",
                                                  "procedure", "materials", "keywords", "note")}
    actor = request[IDENTITY].actor
    async with _reading(request) as conn:
        task = await _task(request, conn)
    if task is None:
        return await render_error(request, 404, "这个任务不存在或已经完成。")
    if how == "dismiss":
        if task["kind"] != "question" or not kept["note"]:
            return await _task_page(request, error="忽略一个问题需要写明原因。", form=kept, status=400)
        async with _reading(request) as conn:
            await set_unplaced_status(conn, task["id"], "dismissed", note=kept["note"])
            await record_request(conn, request, "unplaced_question.dismissed", f"question:{task['id']}",
                                 {"note": kept["note"]})
        raise web.HTTPSeeOther("/knowledge/gaps?done=dismissed")
    if how == "create":
        item, problems = _new_item(request, form)
        if item is None:
            return await _task_page(request, error="新条目未通过校验：", problems=problems, form=kept, status=400)
        async with _reading(request) as conn:
            if not await add_item(conn, item):
                return await _task_page(request, error=f"编号 {item.id} 已被使用：请换一个编号，或直接关联该条目。",
                                        form=kept, status=409)
            await record_request(conn, request, "knowledge_item.created", f"knowledge:{item.id}",
                                 {"task": f"{task['kind']}:{task['id']}"})
        item_id = item.id
    else:
        item_id = kept["item_id"]
        async with _reading(request) as conn:
            if not item_id or await fetch_item(conn, item_id) is None:
                return await _task_page(request, error=f"知识库中没有编号为“{item_id}”的条目。", form=kept, status=400)
    await _close(request, task, item_id, actor)
    raise web.HTTPSeeOther("/knowledge/gaps?done=answered")


async def _close(request: web.Request, task: Mapping[str, Any], item_id: str, actor: str) -> None:
    """The task answered by the item: its ticket's gap resolved (and with it
    the call's questions), or the question answered, or, for a question a gap
    ticket has come to cover meanwhile, that ticket."""
    ticket_id = task["id"] if task["kind"] == "ticket" else None
    if ticket_id is None:
        async with _reading(request) as conn:
            ticket_id = await store.gap_ticket_of_question(conn, task["id"])
    if ticket_id is not None:
        try:
            ticket = await request.app[TICKETS].resolve_knowledge_gap(ticket_id, item_id, actor)
        except TicketInputError as exc:      # the item went away between the check and now
            raise web.HTTPConflict(text=str(exc)) from exc
        subject, action = f"ticket:{ticket['number']}", "ticket.knowledge_answered"
    else:
        async with _reading(request) as conn:
            await set_unplaced_status(conn, task["id"], "answered", knowledge_item_id=item_id)
        subject, action = f"question:{task['id']}", "unplaced_question.answered"
    async with _reading(request) as conn:
        await record_request(conn, request, action, subject, {"knowledge_item_id": item_id, "page": True})


def add_routes(app: web.Application) -> None:
    add_templates(app, Path(__file__).parent / "templates")
    app.router.add_get("/knowledge/gaps", gaps_page)
    app.router.add_get(r"/knowledge/gaps/{kind:ticket|question}/{task_id:\d{1,18}}", gap_page)
    app.router.add_post(r"/knowledge/gaps/{kind:ticket|question}/{task_id:\d{1,18}}/{how:link|create|dismiss}",
                        gap_answer)
    add_nav(app, "知识库缺失", "/knowledge/gaps", Role.SUPERVISOR)
