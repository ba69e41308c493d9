#!/usr/bin/env bash
# Smoke test of a real Debezium pipeline (scripts/debezium): a fresh database
# dbz_smoke with table public.customers and 2 rows, then Debezium's Postgres
# connector in a Kafka Connect worker, then an insert, an update, a delete and
# a primary-key change. Checks, on the topic, every event in order: the
# snapshot reads (r), c, u, d + tombstone, and the key change as d (header
# __debezium.newkey) + tombstone + c (header __debezium.oldkey), with the
# values of each column type. Stops the worker and drops its slot at the end,
# also on failure. Needs the services running (scripts/services start).
#
# usage: tests/debezium/debezium_smoke_test.sh
# Environment: DBZ_SMOKE_TIMEOUT (seconds to wait for the events, 60).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DBZ=$REPO/scripts/debezium
TIMEOUT=${DBZ_SMOKE_TIMEOUT:-60}

log() { printf '[dbz-smoke] %s\n' "$*" >&2; }
fail() {
  printf '[dbz-smoke] FAIL: %s\n' "$*" >&2
  if [[ -s ${MESSAGES:-} ]]; then
    echo "----- messages on $TOPIC -----" >&2
    cut -c 1-400 "$MESSAGES" >&2
  fi
  if [[ -n ${FRESHET_DBZ_LOG:-} && -s $FRESHET_DBZ_LOG ]]; then
    echo "----- last lines of $FRESHET_DBZ_LOG -----" >&2
    tail -n 30 "$FRESHET_DBZ_LOG" >&2
  fi
  echo "FAIL: debezium smoke test" >&2
  exit 1
}
trap 'fail "unexpected error at line $LINENO (exit $?)"' ERR

eval "$("$REPO/scripts/services" env)"
"$REPO/scripts/services" status >/dev/null || fail "the services are not running: scripts/services start"
if ! command -v kcat >/dev/null; then
  [[ $(id -u) -eq 0 ]] || fail "kcat not found (scripts/setup --no-build installs it)"
  log "installing kcat"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends kcat >&2
fi

NAME=dbz_smoke
DB=dbz_smoke
# A new topic per run: the counts below never see an earlier run's events.
PREFIX=dbz_smoke_$(date +%s)_$$
TOPIC=$PREFIX.public.customers
SRC=postgresql://freshet@127.0.0.1:$FRESHET_PG_PORT/$DB
WORK=$(mktemp -d)
MESSAGES=$WORK/messages.jsonl
t0=$(date +%s.%N)

admin() { psql -X -q -v ON_ERROR_STOP=1 "postgresql://postgres@127.0.0.1:$FRESHET_PG_PORT/postgres" "$@"; }
src() { psql -X -q -v ON_ERROR_STOP=1 "$SRC" "$@"; }

cleanup() {
  trap - ERR
  "$DBZ" stop --name "$NAME" --drop-slot || log "cleanup: scripts/debezium stop failed"
  rm -rf "$WORK"
}
trap cleanup EXIT

# An earlier run's slot would keep DROP DATABASE from working: drop it first.
log "fresh database $DB"
"$DBZ" stop --name "$NAME" --drop-slot
admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB OWNER freshet"
src <<'SQL'
CREATE TABLE public.customers (
  id int PRIMARY KEY,
  email text,
  balance numeric(12,2),
  updated timestamp,
  created timestamptz,
  born date
);
INSERT INTO public.customers VALUES
  (1, 'ada@example.com', 1234.56, '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05+00', '1990-05-17'),
  (2, 'bob@example.com', -7.50, '2024-02-03 04:05:06', '2024-02-03 04:05:06+02', '1985-12-01');
SQL

