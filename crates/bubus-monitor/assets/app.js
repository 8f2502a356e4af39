// The bubus monitor page: a live, virtualised event tree fed by /api/stream (SSE).
// Hand-written, no build step, no dependency: the binary serves this file as it is.
"use strict";

const ROW = 26;            // px per row (matches --row in app.css)
const OVERSCAN = 10;       // rows drawn above and below the visible ones

const state = {
  events: new Map(),       // id -> summary {id,type,parent,path,status,created,done,handlers,errors,replay_of}
  collapsed: new Set(),
  flat: [],                // [{id, depth, context}] in display order
  dirty: true,
  paused: false,
  queued: [],              // stream messages held while paused
  overflow: false,         // more were held than MAX_QUEUED: resume reconnects
  selected: null,
  searchIds: null,         // Set of ids matching the search, or null
  groupFilter: null,       // {error_type, handler, ids:Set}
  stats: null,
  failedBelow: new Set(),
  targets: [],
  deadStores: [],
  types: new Set(),
  buses: new Set(),
};

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
};

function fmtTime(ms) {
  if (ms === null || ms === undefined) return "";
  const d = new Date(ms);
  return d.toISOString().slice(11, 23);
}
function fmtDur(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1) return `${Math.round(ms * 1000)}µs`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 1 : 0)}ms`;
  return `${(ms / 1000).toFixed(2)}s`;
}
function shortId(id) { return id.length > 4 ? `#${id.slice(-4)}` : `#${id}`; }
function statusOf(e) { return e.errors > 0 ? "failed" : e.status; }
const ICON = { completed: "✓", started: "●", pending: "○", failed: "✗" };

// ---- the live stream ------------------------------------------------------------------------

const MAX_QUEUED = 500;    // messages held while paused; past that, resume starts over
let source = null;

function connect() {
  if (source) source.close();
  source = new EventSource("/api/stream");
  source.addEventListener("open", () => setConn());
  source.addEventListener("error", () => { $("#conn").textContent = "reconnecting…"; $("#conn").className = "conn"; });
  source.addEventListener("events", (m) => {
    const msg = JSON.parse(m.data);
    if (state.paused && !msg.reset) {
      if (state.queued.length < MAX_QUEUED) state.queued.push(msg); else state.overflow = true;
      setConn();
      return;
    }
    if (msg.reset) state.queued = [];
    apply(msg);
  });
  source.addEventListener("stats", (m) => {
    const msg = JSON.parse(m.data);
    state.stats = msg.stats;
    state.sources = msg.sources;
    renderTotals();
    renderFailures();
    renderStats();
  });
}

function setConn() {
  const c = $("#conn");
  if (state.paused) {
    c.textContent = `paused (${state.queued.reduce((n, m) => n + m.events.length, 0)} updates waiting)`;
    c.className = "conn paused";
  } else { c.textContent = "live"; c.className = "conn live"; }
}

function apply(msg) {
  if (msg.reset) state.events.clear();
  for (const e of msg.events) {
    state.events.set(e.id, e);
    if (!state.types.has(e.type)) { state.types.add(e.type); addOption("#f-type", e.type); }
    for (const b of e.path) if (!state.buses.has(b)) { state.buses.add(b); addOption("#f-bus", b); }
    if (e.id === state.selected) scheduleDetail();
  }
  for (const id of msg.removed) state.events.delete(id);
  markDirty();
  if (msg.reset) openFromHash();
}

function addOption(sel, value) {
  const select = $(sel);
  const opts = [...select.options].slice(1).map((o) => o.value);
  opts.push(value);
  opts.sort();
  const keep = select.value;
  select.length = 1;
  for (const o of opts) select.add(new Option(o, o));
  select.value = keep;
}

// ---- filtering and the flattened tree -------------------------------------------------------

function filtersActive() {
  return $("#f-type").value || $("#f-status").value || $("#f-bus").value || $("#f-age").value
    || state.searchIds || state.groupFilter;
}

