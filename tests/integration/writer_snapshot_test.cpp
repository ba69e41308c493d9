// Bounded recovery: the writer snapshots each partition's state into the
// snapshot topic, in a transaction of the partition's fencing producer, and
// a starting writer loads the newest snapshot and replays only the tail.
// These tests run real writer processes on the real broker and check:
//  - a cold writer recovers from snapshot + tail to exactly the state and the
//    idempotency keys the crashed one had acknowledged;
//  - a writer killed while its snapshot's chunks are in the log, not
//    committed, leaves nothing a new owner loads;
//  - a writer that was fenced while about to snapshot (a zombie) never
//    commits its snapshot, and the next owner does not load it.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <functional>

#include "core/envelope.h"
#include "core/http_client.h"
#include "tests/support/integration_fixture.h"
#include "tests/support/test_env.h"
#include "writer/partition_snapshot.h"

namespace freshet {
namespace {

using namespace std::chrono_literals;
using namespace freshet::testing;

constexpr int kSnapshotEvery = 40;

// One snapshot chunk as found in the snapshot topic.
struct ChunkRecord {
  int64_t offset = -1;
  std::string id;     // "<next_offset>@<instance>"
  std::string chunk;  // "i/n"
};

class WriterSnapshot : public IntegrationFixture {
 protected:
  WriterSnapshot() : IntegrationFixture("snapshot") {}

  std::unique_ptr<FreshetProcess> StartWriter(const std::string& instance,
                                              const std::map<std::string, std::string>& extra_env = {}) {
    ports_[instance] = FreePort();
    std::map<std::string, std::string> env = WriterEnv(instance, ports_[instance], 1);
    env["FRESHET_WRITER_SESSION_TIMEOUT_MS"] = "2000";
    env["FRESHET_WRITER_SNAPSHOT_EVERY_EVENTS"] = std::to_string(kSnapshotEvery);
    env.insert(extra_env.begin(), extra_env.end());
    return std::make_unique<FreshetProcess>(std::vector<std::string>{"writer"}, env, "writer-" + instance);
  }

  nlohmann::json Readyz(const std::string& instance) {
    HttpClient client("127.0.0.1", static_cast<uint16_t>(ports_[instance]), 2s);
    auto r = client.Get("/readyz");
    if (!r.ok()) return nullptr;
    return nlohmann::json::parse(r->body, nullptr, false);
  }
  // Partition 0 as `instance` reports it, once its role is `role`.
  nlohmann::json WaitForRole(const std::string& instance, const std::string& role,
                             std::chrono::seconds budget = 60s) {
    nlohmann::json found;
    WaitUntil(
        [&] {
          nlohmann::json j = Readyz(instance);
          if (j.is_null() || !j.contains("partitions") || j["partitions"].empty()) return false;
          found = j["partitions"][0];
          return found["role"] == role;
        },
        budget, 50ms);
    return found;
  }

  // Sends command `n` (a receive or a reserve on one of 25 SKUs, idempotency
  // key "cmd-n") to `instance`; returns the HTTP status (0: no answer).
  int Send(const std::string& instance, int n, int64_t* offset = nullptr,
           std::chrono::milliseconds timeout = 10s) {
    // Every SKU is received first (n < 25); later a third of the commands
    // reserve one unit, which stock received by then always covers.
    bool reserve = n >= 25 && n % 3 == 2;
    nlohmann::json command = {{"type", reserve ? "reserve" : "receive"},
                              {"store", "s1"},
                              {"sku", "sku-" + std::to_string(n % 25)},
                              {"qty", reserve ? 1 : 1 + n % 4},
                              {"id", "cmd-" + std::to_string(n)}};
    HttpClient client("127.0.0.1", static_cast<uint16_t>(ports_[instance]), timeout);
    auto r = client.Post("/commands", command.dump());
    if (!r.ok()) return 0;
    auto body = nlohmann::json::parse(r->body, nullptr, false);
    if (offset && r->status == 200) *offset = body.value("offset", int64_t{-1});
    return r->status;
  }

  // Every SKU's {on_hand, reserved} as `instance` serves it.
  std::map<std::string, std::string> State(const std::string& instance) {
    std::map<std::string, std::string> out;
    HttpClient client("127.0.0.1", static_cast<uint16_t>(ports_[instance]), 10s);
    for (int i = 0; i < 25; ++i) {
      auto r = client.Get("/state/s1/sku-" + std::to_string(i));
      std::string& value = out["sku-" + std::to_string(i)];
      if (!r.ok()) {
        value = r.status().ToString();
        continue;
      }
      auto body = nlohmann::json::parse(r->body, nullptr, false);
      value = std::to_string(r->status) + " " + (body.contains("entity") ? body["entity"].dump() : r->body);
    }
    return out;
  }

