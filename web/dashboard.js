// The live dashboard of a freshet view process: the views' freshness and
// lag (polled from /views every second), a chart of throughput and lag, and
// one view as a table kept up to date in place by its change feed.
import {followView, keyString} from "./freshet.js";

const MAX_ROWS = 500;         // rows shown; the rest are counted, the filter narrows them
const HISTORY_MS = 120_000;   // what the chart covers
const POLL_MS = 1000;

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const token = params.get("token") || undefined;
const collator = new Intl.Collator(undefined, {numeric: true});

// ---------------------------------------------------------------- helpers --

function setBadge(el, kind, text) {
  el.className = `badge ${kind}`;
  el.textContent = text;
}

function format(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Math.round(v * 1e4) / 1e4);
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function age(ms) {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms ago`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s ago`;
  return `${Math.round(ms / 60_000)} min ago`;
}

// Sets the cells of a row, creating missing ones; answers whether any text changed.
function setCells(tr, columns, values) {
  let changed = false;
  columns.forEach((col, j) => {
    let td = tr.cells[j];
    if (!td) {
      td = tr.insertCell();
      td.dataset.col = col;
    }
    const text = format(values[j]);
    if (td.textContent !== text) {
      td.textContent = text;
      changed = true;
    }
    td.classList.toggle("num", typeof values[j] === "number");
  });
  return changed;
}

// Makes tbody show one <tr> per key in this order, keeping each key's <tr>
// across calls (trs: key -> tr), so that updates happen in place.
function syncRows(tbody, trs, keys, fill) {
  const wanted = new Set(keys);
  for (const [k, tr] of trs) {
    if (!wanted.has(k)) {
      tr.remove();
      trs.delete(k);
    }
  }
  keys.forEach((k, i) => {
    let tr = trs.get(k);
    const fresh = !tr;
    if (fresh) trs.set(k, (tr = document.createElement("tr")));
    fill(tr, k, fresh);
    const at = tbody.children[i];
    if (at !== tr) tbody.insertBefore(tr, at || null);
  });
}

function flash(tr) {
  // Restart the CSS animation even if the row changed a moment ago.
  tr.classList.remove("changed");
  void tr.offsetWidth;
  tr.classList.add("changed");
}

// --------------------------------------------------------------- the views --

const statusName = (s) => s.view ?? s.name;
const entryId = (s) => `${statusName(s)}|${s.store ?? ""}`;
const totalLag = (s) => Object.values(s.lag || {}).reduce((a, b) => a + Math.max(b, 0), 0);
// Per partition: its lag, or "empty" for a partition the view has nothing
// from and nothing waiting in (its next offset is -1), never "-1".
const partitionLags = (s) => {
  const parts = new Set([...Object.keys(s.lag || {}), ...Object.keys(s.next_offsets || {})]);
  return [...parts].sort((a, b) => a - b).map((p) => {
    const lag = s.lag?.[p], next = s.next_offsets?.[p];
    const empty = lag < 0 || ((next === undefined || next < 0) && !(lag > 0));
    return `${p}:${empty ? "empty" : lag ?? "—"}`;
  }).join(" ");
};

let statuses = [];
const samples = new Map();     // entryId -> [{t, eps, lag}]
const lastEvents = new Map();  // entryId -> {t, events}
const viewTrs = new Map();
let selected = {view: params.get("view"), store: params.get("store")};

// The server's clock when it took the status (now_ms), else the page's. Ages
// and rates come from the server's times: a page whose timers or network
// lag behind (a busy or background tab, a headless browser taking a
// screenshot) would otherwise add its own delay to "last flush" and divide a
// few seconds' events by a shorter interval.
const statusTime = (s, pageNow) => s.now_ms ?? pageNow;

function record(pageNow) {
  for (const s of statuses) {
    const id = entryId(s), events = s.events_total ?? s.events ?? 0, t = statusTime(s, pageNow);
    const prev = lastEvents.get(id);
    // A counter that went down means the process restarted: no rate for that interval.
    const eps = prev && events >= prev.events && t > prev.t ? ((events - prev.events) * 1000) / (t - prev.t) : null;
    lastEvents.set(id, {t, events});
    const points = samples.get(id) ?? [];  // on the page's clock, as the chart draws them
    points.push({t: pageNow, eps, lag: totalLag(s)});
    while (points.length && points[0].t < pageNow - HISTORY_MS) points.shift();
    samples.set(id, points);
  }
}