function matches(e, now) {
  const type = $("#f-type").value, status = $("#f-status").value, bus = $("#f-bus").value;
  const age = Number($("#f-age").value || 0);
  if (type && e.type !== type) return false;
  if (status === "failed" ? e.errors === 0 : status && (e.status !== status || (status === "completed" && e.errors > 0))) return false;
  if (bus && !e.path.includes(bus)) return false;
  if (age && (e.created === null || e.created < now - age * 1000)) return false;
  if (state.searchIds && !state.searchIds.has(e.id)) return false;
  if (state.groupFilter && !state.groupFilter.ids.has(e.id)) return false;
  return true;
}

function flatten() {
  const events = state.events;
  const children = new Map();
  const roots = [];
  for (const e of events.values()) {
    if (e.parent && events.has(e.parent)) {
      let list = children.get(e.parent);
      if (!list) children.set(e.parent, (list = []));
      list.push(e);
    } else roots.push(e);
  }
  // Events with a failed handler somewhere below them: marked, so a failure shows on a
  // collapsed or scrolled-past tree.
  const failedBelow = new Set();
  for (const e of events.values()) {
    if (!e.errors) continue;
    let p = e.parent ? events.get(e.parent) : null;
    while (p && !failedBelow.has(p.id)) { failedBelow.add(p.id); p = p.parent ? events.get(p.parent) : null; }
  }
  state.failedBelow = failedBelow;
  const byCreated = (a, b) => (a.created ?? 0) - (b.created ?? 0) || (a.id < b.id ? -1 : 1);
  roots.sort((a, b) => byCreated(b, a));           // newest tree first
  for (const list of children.values()) list.sort(byCreated);

  // With filters: the matching events, and their ancestors (dimmed) to keep the tree.
  let visible = null, matched = null;
  if (filtersActive()) {
    const now = Date.now();
    visible = new Set(); matched = new Set();
    for (const e of events.values()) {
      if (!matches(e, now)) continue;
      matched.add(e.id);
      let cur = e;
      while (cur && !visible.has(cur.id)) {
        visible.add(cur.id);
        cur = cur.parent ? events.get(cur.parent) : null;
      }
    }
  }
  const flat = [];
  const stack = [];
  for (let i = roots.length - 1; i >= 0; i--) stack.push([roots[i], 0]);
  while (stack.length) {
    const [e, depth] = stack.pop();
    if (visible && !visible.has(e.id)) continue;
    flat.push({ id: e.id, depth, context: matched ? !matched.has(e.id) : false, kids: children.has(e.id) });
    if (state.collapsed.has(e.id)) continue;
    const kids = children.get(e.id);
    if (kids) for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], depth + 1]);
  }
  state.flat = flat;
  $("#shown").textContent = visible
    ? `${matched.size} of ${events.size} events match`
    : `${events.size} events`;
}

// ---- rendering the visible rows -------------------------------------------------------------

let frame = 0;
function markDirty() { state.dirty = true; schedule(); }
function schedule() { if (!frame) frame = requestAnimationFrame(render); }

function render() {
  frame = 0;
  if (state.dirty) { flatten(); state.dirty = false; }
  const list = $("#list");
  $("#spacer").style.height = `${state.flat.length * ROW}px`;
  const first = Math.max(0, Math.floor(list.scrollTop / ROW) - OVERSCAN);
  const last = Math.min(state.flat.length, Math.ceil((list.scrollTop + list.clientHeight) / ROW) + OVERSCAN);
  const rows = $("#rows");
  const out = [];
  for (let i = first; i < last; i++) out.push(rowNode(state.flat[i], i));
  rows.replaceChildren(...out);
}