  // The same, computed by replaying the event topic (read_committed).
  std::map<std::string, std::string> ReplayedState() {
    std::map<std::string, std::pair<int64_t, int64_t>> items;
    for (const auto& record : ReadAll(topic_, 1)) {
      auto event = DecodeEventValue(record.value);
      if (!event.ok()) continue;
      items[event->data["sku"].get<std::string>()] = {event->data["on_hand"].get<int64_t>(),
                                                      event->data["reserved"].get<int64_t>()};
    }
    std::map<std::string, std::string> out;
    for (const auto& [sku, item] : items)
      out[sku] = nlohmann::json({{"on_hand", item.first}, {"reserved", item.second}}).dump();
    return out;
  }

  // The snapshot topic's chunk records, with the given isolation level.
  std::vector<ChunkRecord> SnapshotChunks(const std::string& isolation) {
    KafkaClientOptions options = KafkaOptions();
    options.properties["isolation.level"] = isolation;
    std::vector<ChunkRecord> out;
    auto consumer = Consumer::Create(options, "");
    if (!consumer.ok()) return out;
    if (!(*consumer)->Assign({{DefaultSnapshotTopic(topic_), 0, kOffsetBeginning}}).ok()) return out;
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      KafkaMessage m;
      auto outcome = (*consumer)->Poll(200ms, &m);
      if (!outcome.ok()) continue;
      if (*outcome == Consumer::PollOutcome::kPartitionEnd) break;
      if (*outcome != Consumer::PollOutcome::kMessage) continue;
      ChunkRecord c;
      c.offset = m.offset();
      c.id = std::string(m.header("freshet-snapshot").value_or(""));
      c.chunk = std::string(m.header("freshet-chunk").value_or(""));
      out.push_back(std::move(c));
    }
    return out;
  }

  // Sends commands from `*n` on until `faulted` holds (the writer crashed or
  // stopped itself at its first snapshot). The command that triggered it
  // may or may not have been answered first. Returns false if it never did.
  bool SendUntilFault(const std::string& instance, int* n, const std::function<bool()>& faulted) {
    for (int limit = *n + 4 * kSnapshotEvery; *n < limit; ++*n) {
      if (faulted()) return true;
      int status = Send(instance, *n, nullptr, 2s);
      // A dying process closes its sockets a moment before it is reaped.
      if (status != 200 && !WaitUntil(faulted, 5s, 20ms)) {
        ADD_FAILURE() << "command " << *n << ": HTTP " << status;
        return false;
      }
    }
    return faulted();
  }

  int64_t HighWatermark() {
    auto consumer = Consumer::Create(KafkaOptions(), "");
    if (!consumer.ok()) return -1;
    auto marks = (*consumer)->QueryWatermarks(topic_, 0, 10s);
    return marks.ok() ? marks->second : -1;
  }

  static bool Stopped(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    size_t close = line.rfind(')');
    return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'T';
  }