function renderViews(now) {
  const byId = new Map(statuses.map((s) => [entryId(s), s]));
  const ids = [...byId.keys()].sort(collator.compare);
  const followed = chartEntry();
  syncRows($("views-table").tBodies[0], viewTrs, ids, (tr, id) => {
    const s = byId.get(id);
    tr.dataset.view = statusName(s);
    tr.dataset.store = s.store ?? "";
    const t = statusTime(s, now);
    const eps = samples.get(id)?.at(-1)?.eps;
    const lagParts = partitionLags(s);
    const visible = visibleBound(s, t);
    setCells(tr, ["view", "store", "state", "fresh", "last_flush", "p99", "eps", "lag", "lag_partitions"], [
      statusName(s), s.store ?? "", s.error ? `${s.state}: ${s.error}` : s.state, s.stale ? "stale" : "fresh",
      s.last_flush_ms ? age(t - s.last_flush_ms) : "never", visible.text,
      eps === null || eps === undefined ? "—" : Math.round(eps), totalLag(s), lagParts]);
    const p99Cell = tr.querySelector('td[data-col="p99"]');
    if (p99Cell && p99Cell.title !== visible.title) p99Cell.title = visible.title;
    tr.classList.toggle("stale", !!s.stale);
    tr.classList.toggle("failed", !["running", "building"].includes(s.state));
    tr.classList.toggle("selected", s === followed);
  });
}

// The event-to-visible bound to show: over the last minute that had events
// (event_to_visible_recent_ms), saying how long ago that minute ended when it
// is not now; else the since-start figure, labelled so.
function visibleBound(s, t) {
  const recent = s.event_to_visible_recent_ms, total = s.event_to_visible_ms;
  if (recent && recent.p99_at_most !== undefined) {
    const ago = t - recent.measured_at_ms;
    const when = ago > 5000 ? ` (${age(ago)})` : "";
    return {text: `≤ ${format(recent.p99_at_most)} ms${when}`,
      title: `p99 of ${recent.events} events over the ${Math.round(recent.window_ms / 1000)} s up to ` +
        `${new Date(recent.measured_at_ms).toLocaleTimeString()}: an upper bound (histogram bucket)`};
  }
  if (total && total.p99_at_most !== undefined)
    return {text: `≤ ${format(total.p99_at_most)} ms (since start)`,
      title: `p99 of ${total.events} events since the view process started: an upper bound (histogram bucket)`};
  return {text: "—", title: "no event seen yet"};
}

async function poll() {
  try {
    const res = await fetch("views", {cache: "no-store"});
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    statuses = (await res.json()).views ?? [];
    const now = Date.now();
    record(now);
    if (!selected.view && statuses.length) openDefaultView();
    renderViews(now);
    setBadge($("poll-state"), "ok", `${statuses.length} views · ${new Date(now).toLocaleTimeString()}`);
  } catch (e) {
    setBadge($("poll-state"), "bad", `/views unreachable: ${e.message}`);
  }
  drawChart();
  renderFeedInfo();
  setTimeout(poll, POLL_MS);
}

$("views-table").tBodies[0].addEventListener("click", (e) => {
  const tr = e.target.closest("tr");
  if (tr) select(tr.dataset.view, tr.dataset.store);
});

// ------------------------------------------------------------------ chart --

// The status entry the chart and the highlighted row follow: the selected
// view in the store its feed follows, else the first entry.
function chartEntry() {
  const store = selected.store || followedStore;
  return statuses.find((s) => statusName(s) === selected.view && (!store || s.store === store)) ??
    statuses.find((s) => statusName(s) === selected.view) ?? statuses[0];
}

function drawChart() {
  const canvas = $("chart"), entry = chartEntry();
  const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * dpr;
  canvas.height = h * dpr;
  const ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  ctx.font = "12px system-ui, sans-serif";
  $("chart-title").textContent = entry ? `${statusName(entry)} (${entry.store}), last 2 minutes` : "";
  const points = entry ? samples.get(entryId(entry)) ?? [] : [];
  const now = Date.now(), x = (t) => ((t - (now - HISTORY_MS)) / HISTORY_MS) * w;
  const panels = [["events/s", (p) => p.eps, "#2f6fdf"], ["lag (events)", (p) => p.lag, "#d2513d"]];
  panels.forEach(([label, get, color], i) => {
    const top = (i * h) / 2 + 16, height = h / 2 - 22;
    const values = points.map(get).filter((v) => v !== null);
    const max = Math.max(1, ...values);
    ctx.strokeStyle = "#ddd";
    ctx.beginPath();
    ctx.moveTo(0, top + height + 0.5);
    ctx.lineTo(w, top + height + 0.5);
    ctx.stroke();
    ctx.fillStyle = "#555";
    const last = values.at(-1);
    ctx.fillText(`${label}: ${last === undefined ? "—" : Math.round(last)}   (max ${Math.round(max)})`, 4, top - 4);
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let pen = false;  // a gap (no rate) lifts the pen
    for (const p of points) {
      const v = get(p);
      if (v === null) {
        pen = false;
        continue;
      }
      const y = top + height - (v / max) * height;
      pen ? ctx.lineTo(x(p.t), y) : ctx.moveTo(x(p.t), y);
      pen = true;
    }
    ctx.stroke();
  });
}
window.addEventListener("resize", drawChart);

// ------------------------------------------------------------ live table --

let feed = null, followedStore = null, columns = [];
let rows = new Map(), sortedKeys = null, known = new Set();
const changed = new Set(), liveTrs = new Map();
let renderTimer = null, lastProgress = null;