function rowNode(item, i) {
  const e = state.events.get(item.id);
  const st = statusOf(e);
  const dur = e.done !== null && e.created !== null ? e.done - e.created : null;
  return el("div", {
    class: `row${item.id === state.selected ? " selected" : ""}${item.context ? " context" : ""}`,
    style: `top:${i * ROW}px;padding-left:${8 + item.depth * 18}px`,
    "data-event-id": e.id, "data-status": st, "data-type": e.type,
    onclick: () => select(e.id),
  },
  el("span", { class: "tw", onclick: (ev) => { ev.stopPropagation(); toggle(e.id); } },
    item.kids ? (state.collapsed.has(e.id) ? "▸" : "▾") : ""),
  el("span", { class: `st ${st}`, title: st }, ICON[st]),
  el("span", { class: "ty" }, e.type),
  state.failedBelow.has(e.id) ? el("span", { class: "below", title: "a handler failed below this event" }, "⚠") : null,
  el("span", { class: "id" }, shortId(e.id)),
  e.path.map((b) => el("span", { class: "bus" }, b)),
  el("span", { class: "hs" }, e.handlers ? `${e.handlers} handler${e.handlers > 1 ? "s" : ""}` : ""),
  e.errors ? el("span", { class: "err" }, `${e.errors} failed`) : null,
  e.replay_of ? el("span", { class: "muted" }, `replay of ${shortId(e.replay_of)}`) : null,
  el("span", { class: "dur" }, fmtDur(dur)),
  el("span", { class: "tm" }, fmtTime(e.created)));
}

function toggle(id) {
  if (state.collapsed.has(id)) state.collapsed.delete(id); else state.collapsed.add(id);
  markDirty();
}

// ---- detail ---------------------------------------------------------------------------------

let detailTimer = 0;
function scheduleDetail() {
  if (!detailTimer) detailTimer = setTimeout(() => { detailTimer = 0; loadDetail(); }, 150);
}

function select(id, scroll) {
  state.selected = id;
  history.replaceState(null, "", `#event=${encodeURIComponent(id)}`);
  schedule();
  if (scroll) {
    if (state.dirty) { flatten(); state.dirty = false; }
    const i = state.flat.findIndex((r) => r.id === id);
    if (i >= 0) $("#list").scrollTop = Math.max(0, i * ROW - $("#list").clientHeight / 3);
  }
  loadDetail();
}

async function loadDetail() {
  const id = state.selected;
  if (!id) return;
  const response = await fetch(`/api/events/${encodeURIComponent(id)}`);
  if (id !== state.selected) return;
  const box = $("#detail");
  if (!response.ok) { box.replaceChildren(el("p", { class: "muted" }, `Event ${id} is not in memory.`)); return; }
  const d = await response.json();
  const showRaw = box.dataset.raw === "1";
  const link = (target) => el("a", { onclick: () => select(target, true), "data-link": target }, shortId(target));
  box.dataset.eventId = d.id;
  box.replaceChildren(
    el("h2", {}, d.type, " ", el("span", { class: "muted mono" }, shortId(d.id))),
    el("dl", {},
      el("dt", {}, "id"), el("dd", { class: "mono" }, d.id),
      el("dt", {}, "status"), el("dd", { id: "detail-status", class: `st ${statusOf(d)}` }, statusOf(d)),
      el("dt", {}, "path"), el("dd", {}, d.path.join(" → ") || "—"),
      el("dt", {}, "parent"), el("dd", {}, d.parent ? link(d.parent) : "—"),
      el("dt", {}, "created"), el("dd", {}, fmtTime(d.created)),
      el("dt", {}, "started"), el("dd", {}, fmtTime(d.started) || "—"),
      el("dt", {}, "completed"), el("dd", {}, fmtTime(d.done) || "—"),
      el("dt", {}, "duration"), el("dd", {}, d.done !== null && d.created !== null ? fmtDur(d.done - d.created) : "—"),
      d.replay_of ? [el("dt", {}, "replay of"), el("dd", {}, link(d.replay_of))] : null,
      d.replays.length ? [el("dt", {}, "replays"), el("dd", {}, d.replays.map((r) => [link(r), " "]))] : null,
      el("dt", {}, "children"), el("dd", {}, d.children.length ? d.children.map((c) => [link(c), " "]) : "—"),
      el("dt", {}, "sources"), el("dd", {}, d.sources.join(", "))),
    el("table", { class: "grid", id: "handlers" },
      el("thead", {}, el("tr", {}, el("th", {}, "Handler"), el("th", {}, "Bus"), el("th", {}, "Status"),
        el("th", { class: "num" }, "Time"), el("th", {}, "Result or error"))),
      el("tbody", {}, d.results.map((r) => el("tr", { class: "handler-row", "data-handler": r.handler, "data-status": r.status },
        el("td", { class: "mono" }, r.handler), el("td", {}, r.bus), el("td", { class: `status-${r.status}` }, r.status),
        el("td", { class: "num" }, fmtDur(r.duration_ms)),
        el("td", { class: "mono" }, r.error_type ? `${r.error_type}: ${r.error_message ?? ""}` : (r.result ?? "")))))),
    el("div", { class: "actions" },
      el("button", { id: "toggle-raw", onclick: () => { box.dataset.raw = showRaw ? "0" : "1"; loadDetail(); } },
        showRaw ? "Hide JSON" : "Raw JSON"),
      state.targets.length && d.raw ? el("button", { id: "replay-event", class: "danger",
        onclick: () => confirmReplay(`Replay ${d.type} ${shortId(d.id)}? A fresh copy (new id, same payload) is dispatched.`, { ids: [d.id] }) }, "Replay…") : null),
    showRaw ? el("pre", { id: "raw" }, d.raw ? JSON.stringify(d.raw, null, 2) : "(not kept: too large)") : null);
}

