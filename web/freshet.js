// freshet.js: follow freshet views live from a browser or an Observable
// notebook. No dependencies; the protocol is docs/live-protocol.md, the
// usage docs/dashboards-and-notebooks.md.

/**
 * An absolute ws:// or wss:// URL (from http(s)://, ws(s):// or a URL relative to the page),
 * with the parameters that are not null, undefined or "".
 * @param {string} url
 * @param {Object<string, string|number|undefined>} [params]
 * @returns {string}
 */
export function wsUrl(url, params = {}) {
  const u = new URL(url, globalThis.location?.href);
  u.protocol = u.protocol.replace(/^http/, "ws");
  for (const [name, value] of Object.entries(params))
    if (value !== undefined && value !== null && value !== "") u.searchParams.set(name, String(value));
  return u.href;
}

/** The key of a feed row as the server writes it in URLs: key values joined by "/". */
export const keyString = (key) => key.map(String).join("/");

/** {"0": 120, "1": 88} -> "0:120,1:88" (the `from` parameter). */
export const offsetsParam = (offsets) => Object.entries(offsets || {}).map(([p, o]) => `${p}:${o}`).join(",");

/**
 * A WebSocket that reconnects (backoff 0.5 s doubling to 10 s) until closed.
 * @param {() => string} makeUrl called before every attempt (so it can carry a resume point)
 * @param {{onOpen?: (ws: WebSocket) => void, onMessage: (msg: any) => void,
 *          onState?: (state: string, detail?: object) => void}} handlers
 *   states: "connecting", "open", "reconnecting" (detail: {code, reason, inMs, everOpened}), "closed"
 * @returns {{close: () => void, send: (obj: any) => void}}
 */
