#!/usr/bin/env python3
"""Turns the JSON lines of one bench/run into a table and one JSON file.

usage: report.py RESULTS.jsonl MACHINE_JSON SETTINGS_JSON OUT.json
Only the Python standard library.
"""
import json
import sys


def main():
    results_path, machine, settings, out_path = sys.argv[1:5]
    lines = [json.loads(l) for l in open(results_path) if l.strip()]
    by = {}
    for r in lines:
        by.setdefault(r.get("stage") or r.get("bench"), []).append(r)

    rows = []  # (area, what, figure, baseline / ratio, target)

    def add(area, what, figure, against="", target=""):
        rows.append((area, what, figure, against, target))

    for r in by.get("writer_in_process", []):
        lat = r["latency"]
        add("writer", "in process", f"{r['commands_per_s']:,.0f} cmd/s",
            f"p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms", ">= 300,000/s")
    for r in by.get("writer_http", []):
        if r.get("command") == "sell":
            continue  # in the writer-against-Postgres rows below
        lat = r["latency"]
        per_request = r.get("commands_per_request", 1)
        what = "1 command per request" if per_request == 1 else f"{per_request} commands per request"
        add("writer", f"HTTP, 64 keep-alive clients, {what}", f"{r['commands_per_s']:,.0f} cmd/s",
            f"p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms", ">= 50,000/s, p99 < 50 ms")
    for r in by.get("views", []):
        raw, wb, cu = r["raw_consume_per_s"], r["raw_rocksdb_writebatch_per_s"], r["raw_copy_upsert_per_s"]
        add("views", f"raw read_committed consume ({r['events']:,} events)", f"{raw:,.0f} ev/s", "baseline")
        add("views", "raw RocksDB WriteBatch (latest rows)", f"{wb:,.0f} rows/s", "baseline")
        add("views", "raw COPY + upsert (latest rows)", f"{cu:,.0f} rows/s", "baseline")
        l, a = r["latest"], r["aggregate"]
        add("views", "latest-row view -> RocksDB", f"{l['rocksdb_per_s']:,.0f} ev/s",
            f"{100 * l['rocksdb_per_s'] / wb:.0f}% of raw WriteBatch")
        add("views", "latest-row view -> Postgres", f"{l['postgres_per_s']:,.0f} ev/s",
            f"{100 * l['postgres_per_s'] / cu:.0f}% of raw COPY+upsert", ">= 60% of raw upsert")
        add("views", f"aggregate view ({r['keys']:,} keys) -> RocksDB", f"{a['rocksdb_per_s']:,.0f} ev/s",
            f"{100 * a['rocksdb_per_s'] / raw:.0f}% of raw consume", ">= 500,000/s")
        add("views", f"aggregate view ({r['keys']:,} keys) -> Postgres", f"{a['postgres_per_s']:,.0f} ev/s",
            f"{100 * a['postgres_per_s'] / raw:.0f}% of raw consume", ">= 300,000/s")
        scale = 1_000_000 / r["events"]
        rb = r["rebuild_seconds"]
        add("rebuild", f"aggregate view, {r['events']:,} events -> RocksDB", f"{rb['aggregate_rocksdb']:.2f} s",
            f"{rb['aggregate_rocksdb'] * scale:.1f} s per 1M", "<= 3 s per 1M")
        add("rebuild", f"aggregate view, {r['events']:,} events -> Postgres", f"{rb['aggregate_postgres']:.2f} s",
            f"{rb['aggregate_postgres'] * scale:.1f} s per 1M", "<= 10 s per 1M")
        l_rb = rb.get("latest_rocksdb")
        if l_rb:
            add("rebuild", f"latest-row view, {r['events']:,} events -> RocksDB", f"{l_rb:.2f} s",
                f"{l_rb * scale:.1f} s per 1M", "<= 3 s per 1M")
        f = r.get("freshness")
        if f and "rocksdb_event_to_visible" in f:
            # Exact: from each tick's oldest event, and from its Kafka commit.
            for store, target in (("rocksdb", "p99 <= 20 ms"), ("postgres", "p99 <= 100 ms")):
                ev, cv = f[f"{store}_event_to_visible"], f[f"{store}_commit_to_visible"]
                add("freshness", f"event-to-visible, {'RocksDB' if store == 'rocksdb' else 'Postgres'}, "
                    f"{f['rate']:,} ev/s", f"p99 {ev['p99_ms']:.1f} ms",
                    f"p50 {ev['p50_ms']:.1f} ms; commit-to-visible p99 {cv['p99_ms']:.1f} ms; "
                    f"Kafka commit p99 {f['kafka_commit']['p99_ms']:.1f} ms", target)
        elif f:
            add("freshness", f"event-to-visible, RocksDB, {f['rate']:,} ev/s",
                f"p99 <= {f['rocksdb']['p99_ms_at_most']:.0f} ms", f"p50 <= {f['rocksdb']['p50_ms_at_most']:.0f} ms",
                "p99 <= 20 ms")
            add("freshness", f"event-to-visible, Postgres, {f['rate']:,} ev/s",
                f"p99 <= {f['postgres']['p99_ms_at_most']:.0f} ms", f"p50 <= {f['postgres']['p50_ms_at_most']:.0f} ms",
                "p99 <= 100 ms")
    for r in by.get("feed_fanout", []):
        lat = r["latency"]
        what = (f"feed commit-to-client, {r['clients']} clients, {r['rate']:,} changes/s"
                + (" (batch=1)" if r["batch"] else ""))
        add("feed", what, f"p99 {lat['p99_ms']:.0f} ms",
            f"p50 {lat['p50_ms']:.0f} ms; event-to-client p99 {r.get('event_latency', {}).get('p99_ms', 0):.0f} ms; "
            f"{r['delivered_per_s']:,.0f} changes/s delivered; "
            f"{r['clients_short']} clients short, {r['resets']} resets",
            "p99 < 100 ms, all keep up" if r["clients"] >= 1000 else "")
    for r in by.get("memory", []):
        per = 100_000 / r["entities"]
        # Per 100k: what the entities added over the idle process, scaled.
        for who, unit in (("writer", "entities"), ("views", "keys")):
            peak, idle = r[f"{who}_peak_rss_kb"], r[f"{who}_idle_rss_kb"]
            add("memory", f"{'writer' if who == 'writer' else 'view process'} peak RSS, {r['entities']:,} {unit}",
                f"{peak / 1024:.0f} MB", f"{(peak - idle) / 1024 * per:.0f} MB per 100k {unit} (over {idle / 1024:.0f} MB idle)")

    for r in by.get("sources", []):
        # Views over other services' topics, each against the same kind and
        # store over freshet's envelope in the same run.
        label = {"freshet": "freshet envelope", "upsert": "JSON upsert", "append": "JSON append",
                 "debezium": "Debezium JSON", "avro": "Avro upsert (registry)", "protobuf": "Protobuf append (registry)"}
        raw = r["raw_consume_per_s"]
        order = [s for s in label if s in raw]
        for source in order:
            per_s = raw[source]
            add("sources", f"raw read_committed consume, {label[source]} ({r['events']:,} records, "
                f"{r['mean_value_bytes'][source]:.0f} B)", f"{per_s:,.0f} rec/s", "baseline")
        for kind, what in (("latest", f"latest view ({r['keys']:,} keys)"),
                           ("aggregate", f"aggregate ({r['groups']:,} groups)")):
            for store, store_label in (("rocksdb", "RocksDB"), ("postgres", "Postgres")):
                for source in [s for s in order if s in r[kind]]:
                    fig = r[kind][source]
                    per_s = fig[f"{store}_per_s"]
                    against = (f"{100 * fig[f'{store}_vs_freshet']:.0f}% of freshet envelope; "
                               f"{100 * per_s / raw[source]:.0f}% of raw consume")
                    target = ">= 80% of freshet envelope"
                    if f"{store}_vs_json" in fig:  # Avro and Protobuf: against the same view over JSON
                        against = f"{100 * fig[f'{store}_vs_json']:.0f}% of the same view over JSON; " + against
                        target = ">= 70% of the same view over JSON"
                    add("sources", f"{what} over {label[source]} -> {store_label}", f"{per_s:,.0f} rec/s",
                        "baseline" if source == "freshet" else against,
                        "" if source == "freshet" else target)

    # The same decision (sell one unit if stock allows, record the event) by
    # the writer over HTTP and as one Postgres transaction, per client count.
    postgres = {r["clients"]: r for r in by.get("postgres_sell", [])}
    for r in by.get("writer_http", []):
        if r.get("command") != "sell":
            continue
        clients, lat, partitions = r["clients"], r["latency"], r.get("partitions", 8)
        per_request = r.get("commands_per_request", 1)
        pg = postgres.get(clients)
        against = ""
        if pg:
            against = (f"Postgres {pg['tps']:,.0f}/s p50 {pg['latency']['p50_ms']:.2f} ms p99 "
                       f"{pg['latency']['p99_ms']:.1f} ms: {r['commands_per_s'] / pg['tps']:.2f}x")
        if per_request == 1:
            what = "1 command per request"
            target = {64: ">= 2x Postgres, p99 <= Postgres's", 1: "p50 <= 3 ms"}.get(clients, "")
        else:
            what = f"{per_request} commands per request"
            target = ">= 100,000/s, p99 < 50 ms"
        add("vs postgres", f"writer sell over HTTP, {clients} client(s), {what}, {partitions} partitions",
            f"{r['commands_per_s']:,.0f} cmd/s p50 {lat['p50_ms']:.2f} ms p99 {lat['p99_ms']:.1f} ms", against, target)

    for r in by.get("recovery", []):
        # One partition's cold takeover (no standby) after a long history.
        history = f"{r['events']:,} events, {r['entities']:,} entities"
        replay, snap, hot = r["replay"], r["snapshot_and_tail"], r["hot_standby"]
        add("recovery", f"cold takeover by log replay ({history})", f"{replay['seconds']:.2f} s", "baseline")
        add("recovery", f"cold takeover from snapshot + {r['tail_events']:,}-event tail", f"{snap['seconds']:.2f} s",
            f"{replay['seconds'] / snap['seconds']:.1f}x faster than replay", "<= 2 s")
        add("recovery", "first snapshot, written by a takeover that replayed", f"{r['first_snapshot']['seconds']:.2f} s",
            "replay + snapshot")
        add("recovery", "hot standby takeover", f"{hot['seconds']:.2f} s", "unchanged by snapshots")
    for r in by.get("scale_out_reads", []):
        one, three = r["one_process"], r["three_processes"]
        add("scale-out", f"point reads, one process with all {r['partitions']} partitions ({r['clients']} clients)",
            f"{one['reads_per_s']:,.0f} reads/s", f"p50 {one['p50_ms']:.2f} ms, p99 {one['p99_ms']:.2f} ms")
        add("scale-out", "point reads through one of three processes (asks the other two)",
            f"{three['reads_per_s']:,.0f} reads/s",
            f"p50 {three['p50_ms']:.2f} ms, p99 {three['p99_ms']:.2f} ms; {three['reads_per_s'] / one['reads_per_s']:.2f}x")

    m = json.loads(machine)
    print()
    print(f"freshet {m['freshet']} on {m['cores']} cores, {m['memory_mb']} MB ({m['cpu']}); "
          f"librdkafka {m['librdkafka']}, libpqxx {m['libpqxx']}, RocksDB {m['rocksdb']}, "
          f"Postgres {m['postgres']}, Kafka {m['kafka']}; build {m['build']}")
    print(f"settings: {settings}")
    header = ("area", "what", "figure", "next to", "target")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(5)]
    line = "  ".join("{:<%d}" % w for w in widths)
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for r in rows:
        print(line.format(*r))
    with open(out_path, "w") as out:
        json.dump({"machine": m, "settings": json.loads(settings), "results": lines}, out, indent=2)
        out.write("\n")


if __name__ == "__main__":
    main()