function openFromHash() {
  const m = /^#event=(.+)$/.exec(location.hash);
  if (!m) return;
  const id = decodeURIComponent(m[1]);
  if (id !== state.selected || !$("#detail").dataset.eventId) select(id, true);
}

// ---- failures, stats, totals ----------------------------------------------------------------

function renderTotals() {
  const s = state.stats;
  if (!s) return;
  $("#totals").textContent = `${s.total.events} events · ${s.total.rate_10s.toFixed(1)}/s · ${s.total.failed} failed · ${s.in_memory} in memory`;
  $("#failure-count").textContent = s.failures.length ? String(s.failures.reduce((n, g) => n + g.count, 0)) : "";
}

function renderFailures() {
  const s = state.stats;
  if (!s) return;
  $("#no-failures").classList.toggle("hidden", s.failures.length > 0);
  $("#failures tbody").replaceChildren(...s.failures.map((g) => el("tr", {
    class: "group-row", "data-error-type": g.error_type, "data-handler": g.handler },
  el("td", { class: "err" }, g.error_type), el("td", { class: "mono" }, g.handler),
  el("td", { class: "num group-count" }, g.count), el("td", {}, g.last_message), el("td", {}, fmtTime(g.last_seen)),
  el("td", {},
    el("button", { class: "show-group", onclick: () => showGroup(g) }, `Show ${g.in_memory}`), " ",
    state.targets.length ? el("button", { class: "replay-group danger", onclick: () => confirmReplay(
      `Replay the ${g.in_memory} events in memory that failed with ${g.error_type} in ${g.handler}? Fresh copies are dispatched.`,
      { group: { error_type: g.error_type, handler: g.handler } }) }, "Replay group…") : null))));
}

async function showGroup(g) {
  const q = `error_type=${encodeURIComponent(g.error_type)}&handler=${encodeURIComponent(g.handler)}`;
  const response = await fetch(`/api/failures/events?${q}`);
  if (!response.ok) return;
  state.groupFilter = { error_type: g.error_type, handler: g.handler, ids: new Set((await response.json()).ids) };
  const chip = $("#group-filter");
  chip.textContent = `${g.error_type} in ${g.handler} ✕`;
  chip.classList.remove("hidden");
  showTab("events");
  markDirty();
}

function statsTable(sel, rows, label) {
  const p = (v, i) => (v ? fmtDur(v[i]) : "");
  $(`${sel} thead`).replaceChildren(el("tr", {}, el("th", {}, label), ...["Events", "Completed", "Failed", "/s (10 s)", "/s (60 s)",
    "handler p50", "p90", "p99", "event p50", "p99"].map((h) => el("th", { class: "num" }, h))));
  $(`${sel} tbody`).replaceChildren(...rows.map((r) => el("tr", { "data-key": r.key },
    el("td", { class: "mono" }, r.key), el("td", { class: "num" }, r.events), el("td", { class: "num" }, r.completed),
    el("td", { class: "num" }, r.failed), el("td", { class: "num" }, r.rate_10s.toFixed(2)), el("td", { class: "num" }, r.rate_60s.toFixed(2)),
    el("td", { class: "num" }, p(r.handler_ms, 0)), el("td", { class: "num" }, p(r.handler_ms, 1)), el("td", { class: "num" }, p(r.handler_ms, 2)),
    el("td", { class: "num" }, p(r.event_ms, 0)), el("td", { class: "num" }, p(r.event_ms, 2)))));
}