log "starting the connector (topic $TOPIC)"
t_start=$(date +%s.%N)
URL=$("$DBZ" start --name "$NAME" --database "$DB" --tables public.customers --topic-prefix "$PREFIX")
t_running=$(date +%s.%N)
[[ $URL =~ ^http://127\.0\.0\.1:[0-9]+$ ]] || fail "start printed '$URL', not a REST URL"
eval "$("$DBZ" env --name "$NAME")"
[[ $FRESHET_DBZ_PG_URL == "$SRC" ]] || fail "env: FRESHET_DBZ_PG_URL=$FRESHET_DBZ_PG_URL, expected $SRC"
"$DBZ" status --name "$NAME" >&2 || fail "status does not say RUNNING"

# Every change committed from here on is captured (start waited for the slot).
log "insert, update, delete, primary-key change"
src -c "INSERT INTO public.customers VALUES (3, 'cy@example.com', 0.01, '2024-03-04 05:06:07', '2024-03-04 05:06:07+00', '2000-01-01')"
src -c "UPDATE public.customers SET email = 'bob@new.example.com', balance = balance + 100 WHERE id = 2"
src -c "DELETE FROM public.customers WHERE id = 3"
src -c "UPDATE public.customers SET id = 10 WHERE id = 1"

EXPECTED=9 # r1 r2 c3 u2 d3 tombstone3 d1 tombstone1 c10
log "waiting for $EXPECTED messages on $TOPIC (up to ${TIMEOUT}s)"
deadline=$(($(date +%s) + TIMEOUT))
count=0
while :; do
  # -e: exit at the end of the partition; the topic may not exist yet.
  kcat -C -b "$FRESHET_KAFKA_BROKERS" -t "$TOPIC" -o beginning -e -J -q >"$MESSAGES" 2>/dev/null || true
  count=$(grep -c . "$MESSAGES" || true)
  ((count >= EXPECTED)) && break
  (($(date +%s) < deadline)) || fail "only $count of $EXPECTED messages within ${TIMEOUT}s"
  sleep 0.2
done
t_events=$(date +%s.%N)

log "checking the events"
python3 - "$MESSAGES" "$EXPECTED" <<'PY' || fail "the events are not as expected (above)"
import base64, datetime, json, sys

msgs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
expected_count = int(sys.argv[2])
errors = []

def check(cond, what):
    if not cond:
        errors.append(what)

check(len(msgs) == expected_count, f"{len(msgs)} messages, expected {expected_count}")
check(all(m["partition"] == 0 for m in msgs), "not all on partition 0")

def headers(m):
    h = m.get("headers") or []
    return dict(zip(h[0::2], h[1::2]))

events = []
for m in msgs:
    key = json.loads(m["key"])
    check(set(key) == {"schema", "payload"}, f"offset {m['offset']}: key is not schema+payload")
    value = None if m["payload"] is None else json.loads(m["payload"])
    events.append((m, key["payload"]["id"], value))

def op(value):
    return "tombstone" if value is None else value["payload"]["op"]

got = [(op(v), k) for _, k, v in events]
want = [("r", 1), ("r", 2), ("c", 3), ("u", 2), ("d", 3), ("tombstone", 3),
        ("d", 1), ("tombstone", 1), ("c", 10)]
check(got == want, f"ops (op, key id): got {got}, want {want}")
if errors:
    print("\n".join(errors))
    sys.exit(1)

def decimal(b64, scale):
    return int.from_bytes(base64.b64decode(b64), "big", signed=True) / 10**scale

def micros(s):
    dt = datetime.datetime.fromisoformat(s).replace(tzinfo=datetime.timezone.utc)
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond

def instant(s):  # ZonedTimestamp: ISO 8601 in UTC, fraction digits as the column's precision
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))

def days(s):
    return (datetime.date.fromisoformat(s) - datetime.date(1970, 1, 1)).days

(m_r1, _, r1), (_, _, r2), (_, _, c3), (_, _, u2), (_, _, d3), _, (m_d1, _, d1), _, (m_c10, _, c10) = events

# The value schema (schemas.enable=true): the column types as Debezium maps them.
after_fields = {f["field"]: f for f in r1["schema"]["fields"] if f["field"] == "after"}["after"]["fields"]
types = {f["field"]: (f["type"], f.get("name"), (f.get("parameters") or {}).get("scale")) for f in after_fields}
check(types["balance"] == ("bytes", "org.apache.kafka.connect.data.Decimal", "2"), f"balance schema {types['balance']}")
check(types["updated"][1] == "io.debezium.time.MicroTimestamp", f"updated schema {types['updated']}")
check(types["created"][1] == "io.debezium.time.ZonedTimestamp", f"created schema {types['created']}")
check(types["born"][1] == "io.debezium.time.Date", f"born schema {types['born']}")

p = r1["payload"]
check(p["source"]["snapshot"] in ("first", "true"), f"r1 source.snapshot {p['source']['snapshot']}")
check(p["source"]["db"] == "dbz_smoke" and p["source"]["table"] == "customers", f"r1 source {p['source']}")
a = p["after"]
check(a["email"] == "ada@example.com", f"r1 email {a['email']}")
check(a["balance"] == "AeJA" and decimal(a["balance"], 2) == 1234.56, f"r1 balance {a['balance']}")
check(a["updated"] == micros("2024-01-02 03:04:05.123456"), f"r1 updated {a['updated']}")
check(a["created"].endswith("Z") and instant(a["created"]) == instant("2024-01-02T03:04:05Z"), f"r1 created {a['created']}")
check(a["born"] == days("1990-05-17"), f"r1 born {a['born']}")
check(decimal(r2["payload"]["after"]["balance"], 2) == -7.5, f"r2 balance {r2['payload']['after']['balance']}")
check(instant(r2["payload"]["after"]["created"]) == instant("2024-02-03T04:05:06+02:00"), f"r2 created {r2['payload']['after']['created']}")

check(c3["payload"]["before"] is None and c3["payload"]["after"]["email"] == "cy@example.com", "c3 row")
check(c3["payload"]["source"]["snapshot"] == "false", f"c3 source.snapshot {c3['payload']['source']['snapshot']}")
u = u2["payload"]
check(u["before"] is None, "u2 before should be null (REPLICA IDENTITY DEFAULT)")
check(u["after"]["email"] == "bob@new.example.com" and decimal(u["after"]["balance"], 2) == 92.5, f"u2 after {u['after']}")
check(d3["payload"]["after"] is None and d3["payload"]["before"]["id"] == 3, f"d3 before/after {d3['payload']}")

check(d1["payload"]["before"]["id"] == 1, "pk change: d before.id")
check("__debezium.newkey" in headers(m_d1), f"pk change: d headers {headers(m_d1)}")
check(c10["payload"]["after"]["id"] == 10 and c10["payload"]["after"]["email"] == "ada@example.com", "pk change: c after")
check("__debezium.oldkey" in headers(m_c10), f"pk change: c headers {headers(m_c10)}")

if errors:
    print("\n".join(errors))
    sys.exit(1)
PY

el() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
log "start to RUNNING $(el "$t_start" "$t_running") s, changes to all events $(el "$t_running" "$t_events") s, total $(el "$t0" "$(date +%s.%N)") s"
echo "PASS: debezium smoke test ($EXPECTED events: r r c u d tombstone d tombstone c)"
