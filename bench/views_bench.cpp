// View throughput on the local broker and Postgres, exactly once, each
// next to raw baselines measured in the same run:
//
//   - raw librdkafka read_committed consumption of the same topic;
//   - raw RocksDB WriteBatch and raw COPY + INSERT ... ON CONFLICT of the
//     rows the latest-row view writes (one per event: unique keys);
//   - views: a latest-row view (unique keys) and an aggregate view (sum and
//     count per (store, sku), 10,000 keys), each into RocksDB and Postgres.
//     Each run starts from offset zero, so its time is also the rebuild time.
//   - freshness: at a fixed offered load (--rate), event-to-visible latency
//     of the aggregate view in RocksDB and Postgres with the default
//     freshness (flush every 100 ms).
//
//   build/bench/views_bench --events 1000000
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <functional>
#include <iostream>
#include <mutex>
#include <pqxx/pqxx>
#include <pqxx/tablewriter>
#include <random>
#include <set>
#include <thread>

#include "bench/bench_util.h"
#include "bench/view_workload.h"
#include "core/envelope.h"
#include "core/kafka.h"
#include "core/postgres.h"
#include "sinks/postgres_sink.h"
#include "views/declarative_projection.h"
#include "views/rocksdb_view_store.h"
#include "views/view_engine.h"

using namespace freshet;
using SteadyClock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string brokers = bench::DefaultBrokers();
  std::string pg_url = bench::DefaultPostgresUrl();
  int events = 300000;
  int partitions = 4;
  int keys = 10000;
  int rate = 5000;  // freshness: offered events/s
  int freshness_seconds = 10;
  std::string json_path;
};

std::map<int32_t, int64_t> ProduceEvents(const Options& o, const std::string& topic) {
  auto producer = Producer::Create({o.brokers, {}});
  std::mt19937 rng(1);
  for (int i = 0; i < o.events; ++i) {
    Event e = bench::BenchEvent(rng, o.keys, i);
    std::string store = e.data["store"];
    (void)(*producer)->Produce({topic, PartitionForKey(store, o.partitions), store, EncodeEventValue(e), {}});
  }
  (void)(*producer)->Flush(std::chrono::seconds(60));
  return bench::HighWatermarks(o.brokers, topic, o.partitions);
}

