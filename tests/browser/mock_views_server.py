#!/usr/bin/env python3
"""A stand-in for `freshet writer` + `freshet views`, for developing web/.

Python standard library only. It serves, like the real view process:
  GET /, /<file>             the files of web/
  GET /views                 status of every (view, store)
  GET /views/{name}/status
  WS  /views/{name}/feed     the change feed of docs/live-protocol.md
  WS  /sql/feed              live SQL, for a tiny subset of SELECT:
                             SELECT cols|* FROM view [WHERE col op value]
                             [ORDER BY col [DESC]] [LIMIT n]
and, on the writer port:
  POST /commands             {"type": "receive", "store": ..., "sku": ..., "qty": n} (or a JSON array)
  GET  /state/{store}/{sku}
Dev extras on the views port: POST /mock/drop closes every WebSocket
abruptly (to watch clients reconnect and resume); POST /mock/forget makes
the next reconnect get a snapshot instead of a resume (as after a restart).

  python3 tests/browser/mock_views_server.py --views-port 18081 --writer-port 18080 --load 20

It keeps everything in memory; nothing here is meant to be fast or complete.
"""

import argparse
import asyncio
import base64
import hashlib
import json
import os
import random
import re
import struct
import time
import zlib
from urllib.parse import parse_qs, urlsplit

PARTITIONS = 4
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WEB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "web")
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".md": "text/markdown; charset=utf-8",
                 ".json": "application/json", ".png": "image/png", ".svg": "image/svg+xml"}


def now_ms():
    return int(time.time() * 1000)


def partition_of(store):
    return zlib.crc32(store.encode()) % PARTITIONS


# ---------------------------------------------------------------- WebSocket --

