# %% [markdown]
# # freshet from a notebook
#
# The inventory demo's views, the way a data person would use them: SQL into
# pandas, read-your-writes after sending a command, and the live WebSocket
# endpoints (a view's change feed, a live SQL query) for a few updates.
#
# Needs the demo running (`scripts/demo`: writer on :8080, views on :8081,
# Postgres on :15432) and
#
#     pip install pandas psycopg2-binary websockets
#     (or on Debian/Ubuntu: apt-get install python3-pandas python3-psycopg2 python3-websockets)
#
# Run it as a script (`python3 examples/notebook.py`, `--help` for the
# options, `--dry-run` to read without sending any command) or open it as a
# notebook (`pip install jupytext`, then `jupytext --to notebook
# examples/notebook.py`, or open the .py directly in JupyterLab with jupytext
# installed). Other addresses: set PG_URL (or FRESHET_PG_URL, as `scripts/services
# env` does), WRITER_URL, VIEWS_URL and, if `views.feed.token` is set,
# FEED_TOKEN; DRY_RUN=1 is --dry-run for a notebook.

# %%
import argparse
import asyncio
import concurrent.futures
import importlib
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

DEPENDENCIES = {"pandas": "pandas", "psycopg2": "psycopg2-binary", "websockets": "websockets"}  # module: pip name
DEBIAN_PACKAGES = {"pandas": "python3-pandas", "psycopg2": "python3-psycopg2", "websockets": "python3-websockets"}


def in_notebook():
    try:
        return get_ipython() is not None  # noqa: F821 (IPython defines it)
    except NameError:
        return False


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="examples/notebook.py",
        description="The inventory demo's views from Python: SQL into pandas, read-your-writes after a command, "
                    "a view's change feed and a live SQL query over WebSocket. Needs the demo running "
                    "(scripts/demo) and: pip install " + " ".join(DEPENDENCIES.values()),
        epilog="Environment: PG_URL (or FRESHET_PG_URL), WRITER_URL, VIEWS_URL, FEED_TOKEN, DRY_RUN=1. "
               "Nothing is sent anywhere before the arguments are parsed, so --help is safe anywhere.")
    parser.add_argument("--dry-run", action="store_true", default=os.environ.get("DRY_RUN", "") not in ("", "0"),
                        help="send no command to the writer: only read (SQL, the feeds' snapshots) and print the "
                             "commands it would send")
    parser.add_argument("--pg-url", default=os.environ.get("PG_URL") or os.environ.get(
        "FRESHET_PG_URL", "postgresql://freshet@127.0.0.1:15432/freshet"), help="Postgres URL (default: %(default)s)")
    parser.add_argument("--writer-url", default=os.environ.get("WRITER_URL", "http://127.0.0.1:8080"),
                        help="the writer (default: %(default)s)")
    parser.add_argument("--views-url", default=os.environ.get("VIEWS_URL", "http://127.0.0.1:8081"),
                        help="the view process (default: %(default)s)")
    parser.add_argument("--feed-token", default=os.environ.get("FEED_TOKEN", ""),
                        help="views.feed.token, if the view process requires one")
    return parser.parse_args(argv)


def check_dependencies():
    """Exits with the line that installs them when a package is missing."""
    missing = []
    for module in DEPENDENCIES:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        print(f"examples/notebook.py needs Python packages that are not installed: {', '.join(missing)}\n"
              f"  install them with:  pip install {' '.join(DEPENDENCIES[m] for m in missing)}\n"
              f"  or on Debian/Ubuntu: apt-get install -y {' '.join(DEBIAN_PACKAGES[m] for m in missing)}",
              file=sys.stderr)
        sys.exit(2)


# In Jupyter, sys.argv is the kernel's: defaults and environment only.
ARGS = parse_args([] if in_notebook() else sys.argv[1:])
check_dependencies()

import pandas as pd  # noqa: E402 (after the check that says how to install it)
import psycopg2  # noqa: E402
import websockets  # noqa: E402