export function reconnectingSocket(makeUrl, {onOpen, onMessage, onState}) {
  let socket = null, timer = null, stopped = false, delay = 500, everOpened = false;
  const connect = () => {
    onState?.("connecting");
    const ws = (socket = new WebSocket(makeUrl()));
    ws.onopen = () => {
      delay = 500;
      everOpened = true;
      onState?.("open");
      onOpen?.(ws);
    };
    ws.onmessage = (e) => ws === socket && onMessage(JSON.parse(e.data));
    ws.onclose = (e) => {
      if (stopped || ws !== socket) return;
      // 1006 before "open": refused before the upgrade (bad view, filter or token), or no server.
      onState?.("reconnecting", {code: e.code, reason: e.reason, inMs: delay, everOpened});
      timer = setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  };
  connect();
  const close = () => {
    stopped = true;
    clearTimeout(timer);
    socket?.close(1000);
    onState?.("closed");
  };
  const send = (obj) => socket?.readyState === WebSocket.OPEN && socket.send(JSON.stringify(obj));
  return {close, send};
}

/**
 * Follows a view's change feed, keeping a copy of its rows; reconnects with `from` = the last
 * resume point, so a drop costs only the missed changes (or a snapshot if the server lost them).
 * @param {string} url the feed, e.g. "http://127.0.0.1:8081/views/stock_levels/feed" (or ws://, or relative)
 * @param {{key?: string, prefix?: string, token?: string, from?: Object<string, number>,
 *          store?: string, batch?: boolean}} [options] as in the protocol; with `from` you get the
 *   changes since, no snapshot (for when you already hold the rows up to it)
 * @param {{onHello?: (hello: object) => void, onSnapshot?: (rows: Map) => void, onResume?: (offsets: object) => void,
 *          onChanges?: (changes: object[], rows: Map) => void, onProgress?: (offsets: object, tsMs: number) => void,
 *          onState?: (state: string, detail?: object) => void}} [handlers]
 *   `rows` maps keyString(key) to the row object; it is the same Map throughout, updated in place
 *   (replaced by a new one when a snapshot completes)
 * @returns {{close: () => void, rows: () => Map, offsets: () => Object<string, number>}}
 */
export function followView(url, {key, prefix, token, from, store, batch} = {}, handlers = {}) {
  let rows = new Map(), loading = null;
  const offsets = {...(from || {})};
  const apply = (changes) => {
    for (const c of changes) {
      if (c.op === "delete") rows.delete(keyString(c.key));
      else rows.set(keyString(c.key), c.row);
      offsets[c.partition] = Math.max(offsets[c.partition] ?? 0, c.offset + 1);
    }
    handlers.onChanges?.(changes, rows);
  };
  const socket = reconnectingSocket(
    () => wsUrl(url, {key, prefix, token, store, batch: batch ? 1 : undefined, from: offsetsParam(offsets)}),
    {
      onState: handlers.onState,
      onMessage(m) {
        switch (m.type) {
          case "hello": loading = null; handlers.onHello?.(m); break;
          case "snapshot":
            loading ??= new Map();
            for (const r of m.rows) loading.set(keyString(r.key), r.row);
            if (m.done) {
              [rows, loading] = [loading, null];
              Object.assign(offsets, m.offsets);
              handlers.onSnapshot?.(rows);
            }
            break;
          case "resume": handlers.onResume?.(m.offsets); break;  // the missed changes follow
          case "change": apply([m]); break;
          case "changes":
            apply(m.changes);
            if (m.offsets) {  // a batch may carry the progress after it
              Object.assign(offsets, m.offsets);
              handlers.onProgress?.({...offsets}, Date.now());
            }
            break;
          case "progress":
            Object.assign(offsets, m.offsets);
            handlers.onProgress?.({...offsets}, m.ts_ms);
            break;
          case "reset": loading = null; break;  // a fresh snapshot follows
          case "error": handlers.onState?.("error", {reason: m.error}); break;
        }
      },
    });
  return {close: socket.close, rows: () => rows, offsets: () => ({...offsets})};
}

// A live value as an async iterator: start(wake, fail) opens the source and
// answers a stop function; each next() waits for a wake() and gets current(),
// however many wakes came in between. Written by hand, not as an async
// generator, so that return() (a loop's break, an Observable cell re-running)
// closes the socket at once rather than after the next update.
function liveIterator(start, current) {
  let stop = null, dirty = false, failure = null, finished = false, waiting = null;
  const settle = () => {
    if (!waiting || !(dirty || failure || finished)) return;
    const {resolve, reject} = waiting;
    waiting = null;
    if (finished) return resolve({done: true, value: undefined});
    if (failure) {
      finished = true;
      stop();
      return reject(failure);
    }
    dirty = false;
    resolve({done: false, value: current()});
  };
  const wake = () => { dirty = true; settle(); };
  const fail = (e) => { failure ??= e; settle(); };
  return {
    [Symbol.asyncIterator]() { return this; },
    next() {
      stop ??= start(wake, fail);
      return new Promise((resolve, reject) => { waiting = {resolve, reject}; settle(); });
    },
    return() {
      if (!finished && stop) stop();
      finished = true;
      settle();
      return Promise.resolve({done: true, value: undefined});
    },
  };
}

/**
 * The rows of a view, live: an async iterator (like an async generator) of a fresh array of row
 * objects in key order, once the snapshot is in and again after each batch of changes.
 * The array also has `byKey` (Map keyString -> row), `offsets` (the resume
 * point) and `columns`/`keyColumns`. Throws if the very first connection
 * fails (wrong URL, view, filter or token); later drops reconnect and resume.
 * @param {string} url e.g. "http://127.0.0.1:8081/views/stock_levels/feed"
 * @param {{key?: string, prefix?: string, token?: string, from?: Object<string, number>, store?: string}} [options]
 * @returns {AsyncIterableIterator<Array<object>>} use with `for await`, or as an Observable cell's value
 */
export function viewFeed(url, options = {}) {
  let feed, hello = {}, sortedKeys = null, known = new Set();
  const collator = new Intl.Collator(undefined, {numeric: true});
  return liveIterator(
    (wake, fail) => {
      feed = followView(url, options, {
        onHello: (m) => (hello = m),
        onSnapshot: () => { sortedKeys = null; wake(); },
        onChanges: (changes, rows) => {
          // Only a new or deleted key changes the order.
          if (changes.some((c) => c.op === "delete" || !known.has(keyString(c.key)))) sortedKeys = null;
          wake();
        },
        onState: (state, detail) => {
          if (state === "reconnecting" && !detail.everOpened)
            fail(new Error(`cannot open ${url} (code ${detail.code}): is the view process up, the view name, ` +
                           "filter and token right?"));
          if (state === "error") console.warn("freshet feed:", detail.reason);
        },
      });
      return () => feed.close();
    },
    () => {
      const byKey = feed.rows();
      if (!sortedKeys) {
        sortedKeys = [...byKey.keys()].sort(collator.compare);
        known = new Set(sortedKeys);
      }
      const out = sortedKeys.map((k) => byKey.get(k));
      return Object.assign(out, {byKey, offsets: feed.offsets(), columns: hello.columns, keyColumns: hello.key_columns});
    });
}

/**
 * The result of a SQL query over the views, live: an async iterator of the rows (array of
 * objects) after the first result and after each diff. The array also has
 * `views` (view -> offsets the result reflects), `columns` and `tsMs`.
 * Rows keep the result's order; added rows go to the end. An `error`
 * message (bad SQL, timeout, too many rows) throws; a dropped socket
 * reconnects and runs the query again.
 * @param {string} url e.g. "http://127.0.0.1:8081/sql/feed"
 * @param {string} sql one SELECT over the views
 * @param {{key?: string[], minIntervalMs?: number, token?: string}} [options]
 *   key: the columns that identify a row (default: all result columns)
 * @returns {AsyncIterableIterator<Array<object>>} use with `for await`, or as an Observable cell's value
 */
export function liveQuery(url, sql, {key, minIntervalMs, token} = {}) {
  let rows = new Map(), info = {};
  const keyOf = (row) => JSON.stringify((key ?? info.columns ?? Object.keys(row)).map((c) => row[c]));
  return liveIterator(
    (wake, fail) => {
      const socket = reconnectingSocket(() => wsUrl(url, {token}), {
        onOpen: () => socket.send({sql, key, min_interval_ms: minIntervalMs}),
        onState: (state, detail) => {
          if (state === "reconnecting" && !detail.everOpened) fail(new Error(`cannot open ${url} (code ${detail.code})`));
        },
        onMessage(m) {
          if (m.type === "error") return fail(new Error(m.error));
          if (m.type === "result") {
            info = {columns: m.columns};
            rows = new Map(m.rows.map((r) => [keyOf(r), r]));
          } else if (m.type === "diff") {
            for (const r of m.removed) rows.delete(keyOf(r));
            for (const r of [...m.changed, ...m.added]) rows.set(keyOf(r), r);
          } else return;
          Object.assign(info, {views: m.views, tsMs: m.ts_ms});
          wake();
        },
      });
      return () => socket.close();
    },
    () => Object.assign([...rows.values()], info));
}