// Runs an engine until its stored offsets reach `ends`; returns events/s.
// With `until` set, runs until it turns true instead and returns 0.
double RunView(const Options& o, const std::string& topic, std::unique_ptr<ViewStore> store, ViewSpec spec,
               const std::map<int32_t, int64_t>& ends, ViewMetrics& view_metrics,
               const std::atomic<bool>* until = nullptr) {
  ViewEngineOptions options;
  options.kafka = {o.brokers, {}};
  options.topic = topic;
  options.group_id = "bench-" + topic + "-" + store->kind();
  options.flush_interval = std::chrono::milliseconds(100);
  options.max_batch_events = 50000;
  auto dead_letters = KafkaDeadLetters(std::move(Producer::Create(options.kafka).value()));
  options.dead_letters = dead_letters.get();
  options.dead_letter_topic = topic + "-dlq";
  ViewEngine engine(options, std::make_unique<DeclarativeProjection>(std::move(spec)), std::move(store),
                    view_metrics);
  std::atomic<bool> stop{false};
  auto started = SteadyClock::now();
  std::thread runner([&] { (void)engine.Run(stop); });
  while (until) {
    if (until->load()) {
      stop = true;
      runner.join();
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (;;) {
    auto offsets = engine.Snapshot().next_offsets;
    bool done = true;
    for (const auto& [p, end] : ends)
      if (end > 0 && (!offsets.count(p) || offsets[p] < end)) done = false;
    if (done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  double seconds = std::chrono::duration<double>(SteadyClock::now() - started).count();
  stop = true;
  runner.join();
  return o.events / seconds;
}

// The rows the latest-row view writes, one per event, as RowWrites.
std::vector<RowWrite> LatestRows(const Options& o) {
  std::mt19937 rng(1);
  std::vector<RowWrite> rows;
  rows.reserve(o.events);
  for (int i = 0; i < o.events; ++i) {
    Event e = bench::BenchEvent(rng, o.keys, i);
    rows.push_back({{e.data["eid"].get<std::string>()},
                    {e.data["store"].get<std::string>(), e.data["sku"].get<std::string>(),
                     std::to_string(e.data["qty"].get<int64_t>())}});
  }
  return rows;
}

// Raw RocksDB: the same rows (JSON values, as the view stores them) in
// WriteBatches of 50,000, default write options.
double RawRocksDb(const std::vector<RowWrite>& rows, const std::string& dir) {
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  if (!rocksdb::DB::Open(options, dir, &raw).ok()) return 0;
  std::unique_ptr<rocksdb::DB> db(raw);
  auto started = SteadyClock::now();
  for (size_t start = 0; start < rows.size(); start += 50000) {
    rocksdb::WriteBatch batch;
    for (size_t i = start; i < std::min(rows.size(), start + 50000); ++i) {
      nlohmann::json v = {{"store", *rows[i].values[0]},
                          {"sku", *rows[i].values[1]},
                          {"qty", std::stoll(*rows[i].values[2])}};
      batch.Put(rows[i].key[0], v.dump());
    }
    if (!db->Write(rocksdb::WriteOptions(), &batch).ok()) return 0;
  }
  double seconds = std::chrono::duration<double>(SteadyClock::now() - started).count();
  db.reset();
  std::filesystem::remove_all(dir);
  return rows.size() / seconds;
}

// Raw Postgres: COPY the same rows into a temporary staging table and one
// INSERT ... ON CONFLICT per 50,000 rows, one transaction each.
double RawCopyUpsert(const Options& o, const std::vector<RowWrite>& rows) {
  auto conn = ConnectPostgres(o.pg_url);
  if (!conn.ok()) return 0;
  {
    pqxx::nontransaction tx(**conn);
    tx.exec("DROP TABLE IF EXISTS public.bench_raw_upsert");
    tx.exec("CREATE TABLE public.bench_raw_upsert (eid text PRIMARY KEY, store text, sku text, qty bigint)");
    tx.exec("CREATE TEMP TABLE bench_raw_staging (LIKE public.bench_raw_upsert) ON COMMIT DELETE ROWS");
  }
  auto started = SteadyClock::now();
  std::vector<std::string> columns = {"eid", "store", "sku", "qty"};
  for (size_t start = 0; start < rows.size(); start += 50000) {
    pqxx::work tx(**conn);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    pqxx::tablewriter copy(tx, "bench_raw_staging", columns.begin(), columns.end());
    std::string line;
    for (size_t i = start; i < std::min(rows.size(), start + 50000); ++i) {
      line =
          rows[i].key[0] + '\t' + *rows[i].values[0] + '\t' + *rows[i].values[1] + '\t' + *rows[i].values[2];
      copy.write_raw_line(line);
    }
    copy.complete();
#pragma GCC diagnostic pop
    tx.exec(
        "INSERT INTO public.bench_raw_upsert AS t SELECT * FROM bench_raw_staging ON CONFLICT (eid) DO "
        "UPDATE SET "
        "store = excluded.store, sku = excluded.sku, qty = excluded.qty");
    tx.commit();
  }
  double seconds = std::chrono::duration<double>(SteadyClock::now() - started).count();
  pqxx::nontransaction(**conn).exec("DROP TABLE public.bench_raw_upsert");
  return rows.size() / seconds;
}

void DropPostgresView(const Options& o, const std::string& topic, const TableSpec& table) {
  auto conn = ConnectPostgres(o.pg_url);
  if (!conn.ok()) return;
  pqxx::nontransaction tx(**conn);
  tx.exec("DROP VIEW IF EXISTS " + tx.quote_name(table.view_name));
  tx.exec("DROP TABLE IF EXISTS " + tx.quote_name(table.table_name()));
  tx.exec_params("DELETE FROM freshet.views WHERE name = $1", table.view_name);
  tx.exec_params("DELETE FROM freshet.offsets WHERE topic = $1", topic);
}

struct ViewRun {
  double rocksdb_per_s = 0, postgres_per_s = 0;
};

ViewRun RunBothStores(const Options& o, const std::string& topic, const ViewSpec& spec,
                      const std::map<int32_t, int64_t>& ends, MetricsRegistry& metrics,
                      const std::string& label) {
  ViewRun run;
  DeclarativeProjection shape(spec);
  std::string dir = "/tmp/" + topic + "-" + spec.name + ".rocksdb";
  auto rocks = RocksDbStore::Open(dir, {});
  if (!rocks.ok()) {
    std::cerr << rocks.status().ToString() << "\n";
    return run;
  }
  ViewMetrics rocks_metrics(metrics, "view=\"" + spec.name + "\",store=\"rocksdb\"");
  run.rocksdb_per_s =
      RunView(o, topic, std::move(RocksDbViewStore::Open(**rocks, topic, shape.table()).value()), spec, ends,
              rocks_metrics);
  rocks->reset();
  std::filesystem::remove_all(dir);
  std::printf("%-28s -> RocksDB  : %9.0f events/s  (rebuild of %d events: %.2f s)\n", label.c_str(),
              run.rocksdb_per_s, o.events, o.events / run.rocksdb_per_s);
  auto sink = PostgresSink::Open(o.pg_url, topic, shape.table());
  if (!sink.ok()) {
    std::cerr << sink.status().ToString() << "\n";
    return run;
  }
  ViewMetrics pg_metrics(metrics, "view=\"" + spec.name + "\",store=\"postgres\"");
  run.postgres_per_s =
      RunView(o, topic, std::make_unique<PostgresViewStore>(std::move(sink.value()), shape.table()), spec,
              ends, pg_metrics);
  DropPostgresView(o, topic, shape.table());
  std::printf("%-28s -> Postgres : %9.0f events/s  (rebuild of %d events: %.2f s)\n", label.c_str(),
              run.postgres_per_s, o.events, o.events / run.postgres_per_s);
  return run;
}

// Engines for the aggregate view follow a topic while events arrive at
// `rate`/s; returns the event-to-visible histograms' p50/p99 bounds (ms).
nlohmann::json Freshness(const Options& o, const ViewSpec& spec, MetricsRegistry& metrics) {
  std::string topic =
      "bench-fresh-" + std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  bench::TopicsToDelete throwaway(o.brokers);
  throwaway.Add(topic);
  throwaway.Add(topic + "-dlq");
  (void)EnsureTopic({o.brokers, {}}, topic, o.partitions, 1, std::chrono::seconds(30));
  DeclarativeProjection shape(spec);
  std::string dir = "/tmp/" + topic + ".rocksdb";
  auto rocks = RocksDbStore::Open(dir, {});
  auto sink = PostgresSink::Open(o.pg_url, topic, shape.table());
  if (!rocks.ok() || !sink.ok()) return nullptr;
  ViewMetrics rocks_metrics(metrics, "view=\"fresh\",store=\"rocksdb\"");
  ViewMetrics pg_metrics(metrics, "view=\"fresh\",store=\"postgres\"");
  std::atomic<bool> done{false};
  std::thread rocks_engine([&] {
    RunView(o, topic, std::move(RocksDbViewStore::Open(**rocks, topic, shape.table()).value()), spec, {},
            rocks_metrics, &done);
  });
  std::thread pg_engine([&] {
    RunView(o, topic, std::make_unique<PostgresViewStore>(std::move(sink.value()), shape.table()), spec, {},
            pg_metrics, &done);
  });
  std::this_thread::sleep_for(std::chrono::seconds(3));  // let both join their groups before the load starts

  // Commit-to-visible, exactly: the event's own time is taken before its
  // Kafka transaction commits (~15-20 ms here), which event-to-visible
  // includes and no view can win back. Watchers poll each store's offsets
  // and time every tick from its commit to the moment both stores hold it,
  // and also from the moment its first event was made (its oldest event's
  // timestamp): event-to-visible, exactly, for the worst event of the tick.
  struct CommittedTick {
    SteadyClock::time_point produced;
    SteadyClock::time_point committed;
    std::map<int32_t, int64_t> last;  // last offset of the tick per partition
  };
  std::mutex ticks_mu;
  std::vector<CommittedTick> ticks;
  std::atomic<bool> watching{true};
  auto watch = [&](std::function<std::map<int32_t, int64_t>()> load, std::vector<int64_t>* micros,
                   std::vector<int64_t>* event_micros) {
    size_t next = 0;
    while (watching) {
      std::map<int32_t, int64_t> stored = load();
      auto now = SteadyClock::now();
      std::lock_guard lock(ticks_mu);
      for (; next < ticks.size(); ++next) {
        bool visible = true;
        for (const auto& [p, offset] : ticks[next].last) visible &= stored.count(p) && stored[p] > offset;
        if (!visible) break;
        micros->push_back(
            std::chrono::duration_cast<std::chrono::microseconds>(now - ticks[next].committed).count());
        event_micros->push_back(
            std::chrono::duration_cast<std::chrono::microseconds>(now - ticks[next].produced).count());
      }
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
  };
  const std::string table = shape.table().table_name();
  std::vector<int64_t> rocks_micros, pg_micros, rocks_event_micros, pg_event_micros;
  std::thread rocks_watch(
      watch,
      [&] {
        auto offsets = (*rocks)->LoadOffsets(table, topic);
        return offsets.ok() ? *offsets : std::map<int32_t, int64_t>{};
      },
      &rocks_micros, &rocks_event_micros);
  std::thread pg_watch([&] {
    pqxx::connection conn(o.pg_url);
    watch(
        [&] {
          std::map<int32_t, int64_t> out;
          pqxx::nontransaction tx(conn);
          for (const auto& r : tx.exec_params(
                   "SELECT partition, next_offset FROM freshet.offsets WHERE view_name = $1 AND topic = $2",
                   table, topic))
            out[r[0].as<int32_t>()] = r[1].as<int64_t>();
          return out;
        },
        &pg_micros, &pg_event_micros);
  });

  // Transactions as a writer makes them: every 10 ms, the events of that tick.
  auto producer = TransactionalProducer::Create({o.brokers, {}}, topic + "-tx");
  (void)(*producer)->InitTransactions(std::chrono::seconds(30));
  std::mt19937 rng(7);
  auto start = SteadyClock::now();
  int64_t sent = 0;
  std::vector<int64_t> commit_micros;
  for (int tick = 0; tick < o.freshness_seconds * 100; ++tick) {
    auto produced = SteadyClock::now();
    (void)(*producer)->Begin();
    std::vector<DeliveryReport> reports(static_cast<size_t>(o.rate) / 100 + 1);
    size_t n = 0;
    for (int64_t due = static_cast<int64_t>(o.rate) * (tick + 1) / 100; sent < due && n < reports.size();
         ++sent, ++n) {
      Event e = bench::BenchEvent(rng, o.keys, sent);
      std::string store = e.data["store"];
      (void)(*producer)->Produce(
          {topic, PartitionForKey(store, o.partitions), store, EncodeEventValue(e), {}}, &reports[n]);
    }
    auto begun = SteadyClock::now();
    Status committed = (*producer)->Commit(std::chrono::seconds(10));
    auto now = SteadyClock::now();
    commit_micros.push_back(std::chrono::duration_cast<std::chrono::microseconds>(now - begun).count());
    if (committed.ok() && n > 0) {
      CommittedTick t{produced, now, {}};
      for (size_t i = 0; i < n; ++i)
        t.last[reports[i].partition] = std::max(t.last[reports[i].partition], reports[i].offset);
      std::lock_guard lock(ticks_mu);
      ticks.push_back(std::move(t));
    }
    std::this_thread::sleep_until(start + std::chrono::milliseconds(10 * (tick + 1)));
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));  // the last flushes
  watching = false;
  rocks_watch.join();
  pg_watch.join();
  done = true;
  rocks_engine.join();
  pg_engine.join();
  bench::LatencySummary commit = bench::Summarize(commit_micros),
                        rocks_visible = bench::Summarize(rocks_micros),
                        pg_visible = bench::Summarize(pg_micros);
  std::printf(
      "freshness at %d events/s: Kafka transaction commit p50 %.1f ms, p99 %.1f ms; commit-to-visible "
      "(exact, "
      "%zu ticks) p50 %.1f ms, p99 %.1f ms in RocksDB; p50 %.1f ms, p99 %.1f ms in Postgres\n",
      o.rate, commit.p50_ms, commit.p99_ms, rocks_visible.count, rocks_visible.p50_ms, rocks_visible.p99_ms,
      pg_visible.p50_ms, pg_visible.p99_ms);
  bench::LatencySummary rocks_event = bench::Summarize(rocks_event_micros),
                        pg_event = bench::Summarize(pg_event_micros);
  std::printf(
      "freshness at %d events/s: event-to-visible (exact, each tick's oldest event) p50 %.1f ms, p99 %.1f ms "
      "in "
      "RocksDB; p50 %.1f ms, p99 %.1f ms in Postgres\n",
      o.rate, rocks_event.p50_ms, rocks_event.p99_ms, pg_event.p50_ms, pg_event.p99_ms);
  rocks->reset();
  std::filesystem::remove_all(dir);
  DropPostgresView(o, topic, shape.table());
  auto ms = [](const Histogram& h, double q) { return h.Quantile(q) * 1000; };
  std::printf(
      "freshness at %d events/s (default freshness: flush when caught up, at most every 100 ms): "
      "event-to-visible p50 <= %.0f ms, p99 <= %.0f ms in RocksDB; "
      "p50 <= %.0f ms, p99 <= %.0f ms in Postgres (histogram bucket bounds)\n",
      o.rate, ms(rocks_metrics.visible_seconds, 0.5), ms(rocks_metrics.visible_seconds, 0.99),
      ms(pg_metrics.visible_seconds, 0.5), ms(pg_metrics.visible_seconds, 0.99));
  return {{"rate", o.rate},
          {"kafka_commit", bench::ToJson(commit)},
          {"rocksdb_commit_to_visible", bench::ToJson(rocks_visible)},
          {"postgres_commit_to_visible", bench::ToJson(pg_visible)},
          {"rocksdb_event_to_visible", bench::ToJson(rocks_event)},
          {"postgres_event_to_visible", bench::ToJson(pg_event)},
          {"rocksdb",
           {{"p50_ms_at_most", ms(rocks_metrics.visible_seconds, 0.5)},
            {"p99_ms_at_most", ms(rocks_metrics.visible_seconds, 0.99)}}},
          {"postgres",
           {{"p50_ms_at_most", ms(pg_metrics.visible_seconds, 0.5)},
            {"p99_ms_at_most", ms(pg_metrics.visible_seconds, 0.99)}}}};
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"freshet views benchmark (needs scripts/services start)"};
  app.add_option("--events", o.events, "events in the topic (each view rebuilds from offset zero)")
      ->capture_default_str();
  app.add_option("--partitions", o.partitions)->capture_default_str();
  app.add_option("--keys", o.keys, "groups of the aggregate view")->capture_default_str();
  app.add_option("--rate", o.rate, "freshness: offered events/s")->capture_default_str();
  app.add_option("--freshness-seconds", o.freshness_seconds, "freshness: length of the load; 0 skips it")
      ->capture_default_str();
  app.add_option("--json", o.json_path, "Append results as JSON lines to this file");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  std::string topic =
      "bench-views-" + std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  bench::TopicsToDelete throwaway(o.brokers);
  throwaway.Add(topic);
  throwaway.Add(topic + "-dlq");
  if (Status st = EnsureTopic({o.brokers, {}}, topic, o.partitions, 1, std::chrono::seconds(30)); !st.ok()) {
    std::cerr << st.ToString() << "\n";
    return 1;
  }
  auto produced_at = SteadyClock::now();
  auto ends = ProduceEvents(o, topic);
  std::printf("produced %d events (~150 B) into %d partitions in %.1f s\n", o.events, o.partitions,
              std::chrono::duration<double>(SteadyClock::now() - produced_at).count());
  ViewSpec aggregate = bench::ParseBenchView(bench::kAggregateView);
  ViewSpec latest = bench::ParseBenchView(bench::kLatestView);
  MetricsRegistry metrics;

  double raw = bench::RawConsumeRate(o.brokers, topic, o.partitions);
  std::printf("raw read_committed consume   : %9.0f events/s\n", raw);
  std::vector<RowWrite> rows = LatestRows(o);
  double raw_rocks = RawRocksDb(rows, "/tmp/" + topic + "-raw.rocksdb");
  std::printf("raw RocksDB WriteBatch       : %9.0f rows/s (the latest-row view's rows)\n", raw_rocks);
  double raw_pg = RawCopyUpsert(o, rows);
  std::printf("raw COPY + upsert            : %9.0f rows/s (the latest-row view's rows)\n", raw_pg);
  rows.clear();
  rows.shrink_to_fit();

  ViewRun l = RunBothStores(o, topic, latest, ends, metrics, "latest-row view (unique keys)");
  ViewRun a = RunBothStores(o, topic, aggregate, ends, metrics,
                            "aggregate view (" + std::to_string(o.keys) + " keys)");
  std::printf(
      "ratios: latest->RocksDB %.0f%% of raw WriteBatch, latest->Postgres %.0f%% of raw COPY+upsert, "
      "aggregate->RocksDB %.0f%% and ->Postgres %.0f%% of raw consume\n",
      100 * l.rocksdb_per_s / raw_rocks, 100 * l.postgres_per_s / raw_pg, 100 * a.rocksdb_per_s / raw,
      100 * a.postgres_per_s / raw);
  nlohmann::json fresh = o.freshness_seconds > 0 ? Freshness(o, aggregate, metrics) : nlohmann::json();
  bench::AppendResult(
      o.json_path, {{"bench", "views"},
                    {"events", o.events},
                    {"keys", o.keys},
                    {"partitions", o.partitions},
                    {"raw_consume_per_s", raw},
                    {"raw_rocksdb_writebatch_per_s", raw_rocks},
                    {"raw_copy_upsert_per_s", raw_pg},
                    {"latest", {{"rocksdb_per_s", l.rocksdb_per_s}, {"postgres_per_s", l.postgres_per_s}}},
                    {"aggregate", {{"rocksdb_per_s", a.rocksdb_per_s}, {"postgres_per_s", a.postgres_per_s}}},
                    {"rebuild_seconds",
                     {{"latest_rocksdb", o.events / l.rocksdb_per_s},
                      {"latest_postgres", o.events / l.postgres_per_s},
                      {"aggregate_rocksdb", o.events / a.rocksdb_per_s},
                      {"aggregate_postgres", o.events / a.postgres_per_s}}},
                    {"freshness", fresh}});
  return 0;
}