try:
    from IPython.display import display
except ImportError:  # a plain script
    display = print

PG_URL, WRITER_URL, VIEWS_URL, FEED_TOKEN = ARGS.pg_url, ARGS.writer_url, ARGS.views_url, ARGS.feed_token
DRY_RUN = ARGS.dry_run
if DRY_RUN:
    print("dry run: reading only; the commands are printed, not sent")
WS_URL = VIEWS_URL.replace("http://", "ws://", 1).replace("https://", "wss://", 1)

# Autocommit: every statement sees the views as they are now, not as they were
# when a transaction began.
conn = psycopg2.connect(PG_URL)
conn.autocommit = True


def sql(query, params=None):
    """Runs a query, answers a DataFrame."""
    with conn.cursor() as cur:
        cur.execute(query, params)
        return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


def send_command(command):
    """POSTs one command to the writer; answers its JSON ({"partition", "offset"} when accepted).
    With --dry-run: prints it and answers None."""
    if DRY_RUN:
        print("dry run, would send:", json.dumps(command))
        return None
    request = urllib.request.Request(WRITER_URL + "/commands", data=json.dumps(command).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as e:  # 400 malformed, 409 refused (e.g. not enough stock)
        return json.load(e)


def run(coroutine):
    """Runs async code from a script and from Jupyter (whose event loop is already running)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def ws_url(path, **params):
    if FEED_TOKEN:
        params["token"] = FEED_TOKEN
    return WS_URL + path + ("?" + urllib.parse.urlencode(params) if params else "")


# %% [markdown]
# ## Stock levels per store
# `stock_levels` is a plain SQL view over the current version's table.

# %%
by_store = sql("""
    SELECT store, count(*) AS skus, sum(on_hand) AS units,
           count(*) FILTER (WHERE on_hand < 5) AS low_stock
    FROM stock_levels GROUP BY store ORDER BY store""")
display(by_store)

# %% [markdown]
# ## Sales per store per hour
# One row per (store, hour of the event time); pivot it for a store-by-hour table.

# %%
sales = sql("SELECT store, hour, units, sales, avg_units FROM sales_per_store_hour ORDER BY hour, store")
display(sales.tail(10))
display(sales.pivot(index="hour", columns="store", values="units").fillna(0).astype(int).tail(12))

# %% [markdown]
# ## Read your own write
# The writer answers each accepted command with the `(partition, offset)` of its
# event. `freshet.await_offset` waits (here up to 2 s) until the view has applied
# that offset, so the next query sees the command's effect.

# %%
STORE, SKU, QTY = "store-01", "SKU-0001", 5


def on_hand(store, sku):
    rows = sql("SELECT on_hand FROM stock_levels WHERE store = %s AND sku = %s", (store, sku))
    return int(rows.on_hand.iloc[0]) if len(rows) else 0


before = on_hand(STORE, SKU)
answer = send_command({"type": "receive", "store": STORE, "sku": SKU, "qty": QTY})
if answer is None:  # --dry-run
    print(f"{STORE}/{SKU}: on_hand {before}")
else:
    print("writer answered", answer)
    applied = sql("SELECT freshet.await_offset('stock_levels', %s, %s, '2s') AS applied",
                  (answer["partition"], answer["offset"])).applied.iloc[0]
    after = on_hand(STORE, SKU)
    print(f"{STORE}/{SKU}: on_hand {before} -> {after} (applied: {applied})")
    # Holds unless another client changed the same item meanwhile.
    assert applied and after == before + QTY, (before, after)

# %% [markdown]
# ## Follow the change feed
# `/views/stock_levels/feed?prefix=store-01/` sends the rows of store-01 (a
# snapshot), then one `change` message per committed row change. Here we keep
# the rows in a dict, send a few commands, and watch their changes arrive.


# %%
async def follow_feed(changes_wanted=3, timeout=10):
    rows, seen, columns = {}, [], None
    async with websockets.connect(ws_url("/views/stock_levels/feed", prefix=f"{STORE}/")) as ws:
        async def changes_come_in():
            nonlocal columns
            async for text in ws:
                m = json.loads(text)
                if m["type"] == "hello":
                    columns = m["columns"]  # in the view's order (rows are JSON objects, unordered)
                elif m["type"] == "snapshot":
                    rows.update({"/".join(r["key"]): r["row"] for r in m["rows"]})
                    if m["done"]:
                        print(f"snapshot: {len(rows)} rows as of offsets {m['offsets']}")
                        # Now that we follow the view, change it.
                        for sku in ("SKU-0002", "SKU-0003", "SKU-0004")[:changes_wanted]:
                            await asyncio.to_thread(send_command, {"type": "receive", "store": STORE, "sku": sku,
                                                                   "qty": 1})
                        if DRY_RUN:  # no command sent: no change will come
                            return
                elif m["type"] == "change":
                    key = "/".join(m["key"])
                    if m["op"] == "delete":
                        rows.pop(key, None)
                    else:
                        rows[key] = m["row"]
                    seen.append({"key": key, "op": m["op"], **(m["row"] or {}), "partition": m["partition"],
                                 "offset": m["offset"]})
                    if len(seen) >= changes_wanted:
                        return
                elif m["type"] in ("reset", "error"):
                    print(m)

        await asyncio.wait_for(changes_come_in(), timeout)
    return pd.DataFrame(rows.values(), columns=columns), pd.DataFrame(seen)


store_rows, feed_changes = run(follow_feed())
if len(feed_changes):  # none in a dry run
    display(feed_changes)
display(store_rows.sort_values("on_hand").head())

# %% [markdown]
# ## A live SQL query
# `/sql/feed` runs a SELECT over the views and sends a `diff` whenever a flush
# changes its result; every message says which offsets it reflects. Selling
# an item down below 5 makes it appear.


# %%
LOW_STOCK_SQL = "SELECT store, sku, on_hand FROM stock_levels WHERE on_hand < 5 ORDER BY store, sku"


async def live_low_stock(updates_wanted=1, timeout=10):
    async with websockets.connect(ws_url("/sql/feed")) as ws:
        await ws.send(json.dumps({"sql": LOW_STOCK_SQL, "key": ["store", "sku"], "min_interval_ms": 100}))
        result = json.loads(await ws.recv())
        if result["type"] == "error":
            raise RuntimeError(result["error"])
        low = pd.DataFrame(result["rows"], columns=result["columns"])
        print(f"{len(low)} items low on stock, as of {result['views']}")
        # Bring one more item below 5: sell all of its stock but 2 (reserved units cannot be sold).
        candidates = sql("SELECT store, sku FROM stock_levels WHERE on_hand >= 5 ORDER BY store, sku LIMIT 20")
        for store, sku in candidates.itertuples(index=False):
            state = json.load(urllib.request.urlopen(f"{WRITER_URL}/state/{store}/{sku}", timeout=10))["entity"]
            if state["reserved"] <= 2:
                break
        qty = state["on_hand"] - 2
        print(f"selling {qty} of {store}/{sku}:", await asyncio.to_thread(
            send_command, {"type": "sell", "store": store, "sku": sku, "qty": qty}))
        if DRY_RUN:  # no command sent: no diff will come
            return low, []
        diffs = []
        while len(diffs) < updates_wanted:
            m = json.loads(await asyncio.wait_for(ws.recv(), timeout))
            if m["type"] == "error":
                raise RuntimeError(m["error"])
            print(f"diff: +{len(m['added'])} ~{len(m['changed'])} -{len(m['removed'])} as of {m['views']}")
            diffs.append(m)
        return low, diffs


low, diffs = run(live_low_stock())
if diffs:
    display(pd.DataFrame(diffs[0]["added"] + diffs[0]["changed"]))
