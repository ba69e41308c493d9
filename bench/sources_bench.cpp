// Views over other services' topics, next to the same view kinds over
// freshet's own envelope, on the local broker and Postgres, exactly once,
// all in one run:
//
//   (a) freshet envelope events {type, id, ts, data} (EncodeEventValue),
//       produced as views_bench does (idempotent, not transactional);
//   (b) plain JSON keyed by order id, an upsert table: ~1 record in 50 a
//       tombstone (null value);
//   (c) plain JSON append events (the same fields);
//   (d) Debezium change events as Kafka Connect's JSON converter writes them
//       with schemas.enable=false: {"before", "after", "source", "op",
//       "ts_ms"}, the key {"id": ...}; op c for a new id, u for a known one,
//       ~1 in 50 a delete (op d, `before` with the key only) followed by its
//       tombstone. `amount` is a decimal string, as Debezium writes a
//       NUMERIC column with decimal.handling.mode=string (no schema, so no
//       base64 Decimal).
//
//   (e) Avro in the Confluent wire format (magic byte, schema id, binary
//       datum), keyed by order id, an upsert table with tombstones like
//       (b): `amount` an Avro decimal (bytes, scale 2);
//   (f) Protobuf in the Confluent wire format (message index [0]), append
//       events like (c): `amount` a double.
//   Their schemas are preloaded into the process's registry client (the
//   views fetch nothing: one fetch per id is not what is measured); the
//   records are encoded here by hand, as the formats' specs say.
//
// (b)-(f) stand for other services: they are produced with librdkafka
// directly (idempotent, not transactional): freshet's Producer cannot send
// a null value (an empty std::string goes out as an empty value).
// Every topic holds exactly --events records (tombstones included).
//
// Measured, each from offset zero until the store's offsets reach the end:
//   - raw read_committed consumption of each topic;
//   - a latest view (--keys order ids) over (a), (b) and (d);
//   - an aggregate (sum and count per customer, --groups groups) over (a)
//     and (c);
// each into RocksDB and into Postgres. The headline is each source's ratio
// to the same view kind and store over the freshet envelope in this run
// (Avro and Protobuf also to the same view over JSON: (b) and (c));
// with --rounds N every view runs N times (sources alternating) and the
// medians are compared. After each Postgres run the table is checked (live
// ids of a latest view, records counted by an aggregate).
//
//   build/bench/sources_bench --events 1000000 --rounds 3
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>
#include <pqxx/pqxx>
#include <random>
#include <set>
#include <thread>

#include "bench/bench_util.h"
#include "core/envelope.h"
#include "core/kafka.h"
#include "core/postgres.h"
#include "sinks/postgres_sink.h"
#include "sources/decoded_records.h"
#include "sources/record_decoder.h"
#include "sources/schema_registry.h"
#include "sources/wire_format.h"
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
  int keys = 100000;   // order ids: the latest views' rows
  int groups = 10000;  // customers: the aggregates' groups
  int rounds = 1;
  std::string json_path;
  bool decode_only = false;
  int live_events = 200000;  // the two-view live run's records
  int live_rate = 50000;     // and their rate
  bool two_views_only = false;
};

enum Source { kFreshet, kUpsert, kAppend, kDebezium, kAvro, kProtobuf, kSourceCount };
const char* kSourceName[] = {"freshet", "upsert", "append", "debezium", "avro", "protobuf"};
const char* kSourceLabel[] = {"freshet envelope", "JSON upsert", "JSON append",
                              "Debezium JSON",    "Avro upsert", "Protobuf append"};
// The same view over JSON, which the registry formats are compared with.
Source JsonTwin(Source s) { return s == kAvro ? kUpsert : s == kProtobuf ? kAppend : s; }

// The registry the Avro and Protobuf views name; never asked (preloaded).
const char* kRegistryUrl = "http://127.0.0.1:9/bench";
constexpr int32_t kAvroSchemaId = 1, kProtobufSchemaId = 2;
const char* kAvroSchema = R"({"type": "record", "name": "Order", "namespace": "shop", "fields": [
  {"name": "id", "type": "string"}, {"name": "customer", "type": "string"},
  {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
  {"name": "qty", "type": "long"}, {"name": "status", "type": "string"}, {"name": "channel", "type": "string"},
  {"name": "type", "type": "string"}, {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}}]})";
const char* kProtobufSchema = R"(syntax = "proto3";
package shop;
message Order {
  string id = 1; string customer = 2; double amount = 3; int64 qty = 4; string status = 5; string channel = 6;
  string type = 7; int64 ts = 8;
})";

struct Topic {
  std::string name;
  std::map<int32_t, int64_t> ends;  // high watermark per partition
  int64_t records = 0, tombstones = 0, value_bytes = 0;
  int64_t live_rows = 0;  // rows a latest view over the topic ends with (a check)
  double raw_per_s = 0;
  double mean_value_bytes() const {
    return records > tombstones ? static_cast<double>(value_bytes) / static_cast<double>(records - tombstones)
                                : 0;
  }
};

// ---- the records -------------------------------------------------------------

struct Order {
  std::string id, customer, amount, status, channel;
  int64_t qty = 0;
};

Order NextOrder(std::mt19937& rng, const Options& o) {
  static const char* kStatus[] = {"placed", "paid", "shipped", "delivered"};
  Order order;
  order.id = "o" + std::to_string(rng() % static_cast<uint32_t>(o.keys));
  order.customer = "c" + std::to_string(rng() % static_cast<uint32_t>(o.groups));
  uint32_t cents = 100 + rng() % 99900;
  char amount[32];
  std::snprintf(amount, sizeof(amount), "%u.%02u", cents / 100, cents % 100);
  order.amount = amount;
  order.qty = 1 + rng() % 5;
  order.status = kStatus[rng() % 4];
  order.channel = rng() % 3 ? "web" : "app";
  return order;
}

