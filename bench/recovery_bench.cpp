// Cold takeover of a writer partition: an instance with no standby state
// starts and serves a partition with a long history, once by replaying the
// whole log and once from the newest snapshot plus the events after it.
// Also the hot standby's takeover, for comparison.
//
//   build/bench/recovery_bench --events 10000000 --entities 100000
//
// The history is produced straight into the topic (inventory events, each
// with an idempotency key), as a writer would have written it. One
// partition, so that every figure is one partition's recovery.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <thread>

#include "bench/bench_util.h"
#include "core/envelope.h"
#include "writer/inventory.h"
#include "writer/partition_slot.h"
#include "writer/partition_snapshot.h"

using namespace freshet;
using SteadyClock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string brokers = bench::DefaultBrokers();
  int64_t events = 1000000;
  int64_t entities = 100000;
  int64_t snapshot_every = 100000;
  std::string json_path;
};

// `count` StockReceived events starting at event number `first`, cycling
// over `entities` SKUs in 100 stores.
Status ProduceHistory(const Options& o, const std::string& topic, int64_t first, int64_t count) {
  KafkaClientOptions kafka{o.brokers,
                           {{"compression.type", "lz4"}, {"linger.ms", "20"}, {"batch.size", "1000000"}}};
  auto producer = Producer::Create(kafka);
  if (!producer.ok()) return producer.status();
  int64_t per_store = std::max<int64_t>(1, o.entities / 100);
  for (int64_t i = first; i < first + count; ++i) {
    int64_t entity = i % o.entities;
    std::string store = "store-" + std::to_string(entity / per_store);
    int64_t on_hand = i / o.entities + 1;  // each pass over the SKUs receives one more unit
    Event e;
    e.type = "StockReceived";
    e.id = "cmd-" + std::to_string(i);
    e.ts_ms = 1700000000000 + i;
    e.data = {{"store", store},     {"sku", "sku-" + std::to_string(entity)},
              {"qty", 1},           {"delta", 1},
              {"on_hand", on_hand}, {"reserved", 0}};
    OutgoingMessage m{
        topic, 0, store, EncodeEventValue(e), {{kTypeHeader, e.type}, {kSchemaHeader, kSchemaVersion}}};
    for (;;) {
      Status st = (*producer)->Produce(m);
      if (st.ok()) break;
      // The local queue is full: let deliveries drain it.
      FRESHET_RETURN_IF_ERROR((*producer)->Flush(std::chrono::seconds(60)));
    }
    if ((i - first + 1) % 1000000 == 0) spdlog::info("produced {} events", i - first + 1);
  }
  return (*producer)->Flush(std::chrono::minutes(5));
}

struct Takeover {
  double seconds = 0;  // start (or ownership request) to serving
  int64_t offset = -1;
  size_t entities = 0;
  int64_t snapshot_offset = -1;
};