// Without ?view= in the URL: the view chosen last time (in this browser), if
// the process still has it, else the first row of the table.
const LAST_VIEW_KEY = "freshet.dashboard.view";
function openDefaultView() {
  let last = null;
  try {
    last = JSON.parse(localStorage.getItem(LAST_VIEW_KEY) || "null");
  } catch {
    last = null;  // storage disabled or garbled: the first view
  }
  const again = last && statuses.find((s) => statusName(s) === last.view && (!last.store || s.store === last.store));
  const first = [...statuses].sort((a, b) => collator.compare(entryId(a), entryId(b)))[0];
  const chosen = again ?? first;
  select(statusName(chosen), again ? last.store : chosen.store);
}

function select(view, store) {
  selected = {view, store: store || null};
  try {
    localStorage.setItem(LAST_VIEW_KEY, JSON.stringify(selected));
  } catch {
    // storage disabled: only the URL remembers
  }
  const url = new URL(location.href);
  url.searchParams.set("view", view);
  store ? url.searchParams.set("store", store) : url.searchParams.delete("store");
  history.replaceState(null, "", url);
  follow();
  renderViews(Date.now());
  drawChart();
}

function resetTable(cols) {
  columns = cols;
  liveTrs.clear();
  $("live-table").tBodies[0].replaceChildren();
  const head = $("live-table").tHead;
  head.replaceChildren();
  const tr = head.insertRow();
  for (const c of cols) tr.appendChild(Object.assign(document.createElement("th"), {textContent: c}));
}

function follow() {
  feed?.close();
  followedStore = null;
  lastProgress = null;
  resetTable([]);
  rows = new Map();
  sortedKeys = null;
  $("live-title").textContent = selected.view;
  feed = followView(`views/${encodeURIComponent(selected.view)}/feed`, {token, store: selected.store || undefined}, {
    onHello(m) {
      followedStore = m.store;
      $("live-title").textContent = `${m.view} (${m.store})`;
      if (m.columns.join() !== columns.join()) resetTable(m.columns);
    },
    onSnapshot(r) {
      rows = r;
      sortedKeys = null;
      changed.clear();  // a snapshot updates cells in place but highlights nothing
      setBadge($("feed-state"), "ok", "live");
      scheduleRender();
    },
    onResume() {
      setBadge($("feed-state"), "ok", "live (resumed)");
    },
    onChanges(list, r) {
      rows = r;
      for (const c of list) {
        const k = keyString(c.key);
        if (c.op === "delete" || !known.has(k)) sortedKeys = null;
        changed.add(k);
      }
      scheduleRender();
    },
    onProgress(offsets) {
      lastProgress = {offsets, at: Date.now()};
      if (!$("feed-state").textContent.startsWith("live")) setBadge($("feed-state"), "ok", "live");
      renderFeedInfo();
    },
    onState(state, detail) {
      if (state === "connecting") setBadge($("feed-state"), "wait", "connecting…");
      if (state === "open") setBadge($("feed-state"), "wait", "connected, loading…");
      if (state === "error") setBadge($("feed-state"), "bad", `error: ${detail.reason}`);
      if (state === "reconnecting") {
        const why = detail.everOpened ? `connection lost (code ${detail.code}${detail.reason ? `: ${detail.reason}` : ""})`
          : "cannot connect (server down, unknown view or bad token?)";
        setBadge($("feed-state"), "bad", `${why}; retrying in ${(detail.inMs / 1000).toFixed(1)} s`);
      }
    },
  });
}

function scheduleRender() {
  // At most ~20 renders a second however fast changes come.
  renderTimer ??= setTimeout(renderLive, 50);
}

function renderLive() {
  renderTimer = null;
  if (!sortedKeys) {
    sortedKeys = [...rows.keys()].sort(collator.compare);
    known = new Set(sortedKeys);
  }
  const filter = $("filter").value.trim();
  const matching = filter ? sortedKeys.filter((k) => k.includes(filter)) : sortedKeys;
  const shown = matching.slice(0, MAX_ROWS);
  syncRows($("live-table").tBodies[0], liveTrs, shown, (tr, k, fresh) => {
    if (fresh) tr.dataset.key = k;
    const row = rows.get(k);
    setCells(tr, columns, columns.map((c) => row[c]));
    if (changed.has(k)) flash(tr);
  });
  changed.clear();
  let count = `${shown.length} of ${matching.length} rows`;
  if (filter) count += ` matching "${filter}" (${rows.size} in all)`;
  if (matching.length > shown.length) count += `: the first ${MAX_ROWS} by key; filter to see others`;
  $("row-count").textContent = count;
}

function renderFeedInfo() {
  $("feed-offsets").textContent = lastProgress
    ? `offsets ${Object.entries(lastProgress.offsets).map(([p, o]) => `${p}:${o < 0 ? "empty" : o}`).join(" ")} · ` +
      `last progress ${age(Date.now() - lastProgress.at)}`
    : "";
}

$("filter").addEventListener("input", scheduleRender);

if (selected.view) follow();
poll();