// The order's fields as JSON members (no braces); `amount` a number, or a
// decimal string (Debezium's decimal.handling.mode=string).
std::string Fields(const Order& order, bool amount_as_string) {
  std::string out = R"("id":")" + order.id + R"(","customer":")" + order.customer + R"(","amount":)";
  out += amount_as_string ? "\"" + order.amount + "\"" : order.amount;
  out += R"(,"qty":)" + std::to_string(order.qty) + R"(,"status":")" + order.status + R"(","channel":")" +
         order.channel + "\"";
  return out;
}

// Varints as Avro (zigzag) and Protobuf (plain) write them.
void Varint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}
void AvroLong(int64_t v, std::string* out) {
  Varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63), out);
}
void AvroString(const std::string& v, std::string* out) {
  AvroLong(static_cast<int64_t>(v.size()), out);
  out->append(v);
}

// Cents as an Avro decimal: the unscaled value, big-endian two's complement.
std::string AvroDecimal(int64_t cents) {
  std::string bytes;
  for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<char>((cents >> shift) & 0xff));
  return bytes;
}

int64_t Cents(const Order& order) {
  auto dot = order.amount.find('.');
  return std::stoll(order.amount.substr(0, dot)) * 100 + std::stoll(order.amount.substr(dot + 1));
}

std::string AvroOrder(const Order& order, int64_t ts) {
  std::string out = WireHeader(kAvroSchemaId, nullptr);
  AvroString(order.id, &out);
  AvroString(order.customer, &out);
  AvroString(AvroDecimal(Cents(order)), &out);
  AvroLong(order.qty, &out);
  AvroString(order.status, &out);
  AvroString(order.channel, &out);
  AvroString("OrderPlaced", &out);
  AvroLong(ts, &out);
  return out;
}

std::string ProtobufOrder(const Order& order, int64_t ts) {
  static const std::vector<int32_t> kFirst = {0};
  std::string out = WireHeader(kProtobufSchemaId, &kFirst);
  auto text = [&](int field, const std::string& v) {
    Varint(static_cast<uint64_t>(field) << 3 | 2, &out);
    Varint(v.size(), &out);
    out.append(v);
  };
  text(1, order.id);
  text(2, order.customer);
  double amount = std::stod(order.amount);
  char bytes[8];
  std::memcpy(bytes, &amount, 8);  // little-endian, as Protobuf's fixed64
  Varint(3 << 3 | 1, &out);
  out.append(bytes, 8);
  Varint(4 << 3, &out);
  Varint(static_cast<uint64_t>(order.qty), &out);
  text(5, order.status);
  text(6, order.channel);
  text(7, "OrderPlaced");
  Varint(8 << 3, &out);
  Varint(static_cast<uint64_t>(ts), &out);
  return out;
}

// An idempotent producer that is not freshet's: librdkafka as another
// service would use it, with null values (tombstones).
class OtherServiceProducer {
 public:
  explicit OtherServiceProducer(const std::string& brokers) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    for (auto [k, v] : {std::pair{"bootstrap.servers", brokers.c_str()},
                        {"enable.idempotence", "true"},
                        {"acks", "all"},
                        {"linger.ms", "5"}})
      if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK) throw std::runtime_error(err);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk_) throw std::runtime_error(err);
  }
  ~OtherServiceProducer() { rd_kafka_destroy(rk_); }
  // `value` nullptr: a tombstone.
  void Produce(const std::string& topic, int32_t partition, const std::string& key,
               const std::string* value) {
    for (;;) {
      rd_kafka_resp_err_t err = rd_kafka_producev(
          rk_, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key.data(), key.size()),
          RD_KAFKA_V_VALUE(value ? const_cast<char*>(value->data()) : nullptr, value ? value->size() : 0),
          RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) throw std::runtime_error(rd_kafka_err2str(err));
      rd_kafka_poll(rk_, 10);
    }
    rd_kafka_poll(rk_, 0);
  }
  void Flush() {
    if (rd_kafka_flush(rk_, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) throw std::runtime_error("flush timed out");
  }

 private:
  rd_kafka_t* rk_ = nullptr;
};

