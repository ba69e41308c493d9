// View throughput on the local broker and Postgres: events/s of an
// aggregate view (sum and count per (store, sku), 10,000 keys) into RocksDB
// and into Postgres, exactly once, next to the raw baseline measured in the
// same run: librdkafka read_committed consumption of the same topic.
//
//   build/bench/views_bench --events 1000000
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <set>
#include <iostream>
#include <random>
#include <thread>

#include "bench/bench_util.h"
#include "core/envelope.h"
#include "core/kafka.h"
#include "core/postgres.h"
#include "views/declarative_projection.h"
#include "views/rocksdb_view_store.h"
#include "views/view_engine.h"

using namespace freshet;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string brokers = std::getenv("FRESHET_KAFKA_BROKERS") ? std::getenv("FRESHET_KAFKA_BROKERS") : "127.0.0.1:19092";
  std::string pg_url = std::getenv("FRESHET_PG_URL") ? std::getenv("FRESHET_PG_URL")
                                                       : "postgresql://freshet@127.0.0.1:15432/freshet";
  int events = 300000;
  int partitions = 4;
  int keys = 10000;
  std::string json_path;
};

const char* kAggregate = R"([{"name": "bench_stock", "kind": "aggregate",
  "group_by": {"store": "/store", "sku": "/sku"},
  "aggregates": {"units": {"fn": "sum", "from": "/qty", "type": "bigint"}, "events": {"fn": "count"}}}])";

std::map<int32_t, int64_t> ProduceEvents(const Options& o, const std::string& topic) {
  auto producer = Producer::Create({o.brokers, {}});
  std::mt19937 rng(1);
  for (int i = 0; i < o.events; ++i) {
    int key = static_cast<int>(rng() % o.keys);
    std::string store = "store-" + std::to_string(key % 100);
    Event e{"StockSold", "", NowMillis(),
            {{"store", store}, {"sku", "sku-" + std::to_string(key / 100)}, {"qty", 1 + rng() % 5}, {"note", "bench"}}};
    (void)(*producer)->Produce({topic, PartitionForKey(store, o.partitions), store, EncodeEventValue(e), {}});
  }
  (void)(*producer)->Flush(std::chrono::seconds(60));
  auto consumer = Consumer::Create({o.brokers, {}}, "");
  std::map<int32_t, int64_t> ends;
  for (int p = 0; p < o.partitions; ++p) ends[p] = (*consumer)->QueryWatermarks(topic, p, std::chrono::seconds(10))->second;
  return ends;
}

double RawConsume(const Options& o, const std::string& topic) {
  auto consumer = Consumer::Create({o.brokers, {}}, "");
  std::vector<TopicPartitionOffset> all;
  for (int p = 0; p < o.partitions; ++p) all.push_back({topic, p, kOffsetBeginning});
  (void)(*consumer)->Assign(all);
  auto started = Clock::now();
  std::set<int32_t> ended;
  int64_t n = 0;
  while (static_cast<int>(ended.size()) < o.partitions) {
    KafkaMessage m;
    int32_t eof = -1;
    auto r = (*consumer)->Poll(std::chrono::milliseconds(100), &m, &eof);
    if (!r.ok()) continue;
    if (*r == Consumer::PollOutcome::kMessage) ++n;
    if (*r == Consumer::PollOutcome::kPartitionEnd) ended.insert(eof);
  }
  return n / std::chrono::duration<double>(Clock::now() - started).count();
}