function renderStats() {
  const s = state.stats;
  if (!s || !$("#view-stats").classList.contains("active")) return;
  statsTable("#stats-type", s.by_type, "Event type");
  statsTable("#stats-bus", s.by_bus, "Bus");
  $("#sources tbody").replaceChildren(...(state.sources || []).map((src) => el("tr", {},
    el("td", { class: "mono" }, src.name), el("td", { class: "num" }, src.records), el("td", { class: "num" }, src.bad),
    el("td", {}, src.last_warning ?? ""))));
}

// ---- replay ---------------------------------------------------------------------------------

function confirmReplay(text, body) {
  $("#confirm-text").textContent = text;
  const select = $("#confirm-target");
  select.replaceChildren(...state.targets.map((t) => new Option(t, t)));
  $("#confirm-target-label").classList.remove("hidden");
  $("#confirm").classList.remove("hidden");
  $("#confirm-yes").onclick = async () => {
    $("#confirm").classList.add("hidden");
    const response = await fetch("/api/replay", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...body, target: select.value, confirm: true }),
    });
    const text = await response.text();
    if (!response.ok) { toast(`Replay failed: ${text}`); return; }
    const result = JSON.parse(text);
    toast(`Replayed ${result.replayed.length} event(s) to ${result.target}` +
      (result.skipped.length ? `; skipped ${result.skipped.length}` : ""), result.replayed.map((r) => r.replay));
  };
}

// ---- dead letters ---------------------------------------------------------------------------

async function loadDead() {
  if (!state.deadStores.length) return;
  let stores;
  try {
    const response = await fetch("/api/dead-letters");
    if (!response.ok) return;
    stores = (await response.json()).stores;
  } catch (_) { return; }
  const count = stores.reduce((n, s) => n + s.letters.length, 0);
  $("#dead-count").textContent = count ? String(count) : "";
  $("#dead-stores").replaceChildren(...stores.map((s) => el("div", { class: "dead-store", "data-store": s.name },
    el("h3", {}, el("span", { class: "mono" }, s.name), " ",
      s.letters.length ? el("button", { class: "replay-all danger", onclick: () => confirmDead(
        `Replay all ${s.letters.length} dead letter(s) of ${s.name}? Each goes back for delivery with its own id.`,
        { store: s.name, all: true }) }, "Replay all…") : null),
    s.error ? el("p", { class: "err" }, s.error) : null,
    s.letters.length ? el("table", { class: "grid" },
      el("thead", {}, el("tr", {}, ["Event", "Group", "Deliveries", "Last error", "Dead since", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, s.letters.map((l) => el("tr", { class: "dead-row", "data-event-id": l.event_id, "data-id": l.id },
        el("td", { class: "mono" }, state.events.has(l.event_id) ? el("a", { onclick: () => { showTab("events"); select(l.event_id, true); } },
          `${l.event_type || "?"} ${shortId(l.event_id)}`) : `${l.event_type || "?"} ${shortId(l.event_id || l.id)}`),
        el("td", { class: "mono" }, l.group), el("td", { class: "num" }, l.deliveries),
        el("td", { class: "err" }, l.reason), el("td", {}, l.failed_at),
        el("td", {},
          el("button", { class: "show-dead", onclick: (ev) => {
            const pre = ev.target.closest("tr").nextElementSibling;
            if (pre && pre.classList.contains("dead-json")) pre.remove();
            else ev.target.closest("tr").after(el("tr", { class: "dead-json" }, el("td", { colspan: 6 }, el("pre", {}, pretty(l.text)))));
          } }, "JSON"), " ",
          el("button", { class: "replay-dead danger", onclick: () => confirmDead(
            `Replay the dead letter ${l.event_type || "?"} ${shortId(l.event_id || l.id)} (group ${l.group})? It goes back for delivery with its own id.`,
            { store: s.name, id: l.id }) }, "Replay…")))))) :
      el("p", { class: "muted no-dead" }, "No dead letters."))));
}

function pretty(text) {
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch (_) { return text; }
}

function confirmDead(text, body) {
  $("#confirm-text").textContent = text;
  $("#confirm-target-label").classList.add("hidden");
  $("#confirm").classList.remove("hidden");
  $("#confirm-yes").onclick = async () => {
    $("#confirm").classList.add("hidden");
    const response = await fetch("/api/dead-letters/replay", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...body, confirm: true }),
    });
    const reply = await response.text();
    if (!response.ok) { toast(`Replay failed: ${reply}`); loadDead(); return; }
    toast(`Replayed ${JSON.parse(reply).replayed} dead letter(s)`);
    loadDead();
  };
}