void ProduceAll(const Options& o, Topic* topics) {
  std::mt19937 rng(1);
  int64_t now = NowMillis();
  std::vector<uint8_t> live(static_cast<size_t>(o.keys));
  auto id_number = [](const Order& order) { return static_cast<size_t>(std::stoll(order.id.substr(1))); };
  auto count_live = [&] {
    int64_t n = std::count(live.begin(), live.end(), 1);
    std::fill(live.begin(), live.end(), 0);
    return n;
  };
  // (a) freshet's envelope, through freshet's own producer (as views_bench).
  {
    auto producer = Producer::Create({o.brokers, {}});
    Topic& t = topics[kFreshet];
    for (int i = 0; i < o.events; ++i) {
      Order order = NextOrder(rng, o);
      live[id_number(order)] = 1;
      Event e{"OrderPlaced",
              "",
              now + i / 1000,
              {{"id", order.id},
               {"customer", order.customer},
               {"amount", std::stod(order.amount)},
               {"qty", order.qty},
               {"status", order.status},
               {"channel", order.channel}}};
      std::string value = EncodeEventValue(e);
      t.value_bytes += static_cast<int64_t>(value.size());
      (void)(*producer)->Produce(
          {t.name, PartitionForKey(order.id, o.partitions), order.id, std::move(value), {}});
    }
    (void)(*producer)->Flush(std::chrono::seconds(60));
    t.records = o.events;
    t.live_rows = count_live();
  }
  OtherServiceProducer producer(o.brokers);
  // (b) an upsert table keyed by order id; ~1 in 50 a tombstone.
  {
    Topic& t = topics[kUpsert];
    for (int i = 0; i < o.events; ++i) {
      Order order = NextOrder(rng, o);
      live[id_number(order)] = rng() % 50 != 0;
      if (!live[id_number(order)]) {
        producer.Produce(t.name, PartitionForKey(order.id, o.partitions), order.id, nullptr);
        ++t.tombstones;
        continue;
      }
      std::string value = "{" + Fields(order, false) + R"(,"type":"OrderPlaced","ts":)" +
                          std::to_string(now + i / 1000) + "}";
      t.value_bytes += static_cast<int64_t>(value.size());
      producer.Produce(t.name, PartitionForKey(order.id, o.partitions), order.id, &value);
    }
    t.records = o.events;
    t.live_rows = count_live();
  }
  // (c) append events keyed by customer.
  {
    Topic& t = topics[kAppend];
    for (int i = 0; i < o.events; ++i) {
      Order order = NextOrder(rng, o);
      std::string value = "{" + Fields(order, false) + R"(,"type":"OrderPlaced","ts":)" +
                          std::to_string(now + i / 1000) + "}";
      t.value_bytes += static_cast<int64_t>(value.size());
      producer.Produce(t.name, PartitionForKey(order.customer, o.partitions), order.customer, &value);
    }
    t.records = o.events;
  }
  // (d) Debezium change events of a table `orders` (schemas.enable=false).
  {
    Topic& t = topics[kDebezium];
    std::vector<uint8_t> exists(static_cast<size_t>(o.keys));
    int64_t lsn = 24000000;
    for (int i = 0; i < o.events; ++i) {
      Order order = NextOrder(rng, o);
      size_t n = id_number(order);
      std::string key = R"({"id":")" + order.id + "\"}";
      int32_t partition = PartitionForKey(key, o.partitions);
      int64_t ts = now + i / 1000;
      lsn += 80;
      // A trimmed `source` block (Debezium's has ~15 fields): ~250 B a record.
      std::string source = R"({"connector":"postgresql","ts_ms":)" + std::to_string(ts) +
                           R"(,"db":"shop","table":"orders","lsn":)" + std::to_string(lsn) + "}";
      std::string value;
      bool remove = rng() % 50 == 0 && exists[n] && i + 1 < o.events;
      if (remove) {
        // REPLICA IDENTITY DEFAULT: `before` holds the key columns only.
        value = R"({"before":{"id":")" + order.id +
                R"(","customer":null,"amount":null,"qty":null,"status":null,"channel":null},)" +
                R"("after":null,"source":)" + source + R"(,"op":"d","ts_ms":)" + std::to_string(ts + 3) + "}";
        exists[n] = 0;
      } else {
        value = R"({"before":null,"after":{)" + Fields(order, true) + R"(},"source":)" + source +
                R"(,"op":")" + (exists[n] ? "u" : "c") + R"(","ts_ms":)" + std::to_string(ts + 3) + "}";
        exists[n] = 1;
      }
      t.value_bytes += static_cast<int64_t>(value.size());
      producer.Produce(t.name, partition, key, &value);
      if (remove) {
        producer.Produce(t.name, partition, key, nullptr);
        ++t.tombstones;
        ++i;
      }
    }
    t.records = o.events;
    t.live_rows = std::count(exists.begin(), exists.end(), 1);
  }
  // (e) Avro, an upsert table as (b).
  {
    Topic& t = topics[kAvro];
    for (int i = 0; i < o.events; ++i) {
      Order order = NextOrder(rng, o);
      live[id_number(order)] = rng() % 50 != 0;
      if (!live[id_number(order)]) {
        producer.Produce(t.name, PartitionForKey(order.id, o.partitions), order.id, nullptr);
        ++t.tombstones;
        continue;
      }
      std::string value = AvroOrder(order, now + i / 1000);
      t.value_bytes += static_cast<int64_t>(value.size());
      producer.Produce(t.name, PartitionForKey(order.id, o.partitions), order.id, &value);
    }
    t.records = o.events;
    t.live_rows = count_live();
  }
  // (f) Protobuf append events, as (c).
  {
    Topic& t = topics[kProtobuf];
    for (int i = 0; i < o.events; ++i) {
      Order order = NextOrder(rng, o);
      std::string value = ProtobufOrder(order, now + i / 1000);
      t.value_bytes += static_cast<int64_t>(value.size());
      producer.Produce(t.name, PartitionForKey(order.customer, o.partitions), order.customer, &value);
    }
    t.records = o.events;
  }
  producer.Flush();
  for (int s = 0; s < kSourceCount; ++s)
    topics[s].ends = bench::HighWatermarks(o.brokers, topics[s].name, o.partitions);
}

// ---- measuring -----------------------------------------------------------------

// As views_bench: read_committed, assigned (no group), until every partition
// ends; but from offset 0 rather than kOffsetBeginning, whose ListOffsets
// lookup sometimes waits a fixed 500 ms (see RunView).
double RawConsume(const Options& o, const std::string& topic, int64_t records) {
  int64_t n = 0;
  double per_s = bench::RawConsumeRate(o.brokers, topic, o.partitions, &n);
  if (n != records)
    std::fprintf(stderr, "raw consume of %s read %lld records, expected %lld\n", topic.c_str(),
                 static_cast<long long>(n), static_cast<long long>(records));
  return per_s;
}