// Starts a slot that wants the partition from the start (a cold instance),
// or, with `hot`, lets it tail to the end first and then asks for it.
Result<Takeover> TakeOver(const Options& o, const std::string& topic, const std::string& snapshot_topic,
                          const Domain& domain, const std::string& instance, bool hot = false) {
  PartitionSlotOptions so;
  so.kafka = {o.brokers, {}};
  so.topic = topic;
  so.partition = 0;
  so.transactional_id = "recovery-bench-" + topic;
  so.owners_topic = topic + "-owners";
  so.claim = R"({"instance": ")" + instance + R"("})";
  so.snapshot_topic = snapshot_topic;
  so.snapshot_every_events = o.snapshot_every;
  so.instance = instance;
  PartitionSlot slot(so, domain, WriterMetrics{});
  auto started = SteadyClock::now();
  if (hot) {
    slot.Start();
    // A hot standby has applied everything there is before it is asked.
    auto end = bench::HighWatermarks(o.brokers, topic, 1)[0];
    while (slot.applied_offset() + 1 < end) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    started = SteadyClock::now();
    slot.RequestOwnership();
  } else {
    slot.RequestOwnership();
    slot.Start();
  }
  while (slot.role() != PartitionSlot::Role::kOwner) {
    if (slot.role() == PartitionSlot::Role::kStopped || slot.role() == PartitionSlot::Role::kLogIncomplete)
      return Status::Internal(std::string("slot ended as ") + PartitionSlot::RoleName(slot.role()));
    if (SteadyClock::now() - started > std::chrono::minutes(10))
      return Status::Timeout("takeover took over 10 minutes");
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  Takeover t;
  t.seconds = std::chrono::duration<double>(SteadyClock::now() - started).count();
  t.offset = slot.applied_offset();
  t.entities = slot.entity_count();
  t.snapshot_offset = slot.snapshot_offset();
  slot.Stop();
  return t;
}

nlohmann::json ToJson(const Takeover& t) {
  return {{"seconds", t.seconds},
          {"offset", t.offset},
          {"entities", t.entities},
          {"snapshot_offset", t.snapshot_offset}};
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Cold writer takeover after a long history: log replay against snapshot + tail"};
  app.add_option("--brokers", o.brokers, "Kafka bootstrap servers");
  app.add_option("--events", o.events, "events of history in the partition")->check(CLI::PositiveNumber);
  app.add_option("--entities", o.entities, "live entities (SKUs) the history is spread over")
      ->check(CLI::PositiveNumber);
  app.add_option("--snapshot-every", o.snapshot_every, "writer.snapshot_every_events")
      ->check(CLI::PositiveNumber);
  app.add_option("--json", o.json_path, "append a JSON line with the results to this file");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  std::string topic = "recovery-bench-" + std::to_string(::getpid()) + "-" +
                      std::to_string(std::chrono::system_clock::now().time_since_epoch().count() % 1000000);
  std::string snapshot_topic = DefaultSnapshotTopic(topic);
  bench::TopicsToDelete cleanup(o.brokers);
  cleanup.Add(topic);
  cleanup.Add(snapshot_topic);
  cleanup.Add(topic + "-owners");
  KafkaClientOptions kafka{o.brokers, {}};
  for (const auto& [name, config] : std::vector<std::pair<std::string, std::map<std::string, std::string>>>{
           {topic, KeepForeverTopicConfig()},
           {snapshot_topic, {}},
           {topic + "-owners", {{"cleanup.policy", "compact"}}}}) {
    Status st = EnsureTopic(kafka, name, 1, 1, std::chrono::seconds(30), config);
    if (!st.ok()) {
      std::cerr << "creating " << name << ": " << st.ToString() << "\n";
      return 1;
    }
  }

  // The tail a cold instance replays after the snapshot: on average half the
  // snapshot interval; here a whole one minus one, the worst case.
  int64_t tail = o.snapshot_every - 1;
  auto produce_started = SteadyClock::now();
  Status st = ProduceHistory(o, topic, 0, o.events);
  if (!st.ok()) {
    std::cerr << "producing the history: " << st.ToString() << "\n";
    return 1;
  }
  double produce_s = std::chrono::duration<double>(SteadyClock::now() - produce_started).count();
  std::cout << "history: " << o.events << " events over " << o.entities << " entities produced in "
            << produce_s << " s\n";

  auto domain = MakeInventoryDomain();
  // 1. No snapshot: the cold instance replays the whole partition. Snapshots
  //    off, so that it does not write one either.
  Options no_snapshots = o;
  auto replay = TakeOver(no_snapshots, topic, "", *domain, "replay");
  if (!replay.ok()) {
    std::cerr << "replay takeover: " << replay.status().ToString() << "\n";
    return 1;
  }
  std::cout << "cold takeover, log replay of " << replay->offset + 1 << " offsets: " << replay->seconds
            << " s (" << replay->entities << " entities)\n";

  // 2. The first owner with snapshots on replays too, and snapshots what it
  //    replayed before serving.
  auto first = TakeOver(o, topic, snapshot_topic, *domain, "first");
  if (!first.ok() || first->snapshot_offset < 0) {
    std::cerr << "first takeover with snapshots: "
              << (first.ok() ? std::string("no snapshot written") : first.status().ToString()) << "\n";
    return 1;
  }
  std::cout << "cold takeover that also writes the first snapshot: " << first->seconds << " s\n";

  // 3. More history after that snapshot, then a cold instance: snapshot + tail.
  st = ProduceHistory(o, topic, o.events, tail);
  if (!st.ok()) {
    std::cerr << "producing the tail: " << st.ToString() << "\n";
    return 1;
  }
  auto snapshot_load = TakeOver(o, topic, snapshot_topic, *domain, "cold");
  if (!snapshot_load.ok()) {
    std::cerr << "snapshot takeover: " << snapshot_load.status().ToString() << "\n";
    return 1;
  }
  std::cout << "cold takeover, snapshot up to " << snapshot_load->snapshot_offset << " + tail of "
            << snapshot_load->offset + 1 - first->offset - 1 << " offsets: " << snapshot_load->seconds
            << " s (" << snapshot_load->entities << " entities)\n";

  // 4. A hot standby, for comparison: it has applied everything already.
  auto hot = TakeOver(o, topic, snapshot_topic, *domain, "hot", /*hot=*/true);
  if (!hot.ok()) {
    std::cerr << "hot takeover: " << hot.status().ToString() << "\n";
    return 1;
  }
  std::cout << "hot standby takeover: " << hot->seconds << " s\n";

  bench::AppendResult(o.json_path, {{"bench", "recovery"},
                                    {"events", o.events},
                                    {"entities", o.entities},
                                    {"snapshot_every_events", o.snapshot_every},
                                    {"tail_events", tail},
                                    {"replay", ToJson(*replay)},
                                    {"first_snapshot", ToJson(*first)},
                                    {"snapshot_and_tail", ToJson(*snapshot_load)},
                                    {"hot_standby", ToJson(*hot)}});
  return 0;
}