  std::map<std::string, int> ports_;
};

TEST_F(WriterSnapshot, ColdWriterLoadsTheNewestSnapshotAndReplaysOnlyTheTail) {
  std::map<int, int64_t> acked;  // command -> offset
  int64_t snapshot_offset = -1;
  {
    auto first = StartWriter("first");
    ASSERT_EQ(WaitForRole("first", "owner")["role"], "owner") << first->Log();
    for (int n = 0; n < 3 * kSnapshotEvery + 7; ++n) {
      int64_t offset = -1;
      ASSERT_EQ(Send("first", n, &offset), 200) << n;
      acked[n] = offset;
    }
    // A few events after the newest snapshot, for the cold writer to replay.
    nlohmann::json p = Readyz("first")["partitions"][0];
    for (int n = 3 * kSnapshotEvery + 7;
         p["offset"].get<int64_t>() + 1 - p["snapshot_offset"].get<int64_t>() < 5; ++n) {
      int64_t offset = -1;
      ASSERT_EQ(Send("first", n, &offset), 200) << n;
      acked[n] = offset;
      p = Readyz("first")["partitions"][0];
    }
    snapshot_offset = p["snapshot_offset"].get<int64_t>();
    ASSERT_GT(snapshot_offset, 2 * kSnapshotEvery) << p.dump();
    first->Signal(SIGKILL);
    first->Wait(10s);
  }
  auto expected = ReplayedState();
  ASSERT_EQ(expected.size(), 25u);
  // Only the tail is needed now: delete everything the snapshot covers. A
  // writer that replayed from offset 0 would refuse the partition.
  ASSERT_TRUE(DeleteRecordsBefore(KafkaOptions(), topic_, 0, snapshot_offset, 15s).ok());
  auto end_before = HighWatermark();

  auto cold = StartWriter("cold");
  nlohmann::json p = WaitForRole("cold", "owner");
  ASSERT_EQ(p["role"], "owner") << cold->Log();
  std::string log = cold->Log();
  EXPECT_NE(log.find("loaded the snapshot up to offset"), std::string::npos) << log;
  EXPECT_NE(log.find("written by first"), std::string::npos) << log;
  EXPECT_GT(p["snapshot_offset"].get<int64_t>(), 2 * kSnapshotEvery) << p.dump();
  EXPECT_EQ(p["offset"].get<int64_t>(), acked.rbegin()->second);

  auto state = State("cold");
  for (const auto& [sku, value] : expected) EXPECT_EQ(state[sku], "200 " + value) << sku;
  // Idempotency keys from before the snapshot and from the tail after it are
  // both still known: the retry gets the original offset, nothing new.
  for (int n : {0, kSnapshotEvery - 1, acked.rbegin()->first}) {
    int64_t offset = -1;
    EXPECT_EQ(Send("cold", n, &offset), 200);
    EXPECT_EQ(offset, acked[n]) << "command " << n;
  }
  EXPECT_EQ(HighWatermark(), end_before) << "retries published nothing";
}

TEST_F(WriterSnapshot, CrashWhileWritingASnapshotLeavesNothingANewOwnerLoads) {
  auto doomed = StartWriter("doomed", {{"FRESHET_WRITER_FAULT", "crash-in-snapshot"}});
  ASSERT_EQ(WaitForRole("doomed", "owner")["role"], "owner") << doomed->Log();
  // After kSnapshotEvery offsets the writer kills itself halfway through the
  // snapshot's transaction.
  int n = 0;
  ASSERT_TRUE(SendUntilFault("doomed", &n, [&] { return !doomed->running(); })) << doomed->Log();
  ASSERT_EQ(doomed->Wait(30s), 128 + SIGKILL) << doomed->Log();
  ASSERT_NE(doomed->Log().find("crashing with the snapshot"), std::string::npos) << doomed->Log();

  // Its chunks are in the log, but no read_committed reader sees them.
  auto written = SnapshotChunks("read_uncommitted");
  ASSERT_FALSE(written.empty()) << "the fault put chunks in the log";
  EXPECT_EQ(written[0].id.substr(written[0].id.find('@')), "@doomed");
  auto expected = ReplayedState();

  auto next = StartWriter("next");
  nlohmann::json p = WaitForRole("next", "owner");
  ASSERT_EQ(p["role"], "owner") << next->Log();
  EXPECT_NE(next->Log().find("no snapshot in"), std::string::npos) << next->Log();
  EXPECT_EQ(next->Log().find("written by doomed"), std::string::npos) << next->Log();
  auto state = State("next");
  for (const auto& [sku, value] : expected) EXPECT_EQ(state[sku], "200 " + value) << sku;

  // The new owner's own snapshot commits and is what a third writer loads.
  for (int m = n; m < n + kSnapshotEvery; ++m) ASSERT_EQ(Send("next", m), 200);
  ASSERT_TRUE(WaitUntil([&] { return !SnapshotChunks("read_committed").empty(); }, 20s, 100ms));
  for (const auto& c : SnapshotChunks("read_committed"))
    EXPECT_NE(c.id.find("@next"), std::string::npos) << c.id;
}

TEST_F(WriterSnapshot, SnapshotOfAWriterFencedMeanwhileNeverCommits) {
  auto zombie = StartWriter("zombie", {{"FRESHET_WRITER_FAULT", "stop-before-snapshot"}});
  ASSERT_EQ(WaitForRole("zombie", "owner")["role"], "owner") << zombie->Log();
  // It stops itself (SIGSTOP) with its snapshot taken in memory, not yet sent.
  int n = 0;
  ASSERT_TRUE(SendUntilFault("zombie", &n, [&] { return Stopped(zombie->pid()); })) << zombie->Log();

  // A new owner takes over once the zombie's group session expires, fences
  // it, and moves on.
  auto owner = StartWriter("owner");
  ASSERT_EQ(WaitForRole("owner", "owner")["role"], "owner") << owner->Log();
  for (int m = n; m < n + 5; ++m) ASSERT_EQ(Send("owner", m), 200);
  n += 5;

  // The zombie wakes up and tries to commit its snapshot: fenced (or told
  // the transaction cannot commit), never committed.
  zombie->Signal(SIGCONT);
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::string log = zombie->Log();
        return log.find("fenced by a newer owner") != std::string::npos ||
               log.find("not written") != std::string::npos;
      },
      30s, 50ms))
      << zombie->Log();
  for (const auto& c : SnapshotChunks("read_committed"))
    EXPECT_EQ(c.id.find("@zombie"), std::string::npos) << "a fenced writer's snapshot committed: " << c.id;

  // The owner's state, and a third writer's after the owner dies, are the
  // log's, not the zombie's.
  auto expected = ReplayedState();
  auto state = State("owner");
  for (const auto& [sku, value] : expected) EXPECT_EQ(state[sku], "200 " + value) << sku;
  zombie->Signal(SIGKILL);
  owner->Signal(SIGKILL);
  zombie->Wait(10s);
  owner->Wait(10s);
  auto third = StartWriter("third");
  ASSERT_EQ(WaitForRole("third", "owner")["role"], "owner") << third->Log();
  EXPECT_EQ(third->Log().find("written by zombie"), std::string::npos) << third->Log();
  state = State("third");
  for (const auto& [sku, value] : expected) EXPECT_EQ(state[sku], "200 " + value) << sku;
}

}  // namespace
}  // namespace freshet