function toast(text, ids) {
  const t = $("#toast");
  t.onclick = (ev) => { if (ev.target === t) t.classList.add("hidden"); };
  t.replaceChildren(text, ...(ids || []).slice(0, 5).flatMap((id) => [" ", el("a", { onclick: () => select(id, true), "data-replay": id }, shortId(id))]));
  t.classList.remove("hidden");
  clearTimeout(t.timer);
  t.timer = setTimeout(() => t.classList.add("hidden"), 8000);
}

// ---- wiring ---------------------------------------------------------------------------------

function showTab(name) {
  for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.tab === name);
  for (const v of document.querySelectorAll(".view")) v.classList.toggle("active", v.id === `view-${name}`);
  if (name === "stats") renderStats();
  if (name === "dead") loadDead();
  if (name === "events") schedule();
}

let searchTimer = 0;
async function runSearch() {
  const q = $("#search").value.trim();
  if (!q) { state.searchIds = null; markDirty(); return; }
  const response = await fetch(`/api/search?q=${encodeURIComponent(q)}`);
  if (!response.ok || $("#search").value.trim() !== q) return;
  state.searchIds = new Set((await response.json()).ids);
  markDirty();
}

async function start() {
  for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => showTab(b.dataset.tab));
  for (const sel of ["#f-type", "#f-status", "#f-bus", "#f-age"]) $(sel).addEventListener("change", markDirty);
  $("#search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(runSearch, 200); });
  $("#group-filter").addEventListener("click", () => { state.groupFilter = null; $("#group-filter").classList.add("hidden"); markDirty(); });
  $("#list").addEventListener("scroll", schedule, { passive: true });
  window.addEventListener("resize", schedule);
  window.addEventListener("hashchange", openFromHash);
  $("#confirm-no").addEventListener("click", () => $("#confirm").classList.add("hidden"));
  $("#pause").addEventListener("click", () => {
    state.paused = !state.paused;
    $("#pause").textContent = state.paused ? "Resume" : "Pause";
    $("#pause").classList.toggle("active", state.paused);
    if (!state.paused) {
      const q = state.queued;
      state.queued = [];
      if (state.overflow) { state.overflow = false; connect(); } // too much held: start over
      else for (const m of q) apply(m);
    }
    setConn();
  });
  // Age filters and searches follow the clock and new events.
  setInterval(() => { if ($("#f-age").value) markDirty(); if (state.searchIds) runSearch(); }, 2000);
  $("#dead-refresh").addEventListener("click", loadDead);
  // Dead letters are read from the engines: every 5 s, and when their tab opens.
  setInterval(() => { if (!document.hidden) loadDead(); }, 5000);
  try {
    const info = await (await fetch("/api/info")).json();
    state.targets = info.replay_targets;
    state.deadStores = info.dead_letter_stores || [];
    $("#tab-dead").classList.toggle("hidden", !state.deadStores.length);
    loadDead();
  } catch (_) { /* the stream still works */ }
  connect();
}

start();
