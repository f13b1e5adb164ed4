// The agents' console (/console): one WebSocket (/ws/console) brings this agent's
// state, screen-pops and the queue panel; actions are JSON POSTs with the
// session's CSRF token. Everything from the server is put in the page as text
// (textContent), never as HTML. Callers' numbers arrive already masked.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  if (!$("console")) return;
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const PHASES = { ringing: "振铃中", connected: "通话中", wrap_up: "整理中", ended: "已结束" };
  const BUSY = new Set(["ringing", "in_call"]);
  let agent = null;
  let pop = null;             // the screen-pop shown: {linkedid, uniqueid, phase, knowledge}
  let panel = null;
  let retry = 1000;
  let ended = false;

  function put(node, value) { node.textContent = value == null ? "" : String(value); }

  function make(tag, text, className) {
    const node = document.createElement(tag);
    if (text != null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const h = Math.floor(seconds / 3600), m = Math.floor(seconds / 60) % 60, s = seconds % 60;
    const two = (n) => String(n).padStart(2, "0");
    return (h ? h + ":" + two(m) : two(m)) + ":" + two(s);
  }

  function localTime(iso) {
    return iso ? new Date(iso).toLocaleString("zh-CN", { hour12: false }) : "";
  }

  function say(message, isError) {
    put($("action-message"), isError ? "" : message);
    put($("alert-message"), isError ? message : "");
  }

  // -- the connection -----------------------------------------------------------------

  function connect() {
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/console";
    const socket = new WebSocket(url);
    socket.onopen = () => { put($("connection"), "已连接"); retry = 1000; };
    socket.onmessage = (event) => handle(JSON.parse(event.data));
    socket.onclose = (event) => {
      if (event.code === 4401) {
        ended = true;
        put($("connection"), "登录已失效");
        say("登录已失效（已退出、超时或账户被停用），请重新登录。", true);
        const link = make("a", "重新登录");
        link.href = "/login?next=/console";
        $("alert-message").append(" ", link);
        return;
      }
      put($("connection"), "连接断开，正在重连…");
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 15000);
    };
  }

  function handle(message) {
    switch (message.type) {
      case "hello": hello(message); break;
      case "state": showAgent(message.agent); break;
      case "screen_pop": showPop(message); break;
      case "panel": showPanel(message); break;
      case "ring_no_answer":
        say("有一个来电振铃 " + Math.round((message.ring_ms || 0) / 1000) + " 秒未接听（来电号码 "
            + (message.caller_number || "未知") + "）。", true);
        break;
    }
  }

  function hello(message) {
    const reasons = $("pause-reason");
    reasons.replaceChildren(...message.pause_reasons.map((r) => { const o = make("option", r); o.value = r; return o; }));
    const queues = $("transfer-queue");
    queues.replaceChildren(...message.departments.map((d) => {
      const o = make("option", d.name + "（" + d.queue + "）"); o.value = d.queue; return o;
    }));
    put($("queues"), "服务队列：" + message.seat.queues.map(
      (q) => (q.department ? q.department.name : q.queue) + "（优先级 " + q.penalty + "）").join("、"));
    showAgent(message.agent);
    showPanel(message.panel);
  }

  // -- the agent's own state -------------------------------------------------------------

  function showAgent(next) {
    agent = next;
    const label = $("state-label");
    put(label, next.label);
    label.className = "state state-" + next.state;
    put($("state-reason"), next.reason ? "（" + next.reason + "）" : "");
    const offline = next.state === "offline";
    $("queue-login").disabled = !offline;
    $("queue-logout").disabled = offline;
    $("pause").disabled = offline || next.state === "paused";
    $("unpause").disabled = !(next.queues || []).some((q) => q.paused);
    $("wrapup-done").disabled = next.state !== "wrap_up";
    const call = next.call;
    if (call) {
      if (!pop || pop.uniqueid !== call.uniqueid) {
        startPop(call.uniqueid, call.linkedid);
        put($("pop-number"), call.caller_number || "未知");
        put($("pop-name"), call.caller_name || "");
        put($("pop-queue"), call.queue || "");
      }
      setPhase(call.phase);
    } else if (pop) {
      setPhase(next.wrapup && next.wrapup.uniqueid === pop.uniqueid ? "wrap_up" : "ended");
    }
    $("transfer-queue-go").disabled = $("transfer-extension-go").disabled = !(call && call.phase === "connected");
    tick();
  }

  // -- the screen-pop -------------------------------------------------------------------------

  function startPop(uniqueid, linkedid) {
    pop = { uniqueid: uniqueid, linkedid: linkedid, phase: null, knowledge: [] };
    $("pop").hidden = false;
    for (const id of ["pop-number", "pop-name", "pop-queue", "pop-transcript", "pop-intent", "pop-confidence",
                      "pop-item", "pop-problems", "disposition-message"]) put($(id), "");
    $("pop-knowledge").replaceChildren();
    $("pop-history").tBodies[0].replaceChildren();
    $("disposition-form").reset();
    $("disposition-item").replaceChildren(option("", "（未使用）"));
  }

  function setPhase(phase) {
    if (!pop) return;
    pop.phase = phase;
    put($("pop-phase"), PHASES[phase] || phase);
    $("pop").dataset.phase = phase;
  }

  function option(value, text) { const o = make("option", text); o.value = value; return o; }

  function addItemChoice(item) {
    const select = $("disposition-item");
    if (![...select.options].some((o) => o.value === item.id)) select.append(option(item.id, item.question));
  }

  function showPop(message) {
    if (!pop || pop.uniqueid !== message.uniqueid) startPop(message.uniqueid, message.linkedid);
    pop.linkedid = message.linkedid;
    if (pop.phase === null) setPhase(message.phase);     // afterwards the agent's state moves it on
    put($("pop-number"), message.caller.number || "未知");
    $("pop-number").dataset.masked = message.caller.masked ? "yes" : "no";
    put($("pop-name"), message.caller.name || "");
    put($("pop-queue"), message.department ? message.department.name + "（" + message.queue + "）" : message.queue || "");
    const menu = message.menu;
    if (!menu) {
      put($("pop-transcript"), "（没有语音菜单记录）");
    } else if (menu.kind === "voice") {
      put($("pop-transcript"), "“" + (menu.transcript || menu.transcripts.join(" / ") || "（未听清）") + "”");
    } else {
      put($("pop-transcript"), "按键选择：" + (menu.keys.join(" → ") || "无"));
    }
    const intent = menu && (menu.intent || (menu.routed && menu.routed.department));
    put($("pop-intent"), intent ? intent.name + "（" + intent.code + "）" : "未识别");
    const parts = [];
    if (menu && menu.confidence != null) parts.push("意图 " + Math.round(menu.confidence * 100) + "%");
    if (menu && menu.asr_confidence != null) parts.push("语音识别 " + Math.round(menu.asr_confidence * 100) + "%");
    put($("pop-confidence"), parts.join("，") || "—");
    put($("pop-item"), menu && menu.item ? (menu.item.question || menu.item.id) : "—");
    put($("pop-problems"), (message.problems || []).length ? "部分信息暂时无法读取（数据库不可用），请稍后刷新。" : "");
    pop.knowledge = message.knowledge;
    $("pop-knowledge").replaceChildren(...message.knowledge.map(knowledgeItem));
    message.knowledge.forEach(addItemChoice);
    if (menu && menu.item && menu.item.id) $("disposition-item").value = menu.item.id;
    put($("pop-history-days"), message.history_days);
    const rows = (message.history || []).map((h) => {
      const tr = make("tr");
      tr.append(make("td", localTime(h.started_at)), make("td", h.department ? h.department.name : ""),
                make("td", h.outcome_label), make("td", h.agent_name || ""),
                make("td", h.disposition ? h.disposition.label + (h.disposition.note ? "：" + h.disposition.note : "") : ""));
      return tr;
    });
    if (message.history === null) rows.push(emptyRow("无法读取来电记录"));
    else if (!rows.length) rows.push(emptyRow("无"));
    $("pop-history").tBodies[0].replaceChildren(...rows);
  }

  function emptyRow(text) {
    const tr = make("tr"); const td = make("td", text, "muted"); td.colSpan = 5; tr.append(td); return tr;
  }

  function knowledgeItem(item) {
    const li = make("li");
    li.dataset.item = item.id;
    const details = make("details");
    details.append(make("summary", item.question));
    details.append(make("p", item.answer));
    if (item.procedure && item.procedure.length) {
      details.append(make("h4", "办理流程"));
      const ol = make("ol"); item.procedure.forEach((s) => ol.append(make("li", s))); details.append(ol);
    }
    if (item.materials && item.materials.length) {
      details.append(make("h4", "所需材料"));
      const ul = make("ul"); item.materials.forEach((s) => ul.append(make("li", s))); details.append(ul);
    }
    const use = make("button", "登记为使用此条", "secondary use-item");
    use.type = "button";
    use.addEventListener("click", () => { addItemChoice(item); $("disposition-item").value = item.id; });
    li.append(details, use);
    return li;
  }

  // -- the queue panel ------------------------------------------------------------------------

  function showPanel(message) {
    panel = message;
    const rows = message.queues.map((q) => {
      const tr = make("tr");
      tr.dataset.queue = q.queue;
      const wait = make("td", q.waiting ? duration(q.longest_wait_seconds) : "—", "longest");
      tr.append(make("td", q.name ? q.name + "（" + q.queue + "）" : q.queue), make("td", q.waiting, "waiting"), wait,
                make("td", q.agents.free, "free"), make("td", q.agents.busy, "busy"),
                make("td", q.agents.paused, "paused"), make("td", q.agents.unavailable, "unavailable"));
      if (q.waiting) tr.className = "has-callers";
      return tr;
    });
    $("queue-panel").tBodies[0].replaceChildren(...rows);
  }

  // -- timers ------------------------------------------------------------------------------------

  function tick() {
    const now = Date.now();
    if (agent && agent.since) put($("state-timer"), duration((now - Date.parse(agent.since)) / 1000));
    if (panel) {
      for (const q of panel.queues) {
        const row = $("queue-panel").querySelector('tr[data-queue="' + CSS.escape(q.queue) + '"] td.longest');
        if (row && q.oldest_joined_at) put(row, duration((now - Date.parse(q.oldest_joined_at)) / 1000));
      }
    }
  }

  // -- actions ---------------------------------------------------------------------------------

  async function post(path, body) {
    let response;
    try {
      response = await fetch(path, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body || {}),
      });
    } catch (error) {
      return { ok: false, message: "网络错误，请重试" };
    }
    let answer = {};
    try { answer = await response.json(); } catch (error) { /* not JSON */ }
    if (response.status === 401) return { ok: false, message: "登录已失效，请重新登录" };
    if (response.status === 403 && !answer.message) return { ok: false, message: "无权操作或页面已过期，请刷新" };
    return { ok: response.ok && answer.ok !== false, message: answer.message || "操作失败（" + response.status + "）", ...answer };
  }

  async function act(path, body) {
    const answer = await post(path, body);
    say(answer.message, !answer.ok);
    return answer;
  }

  $("queue-login").addEventListener("click", () => act("/api/console/queues/login", {}));
  $("queue-logout").addEventListener("click", () => act("/api/console/queues/logout", {}));
  $("pause").addEventListener("click", () => act("/api/console/pause", { reason: $("pause-reason").value }));
  $("unpause").addEventListener("click", () => act("/api/console/unpause", {}));
  $("wrapup-done").addEventListener("click", () => act("/api/console/wrapup/done", {}));

  $("transfer-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act("/api/console/transfer", { kind: "queue", target: $("transfer-queue").value });
  });
  $("transfer-extension-go").addEventListener("click", () =>
    act("/api/console/transfer", { kind: "extension", target: $("transfer-extension").value.trim() }));

  $("disposition-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!pop) return;
    const chosen = document.querySelector('#disposition-form input[name="outcome"]:checked');
    const answer = await post("/api/console/disposition", {
      linkedid: pop.linkedid, outcome: chosen ? chosen.value : null,
      note: $("disposition-note").value, knowledge_item_id: $("disposition-item").value || null,
    });
    put($("disposition-message"), answer.message);
    $("disposition-message").className = answer.ok ? "notice" : "error";
  });

  $("search-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const q = $("search-q").value.trim();
    if (!q) return;
    put($("search-message"), "正在搜索…");
    let answer;
    try {
      const response = await fetch("/api/knowledge/search?q=" + encodeURIComponent(q), { credentials: "same-origin" });
      answer = response.ok ? await response.json() : null;
    } catch (error) { answer = null; }
    if (!answer) { put($("search-message"), "搜索失败，请重试"); return; }
    put($("search-message"), answer.items.length ? "找到 " + answer.items.length + " 条" : "没有找到相关条目");
    $("search-results").replaceChildren(...answer.items.map(knowledgeItem));
  });

  setInterval(tick, 1000);
  connect();
})();
