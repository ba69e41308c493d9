// Unit test of web/freshet.js with a scripted fake WebSocket (no server, no
// browser): snapshot, coalesced changes, reconnect with resume, return()
// closing at once, refused first connection, live SQL result/diff/error.
//   node tests/browser/freshet_test.mjs
import {readFileSync} from "node:fs";

const sockets = [];
globalThis.WebSocket = class {
  static OPEN = 1;
  constructor(url) { this.url = url; this.readyState = 0; this.sent = []; sockets.push(this); }
  send(t) { this.sent.push(JSON.parse(t)); }
  close(code) { this.readyState = 3; this.closedWith = code; }
  open() { this.readyState = 1; this.onopen?.(); }
  msg(m) { this.onmessage?.({data: JSON.stringify(m)}); }
  drop(code = 1006) { this.readyState = 3; this.onclose?.({code, reason: ""}); }
};
// As a data: URL, so that any Node >= 18 loads the .js file as an ES module.
const source = readFileSync(new URL("../../web/freshet.js", import.meta.url), "utf8");
const {viewFeed, liveQuery, wsUrl} = await import("data:text/javascript," + encodeURIComponent(source));
const tick = () => new Promise((r) => setTimeout(r, 0));
const assert = (ok, what) => {
  if (!ok) {
    console.error("FAIL", what);
    process.exit(1);
  }
  console.log("ok", what);
};

assert(wsUrl("http://h:1/views/x/feed", {a: 1, b: undefined, c: ""}) === "ws://h:1/views/x/feed?a=1", "wsUrl");
assert(wsUrl("https://h/sql/feed") === "wss://h/sql/feed", "wss");

// viewFeed: snapshot, change, drop+resume, return closes at once
const it = viewFeed("http://h/views/s/feed", {prefix: "a/"});
let p = it.next();
await tick();
let s = sockets.at(-1);
assert(s.url === "ws://h/views/s/feed?prefix=a%2F", "first url: " + s.url);
s.open();
s.msg({type: "hello", view: "s", store: "rocksdb", key_columns: ["k1", "k2"], columns: ["k1", "k2", "v"]});
s.msg({type: "snapshot", rows: [{key: ["a", "2"], row: {k1: "a", k2: "2", v: 1}}], done: false});
s.msg({type: "snapshot", rows: [{key: ["a", "10"], row: {k1: "a", k2: "10", v: 5}}], done: true, offsets: {"0": 5, "1": 7}});
let v = (await p).value;
assert(v.length === 2 && v[0].k2 === "2" && v[1].k2 === "10" && v.columns.length === 3, "snapshot sorted numerically");
s.msg({type: "change", op: "upsert", key: ["a", "2"], row: {k1: "a", k2: "2", v: 9}, partition: 0, offset: 5});
s.msg({type: "change", op: "delete", key: ["a", "10"], row: null, partition: 1, offset: 7});
v = (await it.next()).value;
assert(v.length === 1 && v[0].v === 9 && v.offsets["0"] === 6 && v.offsets["1"] === 8, "changes coalesced into one value");
s.drop();
await new Promise((r) => setTimeout(r, 600));
s = sockets.at(-1);
assert(s.url.includes("from=0%3A6%2C1%3A8"), "reconnect with from: " + s.url);
s.open();
s.msg({type: "hello", view: "s", store: "rocksdb", key_columns: ["k1", "k2"], columns: ["k1", "k2", "v"]});
s.msg({type: "resume", offsets: {"0": 6, "1": 8}});
s.msg({type: "change", op: "upsert", key: ["a", "3"], row: {k1: "a", k2: "3", v: 3}, partition: 0, offset: 6});
v = (await it.next()).value;
assert(v.length === 2 && v[1].k2 === "3", "resumed change applied, rows kept");
p = it.next();
const r = await it.return();
assert(r.done && s.closedWith === 1000, "return closes the socket at once");
assert((await p).done, "pending next resolves done");

// viewFeed: first connection refused -> throws
const it2 = viewFeed("http://h/views/nope/feed");
p = it2.next();
await tick();
sockets.at(-1).drop();
try { await p; assert(false, "should throw"); } catch (e) { assert(/cannot open/.test(e.message), "refused feed throws: " + e.message); }

// liveQuery: result, diff, error
const q = liveQuery("ws://h/sql/feed", "SELECT 1", {key: ["id"], minIntervalMs: 100, token: "t"});
p = q.next();
await tick();
s = sockets.at(-1);
assert(s.url === "ws://h/sql/feed?token=t", "sql url");
s.open();
assert(s.sent[0].sql === "SELECT 1" && s.sent[0].min_interval_ms === 100 && s.sent[0].key[0] === "id", "query sent");
s.msg({type: "result", columns: ["id", "x"], rows: [{id: 1, x: "a"}, {id: 2, x: "b"}], views: {v: {"0": 1}}, ts_ms: 1});
v = (await p).value;
assert(v.length === 2 && v.views.v["0"] === 1 && v.columns[1] === "x", "result");
s.msg({type: "diff", added: [{id: 3, x: "c"}], changed: [{id: 1, x: "A"}], removed: [{id: 2}], views: {v: {"0": 2}}, ts_ms: 2});
v = (await q.next()).value;
assert(v.map((r) => r.x).join() === "A,c" && v.views.v["0"] === 2, "diff applied in order");
s.drop(1001);
await new Promise((r) => setTimeout(r, 600));
s = sockets.at(-1); s.open();
assert(s.sent[0].sql === "SELECT 1", "query re-sent after reconnect");
s.msg({type: "error", error: "only a single SELECT is allowed"});
try { await q.next(); assert(false, "should throw"); } catch (e) { assert(e.message === "only a single SELECT is allowed" && s.closedWith === 1000, "error throws and closes"); }
assert((await q.next()).done, "done after error");
console.log("all ok");