struct Timing {
  double per_s = 0;      // records / total_s
  double startup_s = 0;  // engine start to its first applied record (group join, assignment, first fetch)
  double total_s = 0;    // engine start to caught up: the rebuild time
  double cpu_us = 0;     // this process's CPU (user + system) per record: engine, librdkafka, store client
  std::vector<double> each_s;  // engine start to caught up, per view (RunViews)
};

double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return s(u.ru_utime) + s(u.ru_stime);
}

// Runs an engine (as `freshet views` sets one up for the spec's source)
// until its stored offsets reach the topic's end.
//
// The store is given offset 0 of every partition first, as a view that has
// stored nothing yet but knows where to start. Without it the engine starts
// at "offset BEGINNING", which librdkafka 2.0.2 resolves with a ListOffsets
// request; when a partition has not joined its broker thread yet ("no
// current leader for partition") it retries after a fixed 500 ms. That hit
// about half the runs, whatever the source (0.02 s or 0.52 s before the
// first record), and swamped the differences this benchmark looks for.
// One engine of RunViews.
struct ViewRun {
  std::unique_ptr<ViewStore> store;
  ViewSpec spec;
  ViewMetrics* metrics;
};

// Runs engines over `topic` side by side, each on a thread of its own, as
// `freshet views` runs the views of one process, until every one's stored
// offsets reach the topic's end; the timing covers them all.
// `while_running`, when given, runs on a thread of its own once the
// engines have started (a producer of live records), and is joined.
Timing RunViews(const Options& o, const Topic& topic, std::vector<ViewRun> runs,
                const std::function<void()>& while_running = nullptr) {
  std::vector<std::unique_ptr<ViewEngine>> engines;
  std::vector<std::unique_ptr<DeadLetterSink>> producers;
  for (ViewRun& run : runs) {
    ViewEngineOptions options;
    options.kafka = {o.brokers, {}};
    options.topic = topic.name;
    options.source = run.spec.source;
    options.parse_key = ReadsKeyJson(run.spec);
    options.group_id = "bench-" + topic.name + "-" + run.spec.name + "-" + run.store->kind();
    options.flush_interval = std::chrono::milliseconds(run.spec.flush_interval_ms);
    options.max_batch_events = 50000;
    producers.push_back(KafkaDeadLetters(std::move(Producer::Create(options.kafka).value())));
    options.dead_letters = producers.back().get();
    options.dead_letter_topic = topic.name + "-dlq";
    std::vector<OffsetAdvance> from_zero;
    for (const auto& [p, end] : topic.ends) from_zero.push_back({p, -1, 0});
    if (Status st = run.store->Write({}, from_zero); !st.ok())
      std::cerr << "storing offset 0: " << st.ToString() << "\n";
    engines.push_back(std::make_unique<ViewEngine>(options, std::make_unique<DeclarativeProjection>(run.spec),
                                                   std::move(run.store), *run.metrics));
  }
  std::atomic<bool> stop{false};
  auto started = SteadyClock::now();
  double cpu_started = ProcessCpuSeconds();
  std::vector<std::thread> runners;
  for (auto& engine : engines) runners.emplace_back([&stop, e = engine.get()] { (void)e->Run(stop); });
  std::thread live;
  if (while_running) live = std::thread(while_running);
  std::optional<SteadyClock::time_point> first;
  std::vector<std::optional<SteadyClock::time_point>> each_done(engines.size());
  for (;;) {
    bool done = true;
    for (size_t i = 0; i < engines.size(); ++i) {
      if (!first && runs[i].metrics->events.value() + runs[i].metrics->dead_letters.value() > 0)
        first = SteadyClock::now();
      auto offsets = engines[i]->Snapshot().next_offsets;
      bool this_done = true;
      for (const auto& [p, end] : topic.ends)
        if (end > 0 && (!offsets.count(p) || offsets[p] < end)) this_done = false;
      if (this_done && !each_done[i]) each_done[i] = SteadyClock::now();
      done = done && this_done;
    }
    if (done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  auto caught_up = SteadyClock::now();
  if (!first) first = caught_up;
  Timing t;
  t.cpu_us = (ProcessCpuSeconds() - cpu_started) * 1e6 / static_cast<double>(topic.records);
  t.total_s = std::chrono::duration<double>(caught_up - started).count();
  t.startup_s = std::chrono::duration<double>(*first - started).count();
  t.per_s = static_cast<double>(topic.records) / t.total_s;
  for (const auto& done : each_done)
    t.each_s.push_back(std::chrono::duration<double>(*done - started).count());
  stop = true;
  for (auto& runner : runners) runner.join();
  if (live.joinable()) live.join();
  for (const ViewRun& run : runs)
    if (uint64_t dead = run.metrics->dead_letters.value(); dead > 0)
      std::fprintf(stderr, "view %s over %s: %llu records dead-lettered\n", run.spec.name.c_str(),
                   topic.name.c_str(), static_cast<unsigned long long>(dead));
  return t;
}

Timing RunView(const Options& o, const Topic& topic, std::unique_ptr<ViewStore> store, const ViewSpec& spec,
               ViewMetrics& view_metrics) {
  std::vector<ViewRun> runs;
  runs.push_back({std::move(store), spec, &view_metrics});
  return RunViews(o, topic, std::move(runs));
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

// One view run into `store` ("rocksdb" or "postgres"), from offset zero on a
// fresh table (all zero if the store would not open).
Timing RunOnce(const Options& o, const Topic& topic, const ViewSpec& spec, const std::string& store,
               MetricsRegistry& metrics, int round) {
  DeclarativeProjection shape(spec);
  ViewMetrics view_metrics(
      metrics, "view=\"" + spec.name + "\",store=\"" + store + "\",round=\"" + std::to_string(round) + "\"");
  if (store == "rocksdb") {
    std::string dir = "/tmp/" + topic.name + "-" + spec.name + ".rocksdb";
    auto rocks = RocksDbStore::Open(dir, {});
    if (!rocks.ok()) {
      std::cerr << rocks.status().ToString() << "\n";
      return {};
    }
    Timing t =
        RunView(o, topic, std::move(RocksDbViewStore::Open(**rocks, topic.name, shape.table()).value()), spec,
                view_metrics);
    rocks->reset();
    std::filesystem::remove_all(dir);
    return t;
  }
  auto sink = PostgresSink::Open(o.pg_url, topic.name, shape.table());
  if (!sink.ok()) {
    std::cerr << sink.status().ToString() << "\n";
    return {};
  }
  Timing t = RunView(o, topic, std::make_unique<PostgresViewStore>(std::move(sink.value()), shape.table()),
                     spec, view_metrics);
  // A check that the view did its work: a latest view holds the live rows,
  // an aggregate counted every record.
  try {
    pqxx::connection conn(o.pg_url);
    pqxx::nontransaction tx(conn);
    bool latest = spec.kind == ViewKind::kLatest;
    int64_t expected = latest ? topic.live_rows : topic.records;
    auto got = tx.exec1(std::string(latest ? "SELECT count(*)" : "SELECT sum(orders)") + " FROM " +
                        tx.quote_name(shape.table().table_name()))[0]
                   .as<int64_t>();
    if (got != expected)
      std::fprintf(stderr, "view %s over %s: %lld %s in Postgres, expected %lld\n", spec.name.c_str(),
                   topic.name.c_str(), static_cast<long long>(got), latest ? "rows" : "records counted",
                   static_cast<long long>(expected));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "checking view %s: %s\n", spec.name.c_str(), e.what());
  }
  DropPostgresView(o, topic.name, shape.table());
  return t;
}

// The views. The latest view's columns are the same over every source; only
// the source and where the row's identity comes from differ.
std::string LatestView(Source s, const std::string& topic) {
  std::string source, key = R"({"id": "/id"})";
  if (s == kUpsert || s == kAvro) {
    source = R"("source": {"topic": ")" + topic + R"(", "format": ")" + (s == kAvro ? "avro" : "json") +
             R"(", "envelope": "upsert", "schema_registry": {"url": ")" + kRegistryUrl + R"("}},)";
    key = R"({"id": "$key"})";  // an upsert table's identity is the Kafka key
  } else if (s == kDebezium) {
    source = R"("source": {"topic": ")" + topic + R"(", "format": "json", "envelope": "debezium"},)";
  }
  return std::string(R"({"name": "src_latest_)") + kSourceName[s] + R"(", "kind": "latest", )" + source +
         R"( "key": )" + key +
         R"(, "columns": {"customer": {"from": "/customer"}, "amount": {"from": "/amount", "type": "numeric"},
                          "qty": {"from": "/qty", "type": "bigint"}, "status": {"from": "/status"}}})";
}