// Runs an engine until its stored offsets reach `ends`; returns events/s.
double RunView(const Options& o, const std::string& topic, std::unique_ptr<ViewStore> store, ViewSpec spec,
               const std::map<int32_t, int64_t>& ends, MetricsRegistry& metrics) {
  ViewEngineOptions options;
  options.kafka = {o.brokers, {}};
  options.topic = topic;
  options.group_id = "bench-" + topic + "-" + store->kind();
  options.flush_interval = std::chrono::milliseconds(100);
  options.max_batch_events = 50000;
  auto producer = Producer::Create(options.kafka);
  options.dead_letters = producer->get();
  options.dead_letter_topic = topic + "-dlq";
  ViewMetrics view_metrics(metrics, std::string("view=\"bench\",store=\"") + store->kind() + "\"");
  ViewEngine engine(options, std::make_unique<DeclarativeProjection>(std::move(spec)), std::move(store), view_metrics);
  std::atomic<bool> stop{false};
  auto started = Clock::now();
  std::thread runner([&] { (void)engine.Run(stop); });
  for (;;) {
    auto offsets = engine.Snapshot().next_offsets;
    bool done = true;
    for (const auto& [p, end] : ends)
      if (end > 0 && (!offsets.count(p) || offsets[p] < end)) done = false;
    if (done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  stop = true;
  runner.join();
  return o.events / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"freshet views benchmark (needs scripts/services start)"};
  app.add_option("--events", o.events)->capture_default_str();
  app.add_option("--partitions", o.partitions)->capture_default_str();
  app.add_option("--keys", o.keys)->capture_default_str();
  app.add_option("--json", o.json_path, "Append results as JSON lines to this file");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  std::string topic = "bench-views-" + std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  if (Status st = EnsureTopic({o.brokers, {}}, topic, o.partitions, 1, std::chrono::seconds(30)); !st.ok()) {
    std::cerr << st.ToString() << "\n";
    return 1;
  }
  auto produced_at = Clock::now();
  auto ends = ProduceEvents(o, topic);
  std::printf("produced %d events (~140 B) into %d partitions in %.1f s\n", o.events, o.partitions,
              std::chrono::duration<double>(Clock::now() - produced_at).count());
  auto spec = ParseViewSpecs(nlohmann::ordered_json::parse(kAggregate), "bench")->front();
  MetricsRegistry metrics;

  double raw = RawConsume(o, topic);
  std::printf("raw read_committed consume : %9.0f events/s\n", raw);

  std::string dir = "/tmp/" + topic + ".rocksdb";
  auto rocks = RocksDbStore::Open(dir, {});
  if (!rocks.ok()) {
    std::cerr << rocks.status().ToString() << "\n";
    return 1;
  }
  DeclarativeProjection shape(spec);
  auto rocks_store = RocksDbViewStore::Open(**rocks, topic, shape.table());
  double into_rocks = RunView(o, topic, std::move(rocks_store.value()), spec, ends, metrics);
  std::printf("aggregate view -> RocksDB  : %9.0f events/s  (%.0f%% of raw)\n", into_rocks, 100 * into_rocks / raw);
  rocks->reset();
  std::filesystem::remove_all(dir);

  auto sink = PostgresSink::Open(o.pg_url, topic, shape.table());
  if (!sink.ok()) {
    std::cerr << sink.status().ToString() << "\n";
    return 1;
  }
  double into_pg = RunView(o, topic, std::make_unique<PostgresViewStore>(std::move(sink.value()), shape.table()), spec, ends, metrics);
  std::printf("aggregate view -> Postgres : %9.0f events/s  (%.0f%% of raw)\n", into_pg, 100 * into_pg / raw);
  {
    auto conn = ConnectPostgres(o.pg_url);
    pqxx::nontransaction tx(**conn);
    tx.exec("DROP VIEW IF EXISTS bench_stock");
    tx.exec("DROP TABLE IF EXISTS " + tx.quote_name(shape.table().table_name()));
    tx.exec("DELETE FROM freshet.views WHERE name = 'bench_stock'");
    tx.exec_params("DELETE FROM freshet.offsets WHERE topic = $1", topic);
  }
  bench::AppendResult(o.json_path, {{"stage", "views_aggregate"}, {"events", o.events}, {"keys", o.keys},
                                    {"raw_consume_per_s", raw}, {"rocksdb_per_s", into_rocks}, {"postgres_per_s", into_pg}});
  return 0;
}