class WebSocket:
    """The server side of one RFC 6455 connection: text frames only."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.closed = False

    # Writes never wait (the transport buffers): a message sequence built in
    # one step, like a snapshot, cannot interleave with a flush's changes.
    def send(self, obj):
        if not self.closed:
            self._frame(0x1, json.dumps(obj, separators=(",", ":")).encode())

    def close(self, code=1000, reason=""):
        if not self.closed:
            self._frame(0x8, struct.pack("!H", code) + reason.encode()[:120])
            self.closed = True
            self.writer.close()

    def abort(self):
        """Drops the TCP connection without a close frame (a network failure)."""
        self.closed = True
        self.writer.transport.abort()

    def _frame(self, opcode, payload):
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 127, n)
        if self.writer.is_closing():
            self.closed = True
        else:
            self.writer.write(header + payload)

    async def receive(self):
        """The next text message, or None once the connection is closed."""
        message = b""
        while True:
            try:
                b1, b2 = await self.reader.readexactly(2)
                n = b2 & 0x7F
                if n == 126:
                    (n,) = struct.unpack("!H", await self.reader.readexactly(2))
                elif n == 127:
                    (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
                mask = await self.reader.readexactly(4) if b2 & 0x80 else b"\0\0\0\0"
                payload = bytes(c ^ mask[i % 4] for i, c in enumerate(await self.reader.readexactly(n)))
            except (asyncio.IncompleteReadError, ConnectionError):
                self.closed = True
                return None
            opcode = b1 & 0x0F
            if opcode == 0x8:
                self.close()
                return None
            if opcode == 0x9:
                self._frame(0xA, payload)
                continue
            if opcode in (0x0, 0x1, 0x2):
                message += payload
                if b1 & 0x80:
                    return message.decode()


# -------------------------------------------------------------------- model --

class View:
    def __init__(self, name, key_columns, columns, stores):
        self.name, self.key_columns, self.columns, self.stores = name, key_columns, columns, stores
        self.rows = {}            # key string -> row
        self.next_offsets = {p: 0 for p in range(PARTITIONS)}
        self.history = []         # change messages, for resume
        self.history_floor = {p: 0 for p in range(PARTITIONS)}
        self.events = 0
        self.last_flush_ms = 0
        self.visible_ms = []      # recent event-to-visible delays
        self.clients = set()      # Feed objects
        self.forgot = False       # POST /mock/forget: the next reconnect gets a snapshot

    def key_of(self, row):
        return "/".join(str(row[c]) for c in self.key_columns)


class Model:
    """The inventory domain and the three example views, all in memory."""

    def __init__(self, stores, skus, seed):
        rnd = random.Random(seed)
        self.items = {}           # (store, sku) -> [on_hand, reserved]
        self.log_offsets = {p: 0 for p in range(PARTITIONS)}
        self.pending = []         # events published but not yet flushed into the views
        self.views = {
            "stock_levels": View("stock_levels", ["store", "sku"], ["store", "sku", "on_hand"], ["postgres", "rocksdb"]),
            "sales_per_store_hour": View("sales_per_store_hour", ["store", "hour"],
                                         ["store", "hour", "units", "sales", "avg_units"], ["postgres"]),
            "low_stock": View("low_stock", ["store", "sku"], ["store", "sku", "on_hand", "reserved", "since"], ["postgres"]),
        }
        for s in range(1, stores + 1):
            for k in range(1, skus + 1):
                self.publish({"type": "StockReceived", "store": f"store-{s:02d}", "sku": f"SKU-{k:04d}",
                              "delta": rnd.randint(1, 40)})
        self.flush()
        for v in self.views.values():
            v.history.clear()
            v.history_floor = dict(v.next_offsets)

    def decide(self, c):
        """A command -> (event, None) or (None, (http status, reason))."""
        for field in ("type", "store", "sku"):
            if not isinstance(c.get(field), str) or not c[field]:
                return None, (400, f"missing field: {field}")
        item = self.items.get((c["store"], c["sku"]), [0, 0])
        t = c["type"]
        if t in ("receive", "reserve", "release", "sell"):
            qty = c.get("qty")
            if not isinstance(qty, int) or qty < 1:
                return None, (400, "qty: expected a positive integer")
        if t == "receive":
            return {"type": "StockReceived", "delta": qty}, None
        if t == "sell":
            if qty > item[0]:
                return None, (409, f"insufficient stock to sell {qty}: store {c['store']} sku {c['sku']} "
                                   f"has on_hand {item[0]}, reserved {item[1]}")
            return {"type": "StockSold", "delta": -qty, "qty": qty}, None
        if t == "reserve":
            if item[1] + qty > item[0]:
                return None, (409, "insufficient stock to reserve")
            return {"type": "StockReserved", "delta": 0, "reserved_delta": qty}, None
        if t == "release":
            return {"type": "StockReleased", "delta": 0, "reserved_delta": -min(qty, item[1])}, None
        if t == "adjust":
            counted = c.get("counted")
            if not isinstance(counted, int) or counted < 0:
                return None, (400, "counted: expected a non-negative integer")
            return {"type": "StockAdjusted", "delta": counted - item[0]}, None
        return None, (400, f"unknown command type \"{t}\" (expected receive, reserve, release, sell or adjust)")

    def publish(self, event):
        p = partition_of(event["store"])
        event.update(partition=p, offset=self.log_offsets[p], ts_ms=now_ms())
        self.log_offsets[p] += 1
        item = self.items.setdefault((event["store"], event["sku"]), [0, 0])
        item[0] += event["delta"]
        item[1] += event.get("reserved_delta", 0)
        event["on_hand"], event["reserved"] = item
        self.pending.append(event)
        return p, event["offset"]

    def flush(self):
        """Applies the pending events to every view; answers {view: [change message]}."""
        events, self.pending = self.pending, []
        if not events:
            return {}
        touched = {name: {} for name in self.views}   # view -> key -> (row or None, partition, offset)
        stock, sales, low = (self.views[n] for n in ("stock_levels", "sales_per_store_hour", "low_stock"))
        for e in events:
            s, k, p, o = e["store"], e["sku"], e["partition"], e["offset"]
            key = f"{s}/{k}"
            row = dict(touched["stock_levels"].get(key, (stock.rows.get(key),))[0] or {"store": s, "sku": k, "on_hand": 0})
            row["on_hand"] += e["delta"]
            touched["stock_levels"][key] = (row, p, o)
            if e["on_hand"] < 5:
                prev = touched["low_stock"].get(key, (low.rows.get(key),))[0]
                since = prev["since"] if prev else time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(e["ts_ms"] / 1000))
                touched["low_stock"][key] = ({"store": s, "sku": k, "on_hand": e["on_hand"],
                                              "reserved": e["reserved"], "since": since}, p, o)
            elif key in low.rows or touched["low_stock"].get(key, (None,))[0]:
                touched["low_stock"][key] = (None, p, o)
            if e["type"] == "StockSold":
                hour = time.strftime("%Y-%m-%d %H:00:00+00", time.gmtime(e["ts_ms"] / 1000))
                skey = f"{s}/{hour}"
                row = dict(touched["sales_per_store_hour"].get(skey, (sales.rows.get(skey),))[0]
                           or {"store": s, "hour": hour, "units": 0, "sales": 0, "avg_units": 0})
                row["units"] += e["qty"]
                row["sales"] += 1
                row["avg_units"] = round(row["units"] / row["sales"], 4)
                touched["sales_per_store_hour"][skey] = (row, p, o)
        flushed = {}
        t = now_ms()
        for name, changes in touched.items():
            view = self.views[name]
            view.events += len(events)
            view.visible_ms = (view.visible_ms + [t - e["ts_ms"] + 1 for e in events])[-1000:]
            view.last_flush_ms = t
            for e in events:
                view.next_offsets[e["partition"]] = max(view.next_offsets[e["partition"]], e["offset"] + 1)
            messages = []
            for key, (row, p, o) in sorted(changes.items(), key=lambda kv: (kv[1][1], kv[1][2])):
                if row is None and key not in view.rows:
                    continue
                if row is None:
                    del view.rows[key]
                else:
                    view.rows[key] = row
                messages.append({"type": "change", "op": "delete" if row is None else "upsert",
                                 "key": key.split("/", len(view.key_columns) - 1), "row": row,
                                 "partition": p, "offset": o, "committed_ms": t})
            view.history = (view.history + messages)[-10000:]
            if len(view.history) == 10000:
                for p in range(PARTITIONS):
                    view.history_floor[p] = min((m["offset"] for m in view.history if m["partition"] == p),
                                                default=view.next_offsets[p])
            flushed[name] = messages
        return flushed

    def status(self, view, store):
        visible = sorted(view.visible_ms)

        def at_most(q):
            # Like the real histogram: an upper bound (a bucket), not the exact value.
            if not visible:
                return 0
            v = visible[min(len(visible) - 1, int(q * len(visible)))]
            return next(b for b in (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 1e9) if v <= b)

        lag = {str(p): 0 for p in range(PARTITIONS)}
        for e in self.pending:
            lag[str(e["partition"])] += 1
        out = {"view": view.name, "name": view.name, "store": store, "state": "running",
               "next_offsets": {str(p): o for p, o in view.next_offsets.items()}, "lag": lag,
               "stale": False, "last_flush_ms": view.last_flush_ms, "events": view.events,
               "events_total": view.events, "dead_letters": 0, "version": "mock1",
               "table": view.name + "__vmock1"}
        now_ms = int(time.time() * 1000)
        if visible:
            out["event_to_visible_ms"] = {"p50_at_most": at_most(0.5), "p99_at_most": at_most(0.99),
                                          "events": len(visible)}
            # The real server's window is the last minute that had events; the
            # stand-in keeps only recent samples, so it reports them as such.
            out["event_to_visible_recent_ms"] = {"p50_at_most": at_most(0.5), "p99_at_most": at_most(0.99),
                                                 "events": len(visible), "window_ms": 60000,
                                                 "measured_at_ms": now_ms}
        out["now_ms"] = now_ms  # the server's clock when the status was taken
        return out


# --------------------------------------------------------------- endpoints --

class Feed:
    """One change feed client."""

    def __init__(self, ws, view, query):
        self.ws, self.view = ws, view
        self.key = query.get("key")
        self.prefix = query.get("prefix")
        self.batch = query.get("batch") == "1"

    def wants(self, key):
        if self.key is not None:
            return key == self.key
        return self.prefix is None or key.startswith(self.prefix)

    def send_changes(self, messages):
        mine = [m for m in messages if self.wants("/".join(m["key"]))]
        if self.batch and mine:
            self.ws.send({"type": "changes", "changes": mine})
        else:
            for m in mine:
                self.ws.send(m)


def parse_offsets(text):
    out = {}
    for pair in text.split(","):
        p, _, o = pair.partition(":")
        if not p.isdigit() or not o.isdigit():
            raise ValueError(f"from: expected partition:offset pairs separated by commas, e.g. 0:120,1:88; got \"{pair}\"")
        out[int(p)] = int(o)
    return out


SQL_RE = re.compile(
    r"^\s*select\s+(?P<cols>\*|[\w\s,]+?)\s+from\s+(?P<view>\w+)"
    r"(?:\s+where\s+(?P<col>\w+)\s*(?P<op><=|>=|<>|!=|=|<|>)\s*(?P<value>-?\d+(?:\.\d+)?|'[^']*'))?"
    r"(?:\s+order\s+by\s+(?P<order>\w+)(?P<desc>\s+desc)?(?:\s+asc)?)?"
    r"(?:\s+limit\s+(?P<limit>\d+))?\s*;?\s*$", re.IGNORECASE)


def run_sql(model, sql):
    """-> (view names, columns, rows) or raises ValueError."""
    if not re.match(r"^\s*(select|with)\b", sql, re.IGNORECASE) or ";" in sql.strip().rstrip(";"):
        raise ValueError("only a single SELECT is allowed")
    m = SQL_RE.match(sql)
    if not m:
        raise ValueError("the mock server understands only SELECT cols FROM view [WHERE col op value] "
                         "[ORDER BY col [DESC]] [LIMIT n]")
    view = model.views.get(m["view"])
    if view is None:
        raise ValueError(f"relation \"{m['view']}\" does not exist")
    columns = view.columns if m["cols"].strip() == "*" else [c.strip() for c in m["cols"].split(",")]
    for c in columns + [x for x in (m["col"], m["order"]) if x]:
        if c not in view.columns:
            raise ValueError(f"column \"{c}\" does not exist")
    rows = list(view.rows.values())
    if m["col"]:
        value = m["value"][1:-1] if m["value"].startswith("'") else float(m["value"])
        ops = {"<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
               ">=": lambda a, b: a >= b, "=": lambda a, b: a == b, "<>": lambda a, b: a != b,
               "!=": lambda a, b: a != b}
        rows = [r for r in rows if ops[m["op"]](r[m["col"]], value)]
    rows.sort(key=lambda r: [r[c] for c in view.key_columns])
    if m["order"]:
        rows.sort(key=lambda r: r[m["order"]], reverse=bool(m["desc"]))
    if m["limit"]:
        rows = rows[:int(m["limit"])]
    return [view.name], columns, [{c: r[c] for c in columns} for r in rows]


class LiveQuery:
    """One /sql/feed client."""

    def __init__(self, ws, model):
        self.ws, self.model = ws, model
        self.query = None          # (sql, key columns, min interval ms)
        self.views = []
        self.last = {}             # key -> row
        self.last_run = 0.0
        self.scheduled = False

    def offsets(self):
        return {v: {str(p): o for p, o in self.model.views[v].next_offsets.items()} for v in self.views}

    async def start(self, message):
        try:
            q = json.loads(message)
            sql, key = q["sql"], q.get("key")
            interval = max(10, int(q.get("min_interval_ms", 250)))
            self.views, columns, rows = run_sql(self.model, sql)
            key = key or columns
            for k in key:
                if k not in columns:
                    raise ValueError(f"key column \"{k}\" is not in the result")
        except (ValueError, KeyError, TypeError) as e:
            self.query = None
            self.ws.send({"type": "error", "error": str(e) if not isinstance(e, KeyError) else f"missing {e}"})
            return
        self.query = (sql, key, interval)
        self.last = {json.dumps([r[k] for k in key]): r for r in rows}
        self.last_run = time.monotonic()
        self.ws.send({"type": "result", "columns": columns, "rows": rows, "views": self.offsets(),
                            "ts_ms": now_ms()})

    async def flushed(self, view_names):
        if not self.query or self.scheduled or not set(view_names) & set(self.views):
            return
        self.scheduled = True
        wait = self.last_run + self.query[2] / 1000 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self.scheduled = False
        if not self.query or self.ws.closed:
            return
        sql, key, _ = self.query
        try:
            _, _, rows = run_sql(self.model, sql)
        except ValueError as e:
            self.query = None
            self.ws.send({"type": "error", "error": str(e)})
            return
        self.last_run = time.monotonic()
        now = {json.dumps([r[k] for k in key]): r for r in rows}
        added = [r for k, r in now.items() if k not in self.last]
        changed = [r for k, r in now.items() if k in self.last and self.last[k] != r]
        removed = [{c: r[c] for c in key} for k, r in self.last.items() if k not in now]
        self.last = now
        if added or changed or removed:
            self.ws.send({"type": "diff", "added": added, "changed": changed, "removed": removed,
                                "views": self.offsets(), "ts_ms": now_ms()})


class Server:
    def __init__(self, args):
        self.args = args
        self.model = Model(args.stores, args.skus, args.seed)
        self.sockets = set()
        self.live_queries = set()

    # -- HTTP plumbing --

    async def handle(self, reader, writer, role):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = (lines[0].split(" ") + ["", ""])[:3]
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
        url = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if headers.get("upgrade", "").lower() == "websocket" and role == "views":
            await self.upgrade(reader, writer, url.path, query, headers)
            return
        handler = self.views_http if role == "views" else self.writer_http
        status, ctype, payload = await handler(method, url.path, query, body)
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload).encode()
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {len(payload)}\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n".encode() + payload)
        try:
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    def refuse(self, writer, status, reason):
        body = json.dumps({"error": reason}).encode()
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                     "Connection: close\r\n\r\n".encode() + body)
        writer.close()

    async def upgrade(self, reader, writer, path, query, headers):
        if self.args.token:
            bearer = headers.get("authorization", "")
            if query.get("token") != self.args.token and bearer != "Bearer " + self.args.token:
                return self.refuse(writer, 401, "missing or wrong token")
        m = re.fullmatch(r"/views/([^/]+)/feed", path)
        view = self.model.views.get(m[1]) if m else None
        if m and view is None:
            return self.refuse(writer, 404, f"no such view: {m[1]}")
        if not m and path != "/sql/feed":
            return self.refuse(writer, 404, f"no such endpoint: {path}")
        if "key" in query and "prefix" in query:
            return self.refuse(writer, 400, "give at most one of key= and prefix=")
        try:
            start = parse_offsets(query["from"]) if query.get("from") else None
        except ValueError as e:
            return self.refuse(writer, 400, str(e))
        accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + WS_GUID).encode()).digest()).decode()
        writer.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode())
        ws = WebSocket(reader, writer)
        self.sockets.add(ws)
        try:
            if view is not None:
                await self.feed(ws, view, query, start)
            else:
                await self.sql_feed(ws)
        finally:
            self.sockets.discard(ws)

    async def feed(self, ws, view, query, start):
        client = Feed(ws, view, query)
        store = query.get("store") or ("rocksdb" if "rocksdb" in view.stores else "postgres")
        ws.send({"type": "hello", "view": view.name, "store": store,
                       "key_columns": view.key_columns, "columns": view.columns})
        # No await between reading the view and joining its clients: no flush can slip in between.
        if start is not None and not view.forgot and all(start.get(p, 0) >= view.history_floor[p] for p in range(PARTITIONS)):
            missed = [m for m in view.history if m["offset"] >= start.get(m["partition"], 0)]
            print(f"feed {view.name}: resume from {query['from']}, {len(missed)} missed changes", flush=True)
            view.clients.add(client)
            ws.send({"type": "resume", "offsets": {str(p): o for p, o in start.items()}})
            client.send_changes(missed)
        else:
            rows = [{"key": k.split("/", len(view.key_columns) - 1), "row": r}
                    for k, r in sorted(view.rows.items()) if client.wants(k)]
            offsets = {str(p): o for p, o in view.next_offsets.items()}
            print(f"feed {view.name}: snapshot of {len(rows)} rows", flush=True)
            view.forgot = False
            view.clients.add(client)
            chunk = 200
            for i in range(0, max(len(rows), 1), chunk):
                done = i + chunk >= len(rows)
                message = {"type": "snapshot", "rows": rows[i:i + chunk], "done": done}
                if done:
                    message["offsets"] = offsets
                ws.send(message)
        try:
            while await ws.receive() is not None:
                ws.close(1008, "the change feed accepts no messages")
        finally:
            view.clients.discard(client)

    async def sql_feed(self, ws):
        q = LiveQuery(ws, self.model)
        self.live_queries.add(q)
        try:
            while (message := await ws.receive()) is not None:
                await q.start(message)
        finally:
            self.live_queries.discard(q)

    async def views_http(self, method, path, query, body):
        model = self.model
        if path == "/views":
            return 200, "application/json", {"views": [model.status(v, s) for v in model.views.values() for s in v.stores]}
        m = re.fullmatch(r"/views/([^/]+)(?:/status)?", path)
        if m:
            view = model.views.get(m[1])
            if view is None:
                return 404, "application/json", {"error": f"no such view: {m[1]}"}
            out = model.status(view, view.stores[0])
            if len(view.stores) > 1:
                out["stores"] = {s: model.status(view, s) for s in view.stores}
            return 200, "application/json", out
        if path == "/healthz":
            return 200, "application/json", {"status": "ok"}
        if path == "/mock/drop" and method == "POST":
            for ws in list(self.sockets):
                ws.abort()
            return 200, "application/json", {"dropped": True}
        if path == "/mock/forget" and method == "POST":
            for v in model.views.values():
                v.forgot = True
            return 200, "application/json", {"forgot": True}
        name = "index.html" if path == "/" else path.lstrip("/")
        file = os.path.join(WEB_DIR, name)
        if "/" not in name and os.path.isfile(file):
            with open(file, "rb") as f:
                return 200, CONTENT_TYPES.get(os.path.splitext(name)[1], "application/octet-stream"), f.read()
        return 404, "application/json", {"error": f"no such endpoint: {path}"}

    async def writer_http(self, method, path, query, body):
        if path == "/commands" and method == "POST":
            try:
                commands = json.loads(body or b"null")
            except ValueError as e:
                return 400, "application/json", {"error": f"malformed JSON: {e}"}
            answers = [self.command(c if isinstance(c, dict) else {}) for c in
                       (commands if isinstance(commands, list) else [commands])]
            if isinstance(commands, list):
                return 200, "application/json", [a for _, a in answers]
            return answers[0][0], "application/json", answers[0][1]
        m = re.fullmatch(r"/state/([^/]+)/([^/]+)", path)
        if m:
            item = self.model.items.get((m[1], m[2]))
            p = partition_of(m[1])
            entity = {"store": m[1], "sku": m[2], "on_hand": item[0], "reserved": item[1]} if item else None
            return (200 if item else 404), "application/json", {"partition": p, "offset": self.model.log_offsets[p] - 1,
                                                               "entity": entity}
        if path in ("/readyz", "/healthz"):
            return 200, "application/json", {"ready": True}
        return 404, "application/json", {"error": f"no such endpoint: {path}"}

    def command(self, c):
        event, refusal = self.model.decide(c)
        if refusal:
            status, reason = refusal
            return status, {"error": reason, "refused": True} if status == 409 else {"error": reason}
        event.update(store=c["store"], sku=c["sku"])
        p, o = self.model.publish(event)
        return 200, {"partition": p, "offset": o}

    # -- background work --

    async def flusher(self):
        last_progress = 0.0
        while True:
            await asyncio.sleep(self.args.flush_ms / 1000)
            flushed = self.model.flush()
            heartbeat = time.monotonic() - last_progress > 5
            if not flushed and not heartbeat:
                continue
            last_progress = time.monotonic()
            for name, messages in flushed.items() if flushed else [(n, []) for n in self.model.views]:
                view = self.model.views[name]
                progress = {"type": "progress", "offsets": {str(p): o for p, o in view.next_offsets.items()},
                            "ts_ms": now_ms()}
                for client in list(view.clients):
                    client.send_changes(messages)
                    client.ws.send(progress)
            if flushed:
                for q in list(self.live_queries):
                    asyncio.ensure_future(q.flushed(list(flushed)))

    async def load(self):
        rnd = random.Random()
        keys = list(self.model.items)
        while True:
            await asyncio.sleep(1 / self.args.load)
            store, sku = rnd.choice(keys)
            kind = rnd.choice(["sell", "sell", "sell", "receive"])
            self.command({"type": kind, "store": store, "sku": sku, "qty": rnd.randint(1, 6)})


async def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--views-port", type=int, default=18081)
    parser.add_argument("--writer-port", type=int, default=18080)
    parser.add_argument("--stores", type=int, default=4)
    parser.add_argument("--skus", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--flush-ms", type=int, default=100)
    parser.add_argument("--load", type=float, default=0, help="random commands per second (0: none)")
    parser.add_argument("--token", default="", help="require this token on the WebSocket endpoints")
    args = parser.parse_args()
    server = Server(args)
    views = await asyncio.start_server(lambda r, w: server.handle(r, w, "views"), args.host, args.views_port)
    writer = await asyncio.start_server(lambda r, w: server.handle(r, w, "writer"), args.host, args.writer_port)
    print(f"mock views on http://{args.host}:{args.views_port}, writer on http://{args.host}:{args.writer_port}",
          flush=True)
    tasks = [asyncio.ensure_future(server.flusher())]
    if args.load > 0:
        tasks.append(asyncio.ensure_future(server.load()))
    async with views, writer:
        await asyncio.gather(views.serve_forever(), writer.serve_forever(), *tasks)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