std::string AggregateView(Source s, const std::string& topic) {
  std::string source;
  if (s == kAppend || s == kProtobuf)
    source = R"("source": {"topic": ")" + topic + R"(", "format": ")" +
             (s == kProtobuf ? "protobuf" : "json") +
             R"(", "envelope": "append", "schema_registry": {"url": ")" + kRegistryUrl + R"("}},)";
  return std::string(R"({"name": "src_agg_)") + kSourceName[s] + R"(", "kind": "aggregate", )" + source +
         R"( "group_by": {"customer": "/customer"},
             "aggregates": {"amount": {"fn": "sum", "from": "/amount"}, "units": {"fn": "sum", "from": "/qty", "type": "bigint"},
                            "orders": {"fn": "count"}}})";
}

ViewSpec ParseView(const std::string& definition) {
  auto specs = ParseViewSpecs(nlohmann::ordered_json::parse("[" + definition + "]"), "bench");
  if (!specs.ok()) {
    std::cerr << specs.status().ToString() << "\n";
    std::exit(1);
  }
  return specs->front();
}

// Two latest views over the Avro topic `topic` in this process, side by
// side: the first into RocksDB, the second into `second_store` ("rocksdb"
// or "postgres": a slower store, so the views would drift apart);
// `while_running` as RunViews. Reports how many records were decoded, how
// many taken from the other view's decode, and how often the view ahead
// waited for the one behind (DecodedRecords's pacing).
nlohmann::json TwoAvroViews(const Options& o, const Topic& topic, MetricsRegistry& metrics,
                            const std::string& what, const std::string& second_store,
                            const std::function<void()>& while_running) {
  ViewSpec a = ParseView(LatestView(kAvro, topic.name)), b = a;
  a.name += "_a";
  b.name += "_b";
  std::shared_ptr<DecodedRecords> shared = DecodedRecords::For(a.source);  // kept for its counts
  uint64_t decoded_before = shared->decoded(), reused_before = shared->reused(),
           waits_before = shared->waits();
  std::vector<std::string> dirs;
  std::vector<std::unique_ptr<RocksDbStore>> dbs;
  std::vector<std::unique_ptr<ViewMetrics>> view_metrics;
  std::vector<ViewRun> runs;
  for (const ViewSpec* spec : {&a, &b}) {
    std::string store = spec == &b ? second_store : "rocksdb";
    DeclarativeProjection shape(*spec);
    view_metrics.push_back(std::make_unique<ViewMetrics>(
        metrics, "view=\"" + spec->name + "\",store=\"" + store + "\",what=\"" + what + "\""));
    if (store == "postgres") {
      auto sink = PostgresSink::Open(o.pg_url, topic.name, shape.table());
      if (!sink.ok()) {
        std::cerr << sink.status().ToString() << "\n";
        return {};
      }
      runs.push_back({std::make_unique<PostgresViewStore>(std::move(sink.value()), shape.table()), *spec,
                      view_metrics.back().get()});
      continue;
    }
    dirs.push_back("/tmp/" + topic.name + "-" + spec->name + ".rocksdb");
    auto rocks = RocksDbStore::Open(dirs.back(), {});
    if (!rocks.ok()) {
      std::cerr << rocks.status().ToString() << "\n";
      return {};
    }
    dbs.push_back(std::move(rocks.value()));
    runs.push_back({std::move(RocksDbViewStore::Open(*dbs.back(), topic.name, shape.table()).value()), *spec,
                    view_metrics.back().get()});
  }
  Timing t = RunViews(o, topic, std::move(runs), while_running);
  dbs.clear();
  for (const std::string& dir : dirs) std::filesystem::remove_all(dir);
  if (second_store == "postgres") DropPostgresView(o, topic.name, DeclarativeProjection(b).table());
  uint64_t decoded = shared->decoded() - decoded_before, reused = shared->reused() - reused_before,
           waits = shared->waits() - waits_before;
  double a_s = t.each_s.size() == 2 ? t.each_s[0] : 0, b_s = t.each_s.size() == 2 ? t.each_s[1] : 0;
  std::printf(
      "two latest views over Avro upsert -> RocksDB and %s, one process, %s: caught up in %.2f s and "
      "%.2f s, %.2f us CPU per record for both; of %lld records (%lld tombstones, nothing to decode) read "
      "by each view, %llu decoded, %llu taken from the other view's decode; the view ahead waited %llu "
      "times\n",
      second_store == "postgres" ? "Postgres" : "RocksDB", what.c_str(), a_s, b_s, t.cpu_us,
      static_cast<long long>(topic.records), static_cast<long long>(topic.tombstones),
      static_cast<unsigned long long>(decoded), static_cast<unsigned long long>(reused),
      static_cast<unsigned long long>(waits));
  return {{"seconds", t.total_s},
          {"seconds_each", t.each_s},
          {"second_store", second_store},
          {"cpu_us_per_record_both", t.cpu_us},
          {"decoded", decoded},
          {"reused", reused},
          {"waits", waits},
          {"records", topic.records},
          {"tombstones", topic.tombstones}};
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

double ThreadCpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

// Decoding alone, in memory, no Kafka and no store: what RecordDecoder
// costs per record for each source the views read, as the latest view
// (upsert topics) and the aggregate (append topics) decode them. Stable
// where the view runs are noisy; and what `perf record` should look at.
void DecodeOnly(const Options& o) {
  std::mt19937 rng(1);
  int64_t now = NowMillis();
  const int n = std::min(o.events, 200000);
  struct Case {
    Source source;
    std::vector<std::string> values, keys;
  };
  std::vector<Case> cases;
  for (Source s : {kUpsert, kAvro, kAppend, kProtobuf}) {
    Case c{s, {}, {}};
    for (int i = 0; i < n; ++i) {
      Order order = NextOrder(rng, o);
      std::string json =
          "{" + Fields(order, false) + R"(,"type":"OrderPlaced","ts":)" + std::to_string(now) + "}";
      c.values.push_back(s == kAvro       ? AvroOrder(order, now)
                         : s == kProtobuf ? ProtobufOrder(order, now)
                                          : json);
      c.keys.push_back(s == kUpsert || s == kAvro ? order.id : order.customer);
    }
    cases.push_back(std::move(c));
  }
  for (int round = 0; round < std::max(1, o.rounds); ++round) {
    for (const Case& c : cases) {
      bool latest = c.source == kUpsert || c.source == kAvro;
      ViewSpec spec = ParseView(latest ? LatestView(c.source, "decode") : AggregateView(c.source, "decode"));
      RecordDecoder decoder(spec.source, false);
      SourceRecord record;
      int64_t bad = 0;
      // This thread's CPU time, not the wall clock: other processes share
      // the cores, and a decoder only spends CPU.
      double started = ThreadCpuSeconds();
      for (int i = 0; i < n; ++i) {
        RawRecord raw;
        raw.topic = "decode-only";
        raw.partition = 0;
        raw.offset = i;
        raw.key = c.keys[static_cast<size_t>(i)];
        raw.value = c.values[static_cast<size_t>(i)];
        if (!decoder.Decode(raw, &record).ok()) ++bad;
      }
      double s = ThreadCpuSeconds() - started;
      std::printf("decode only, %-17s: %7.0f ns CPU per record (%d records%s)\n", kSourceLabel[c.source],
                  s * 1e9 / n, n, bad ? ", some refused!" : "");
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "freshet sources benchmark: views over other services' topics next to the freshet envelope "
      "(needs scripts/services start)"};
  app.add_option("--events", o.events,
                 "records in each of the four topics (each view rebuilds from offset zero)")
      ->capture_default_str();
  app.add_option("--partitions", o.partitions)->capture_default_str();
  app.add_option("--keys", o.keys, "order ids: rows of the latest views")->capture_default_str();
  app.add_option("--groups", o.groups, "customers: groups of the aggregates")->capture_default_str();
  app.add_option("--rounds", o.rounds,
                 "measure every view this many times (alternating sources); report the median")
      ->capture_default_str();
  app.add_option("--json", o.json_path, "Append results as JSON lines to this file");
  app.add_option("--live-events", o.live_events, "records of the two-view live run")->capture_default_str();
  app.add_option("--live-rate", o.live_rate, "their rate, records/s")->capture_default_str();
  app.add_flag("--two-views-only", o.two_views_only,
               "only the runs of two views over one Avro topic (shared decoding), not every source");
  app.add_flag(
      "--decode-only", o.decode_only,
      "only decode records in memory (no Kafka, no store): RecordDecoder's cost per record and source");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);
  if (o.decode_only) {
    // The views' registry, preloaded as below.
    SchemaRegistryConfig config;
    config.url = kRegistryUrl;
    auto registry = SchemaRegistry::Shared(config);
    registry->Preload({kAvroSchemaId, "AVRO", kAvroSchema, {}});
    registry->Preload({kProtobufSchemaId, "PROTOBUF", kProtobufSchema, {}});
    DecodeOnly(o);
    return 0;
  }

  std::string base =
      "bench-sources-" + std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  bench::TopicsToDelete throwaway(o.brokers);
  Topic topics[kSourceCount];
  for (int s = 0; s < kSourceCount; ++s) {
    topics[s].name = base + "-" + kSourceName[s];
    throwaway.Add(topics[s].name);
    throwaway.Add(topics[s].name + "-dlq");
    if (Status st = EnsureTopic({o.brokers, {}}, topics[s].name, o.partitions, 1, std::chrono::seconds(30));
        !st.ok()) {
      std::cerr << st.ToString() << "\n";
      return 1;
    }
  }
  // The registry formats' schemas, where their views look (one client per
  // registry and process): kept alive for the run.
  SchemaRegistryConfig registry_config;
  registry_config.url = kRegistryUrl;
  std::shared_ptr<SchemaRegistry> registry = SchemaRegistry::Shared(registry_config);
  registry->Preload({kAvroSchemaId, "AVRO", kAvroSchema, {}});
  registry->Preload({kProtobufSchemaId, "PROTOBUF", kProtobufSchema, {}});
  auto produced_at = SteadyClock::now();
  try {
    ProduceAll(o, topics);
  } catch (const std::exception& e) {
    std::cerr << "producing: " << e.what() << "\n";
    return 1;
  }
  std::printf("produced %d records into each of %d topics (%d partitions) in %.1f s\n", o.events,
              kSourceCount, o.partitions,
              std::chrono::duration<double>(SteadyClock::now() - produced_at).count());
  for (int s = 0; s < kSourceCount; ++s)
    std::printf("  %-17s mean value %3.0f B, %lld tombstones\n", kSourceLabel[s],
                topics[s].mean_value_bytes(), static_cast<long long>(topics[s].tombstones));

  MetricsRegistry metrics;
  nlohmann::json latest, aggregate;
  if (!o.two_views_only) {
    for (int s = 0; s < kSourceCount; ++s) {
      topics[s].raw_per_s = RawConsume(o, topics[s].name, topics[s].records);
      std::printf("raw read_committed consume, %-17s: %9.0f records/s\n", kSourceLabel[s],
                  topics[s].raw_per_s);
    }

    struct Cell {
      const char* kind;
      Source source;
      ViewSpec spec;
      std::vector<Timing> runs[2];  // [0] RocksDB, [1] Postgres
    };
    std::vector<Cell> cells;
    for (Source s : {kFreshet, kUpsert, kDebezium, kAvro})
      cells.push_back({"latest", s, ParseView(LatestView(s, topics[s].name)), {}});
    const size_t latest_cells = cells.size();
    for (Source s : {kFreshet, kAppend, kProtobuf})
      cells.push_back({"aggregate", s, ParseView(AggregateView(s, topics[s].name)), {}});
    const char* kStores[] = {"rocksdb", "postgres"};
    const char* kStoreLabel[] = {"RocksDB", "Postgres"};

    for (int round = 0; round < o.rounds; ++round) {
      for (int st = 0; st < 2; ++st) {
        // Odd rounds run the sources of a kind in the other order, so that
        // drift during a round does not always favour the same source.
        std::vector<size_t> order;
        for (size_t i = 0; i < cells.size(); ++i) order.push_back(i);
        if (round % 2) {
          std::reverse(order.begin(), order.begin() + static_cast<long>(latest_cells));
          std::reverse(order.begin() + static_cast<long>(latest_cells), order.end());
        }
        for (size_t i : order) {
          Cell& c = cells[i];
          Timing t = RunOnce(o, topics[c.source], c.spec, kStores[st], metrics, round);
          c.runs[st].push_back(t);
          std::printf(
              "%-9s over %-17s -> %-8s: %9.0f records/s until caught up  (rebuild of %d "
              "records: %.2f s, of which %.2f s before the first record; %.2f us CPU per record)\n",
              c.kind, kSourceLabel[c.source], kStoreLabel[st], t.per_s, o.events, t.total_s, t.startup_s,
              t.cpu_us);
          std::fflush(stdout);
        }
      }
    }

    // The table: each source against the same kind and store over freshet.
    std::printf("\n%-9s  %-17s  %-8s  %15s  %10s  %10s  %13s  %9s  %10s\n", "view", "source", "store",
                "records/s", "vs freshet", "vs JSON", "raw consume/s", "rebuild s", "CPU us/rec");
    bool all_met = true, registry_met = true;
    for (int st = 0; st < 2; ++st) {
      for (const Cell& c : cells) {
        auto rates = [&](const Cell& x) {
          std::vector<double> v;
          for (const Timing& t : x.runs[st]) v.push_back(t.per_s);
          return v;
        };
        std::vector<double> totals, cpu;
        for (const Timing& t : c.runs[st]) totals.push_back(t.total_s), cpu.push_back(t.cpu_us);
        double per_s = Median(rates(c)), rebuild = Median(totals), cpu_us = Median(cpu);
        double freshet = 0;
        for (const Cell& f : cells)
          if (std::string(f.kind) == c.kind && f.source == kFreshet) freshet = Median(rates(f));
        double ratio = freshet > 0 ? per_s / freshet : 0;
        if (c.source != kFreshet && ratio < 0.8) all_met = false;
        // Avro and Protobuf against the same view over JSON.
        double json = 0;
        for (const Cell& f : cells)
          if (std::string(f.kind) == c.kind && f.source == JsonTwin(c.source) && f.source != c.source)
            json = Median(rates(f));
        double vs_json = json > 0 ? per_s / json : 0;
        if (json > 0 && vs_json < 0.7) registry_met = false;
        std::string vs_json_text =
            json > 0 ? std::to_string(static_cast<int>(100 * vs_json + 0.5)) + "%" : "";
        std::printf("%-9s  %-17s  %-8s  %15.0f  %9.0f%%  %10s  %13.0f  %9.2f  %10.2f\n", c.kind,
                    kSourceLabel[c.source], kStoreLabel[st], per_s, 100 * ratio, vs_json_text.c_str(),
                    topics[c.source].raw_per_s, rebuild, cpu_us);
        nlohmann::json& out = std::string(c.kind) == "latest" ? latest : aggregate;
        const std::string store = kStores[st];
        auto& cell = out[kSourceName[c.source]];
        cell[store + "_per_s"] = per_s;
        cell[store + "_vs_freshet"] = ratio;
        if (json > 0) cell[store + "_vs_json"] = vs_json;
        cell[store + "_rebuild_seconds"] = rebuild;
        cell[store + "_cpu_us_per_record"] = cpu_us;
        if (o.rounds > 1) cell[store + "_runs"] = rates(c);
      }
    }
    std::printf(
        "target (reported, not asserted): every source at least 80%% of the same view over the freshet "
        "envelope: %s\n",
        all_met ? "met" : "not met");
    std::printf(
        "target (reported, not asserted): Avro and Protobuf at least 70%% of the same view over JSON: %s\n",
        registry_met ? "met" : "not met");
  }

  // Two views of one process over one Avro topic: each record should be
  // decoded once between them (DecodedRecords), not once per view. Side by
  // side from offset zero over the topic above (a rebuild of both), and
  // live: following a fresh topic at the head while records arrive.
  nlohmann::json two_views;
  two_views["rebuild"] =
      TwoAvroViews(o, topics[kAvro], metrics, "rebuild from offset zero", "rocksdb", nullptr);
  two_views["rebuild_rocksdb_and_postgres"] =
      TwoAvroViews(o, topics[kAvro], metrics, "rebuild from offset zero", "postgres", nullptr);
  {
    Topic live;
    live.name = base + "-avro-live";
    throwaway.Add(live.name);
    throwaway.Add(live.name + "-dlq");
    if (Status st = EnsureTopic({o.brokers, {}}, live.name, o.partitions, 1, std::chrono::seconds(30));
        !st.ok()) {
      std::cerr << st.ToString() << "\n";
      return 1;
    }
    // The records first, so that the partitions' ends are known (an
    // idempotent producer, no transactions: offsets 0..n-1 per partition).
    std::mt19937 rng(2);
    std::vector<std::pair<std::string, std::string>> records;  // key, value
    for (int i = 0; i < o.live_events; ++i) {
      Order order = NextOrder(rng, o);
      records.emplace_back(order.id, AvroOrder(order, NowMillis()));
      ++live.ends[PartitionForKey(order.id, o.partitions)];
    }
    live.records = o.live_events;
    two_views["live"] =
        TwoAvroViews(o, live, metrics, "live, " + std::to_string(o.live_rate) + " records/s", "rocksdb", [&] {
          OtherServiceProducer producer(o.brokers);
          auto start = SteadyClock::now();
          for (size_t i = 0; i < records.size(); ++i) {
            std::this_thread::sleep_until(
                start + std::chrono::microseconds(static_cast<int64_t>(i) * 1000000 / o.live_rate));
            producer.Produce(live.name, PartitionForKey(records[i].first, o.partitions), records[i].first,
                             &records[i].second);
          }
          producer.Flush();
        });
  }

  nlohmann::json raw, bytes, tombstones;
  for (int s = 0; s < kSourceCount; ++s) {
    raw[kSourceName[s]] = topics[s].raw_per_s;
    bytes[kSourceName[s]] = topics[s].mean_value_bytes();
    tombstones[kSourceName[s]] = topics[s].tombstones;
  }
  bench::AppendResult(o.json_path,
                      {{"bench", "sources"},
                       {"events", o.events},
                       {"partitions", o.partitions},
                       {"keys", o.keys},
                       {"groups", o.groups},
                       {"rounds", o.rounds},
                       {"mean_value_bytes", bytes},
                       {"tombstones", tombstones},
                       {"debezium_amount", "decimal string (decimal.handling.mode=string), no schema"},
                       {"raw_consume_per_s", raw},
                       {"latest", latest},
                       {"aggregate", aggregate},
                       {"two_avro_views_one_process", two_views}});
  return 0;
}
