#!/usr/bin/env bash
# CTest entry for the real-browser test: a writer and a view process of the
# real binary on free ports, with the example inventory views, a fresh
# database and topic, a little demo load; then dashboard_test.py drives
# headless Chromium against the page. Needs the suite's services running.
#
# usage: run_dashboard_test.sh FRESHET_BINARY LOG_DIR
set -euo pipefail
FRESHET=$1
LOG_DIR=$2
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
eval "$("$REPO/scripts/services" env)"

NAME=browser_$$_$(date +%s)
WORK=$LOG_DIR/$NAME
mkdir -p "$WORK"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WRITER_PORT=$(free_port)
VIEWS_PORT=$(free_port)
DB_URL=${FRESHET_PG_URL%/*}/$NAME
psql -q "$FRESHET_PG_URL" -c "CREATE DATABASE $NAME"

cat > "$WORK/freshet.json" <<JSON
{
  "kafka": {"brokers": "$FRESHET_KAFKA_BROKERS", "topic": "$NAME", "partitions": 4},
  "postgres": {"url": "$DB_URL"},
  "writer": {"listen": "127.0.0.1:$WRITER_PORT", "group_id": "$NAME-writers", "owners_topic": "$NAME-owners",
             "transactional_id_prefix": "$NAME"},
  "views": {"listen": "127.0.0.1:$VIEWS_PORT", "group_id": "$NAME-views", "flush_interval_ms": 50,
            "rocksdb_path": "$WORK/views.rocksdb",
            "definitions": $(cat "$REPO/examples/inventory-views.json")}
}
JSON

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql -q "$FRESHET_PG_URL" -c "DROP DATABASE IF EXISTS $NAME WITH (FORCE)" || true
}
trap cleanup EXIT

"$FRESHET" writer --config "$WORK/freshet.json" > "$WORK/writer.log" 2>&1 &
pids+=($!)
"$FRESHET" views --config "$WORK/freshet.json" > "$WORK/views.log" 2>&1 &
pids+=($!)
wait_http() { # url log
  for _ in $(seq 900); do
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "not ready: $1" >&2; tail -20 "$2" >&2; return 1
}
wait_http "http://127.0.0.1:$WRITER_PORT/readyz" "$WORK/writer.log"
wait_http "http://127.0.0.1:$VIEWS_PORT/healthz" "$WORK/views.log"

"$FRESHET" demo-load --writer "http://127.0.0.1:$WRITER_PORT" --stores 2 --skus 20 --commands 200 \
  --wait-views "http://127.0.0.1:$VIEWS_PORT" > "$WORK/load.log" 2>&1

# The example dashboard SQL applies over the example views and agrees with
# them; the read-only role can read it.
psql -q -v ON_ERROR_STOP=1 "$DB_URL" -f "$REPO/sql/examples/inventory_dashboard.sql"
agree=$(psql -tA -v ON_ERROR_STOP=1 "$DB_URL" -c "SELECT (SELECT sum(units) FROM store_stock) = (SELECT sum(on_hand) FROM stock_levels)
  AND (SELECT count(*) FROM restock_list) = (SELECT count(*) FROM low_stock)
  AND (SELECT count(*) FROM store_stock) = 2")
[[ $agree == t ]] || { echo "sql/examples/inventory_dashboard.sql disagrees with the views ($agree)" >&2; exit 1; }
psql -tA -v ON_ERROR_STOP=1 "$DB_URL" -c "SET ROLE freshet_reader; SELECT count(*) FROM store_stock, sales_today" > /dev/null

python3 "$REPO/tests/browser/dashboard_test.py" --views-url "http://127.0.0.1:$VIEWS_PORT" \
  --writer-url "http://127.0.0.1:$WRITER_PORT" --screenshot "$LOG_DIR/dashboard.png"
