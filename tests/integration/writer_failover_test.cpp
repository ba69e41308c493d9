// Two real writer processes sharing a topic: ownership moves when the owner
// dies, a zombie owner cannot publish, and idempotent retries survive a
// takeover. Every claim is checked against what is actually in the topic.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <random>
#include <set>
#include <thread>

#include "core/envelope.h"
#include "core/http_client.h"
#include "tests/support/integration_fixture.h"
#include "tests/support/test_env.h"
#include "writer/inventory.h"

namespace freshet {
namespace {

using namespace std::chrono_literals;
using namespace freshet::testing;

constexpr int kPartitions = 4;

struct WriterInstance {
  int port = 0;
  std::unique_ptr<FreshetProcess> process;
};

class WriterFailover : public IntegrationFixture {
 protected:
  WriterFailover() : IntegrationFixture("failover") {}

  WriterInstance StartWriter(const std::string& name) {
    WriterInstance w;
    w.port = FreePort();
    w.process = std::make_unique<FreshetProcess>(std::vector<std::string>{"writer"},
                                                 WriterEnv(name, w.port, kPartitions), "writer-" + name);
    return w;
  }

  static nlohmann::json Readyz(const WriterInstance& w) {
    HttpClient c("127.0.0.1", static_cast<uint16_t>(w.port));
    auto r = c.Get("/readyz");
    if (!r.ok()) return nullptr;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    j["status"] = r->status;
    return j;
  }

  // Every partition is assigned to exactly one of `writers`, and an owner
  // is always the assigned one; "" when so, else what is wrong.
  static std::string AssignmentProblem(const std::vector<const WriterInstance*>& writers) {
    std::map<int, int> assigned;
    for (const WriterInstance* w : writers) {
      nlohmann::json j = Readyz(*w);
      if (j.is_null() || !j.contains("partitions")) return "no /readyz";
      for (const auto& p : j["partitions"]) {
        int partition = p["partition"].get<int>();
        bool is_assigned = p.value("assigned", false);
        assigned[partition] += is_assigned;
        if (p["role"] == "owner" && !is_assigned)
          return "partition " + std::to_string(partition) + " is owned but not assigned: " + j.dump();
      }
    }
    for (const auto& [partition, n] : assigned)
      if (n != 1)
        return "partition " + std::to_string(partition) + " is assigned to " + std::to_string(n) + " writers";
    return "";
  }

  static int OwnedCount(const WriterInstance& w) {
    nlohmann::json j = Readyz(w);
    if (j.is_null() || j["status"] != 200) return -1;
    int owned = 0;
    for (const auto& p : j["partitions"]) owned += p["role"] == "owner";
    return owned;
  }
};

// Sends one command until it is answered 2xx or 4xx (refused), following
// redirects and retrying 503s and connection errors with the same key.
struct Answer {
  int status = 0;
  nlohmann::json body;
};
Answer SendUntilDecided(std::vector<int> ports, const nlohmann::json& command, std::chrono::seconds budget) {
  auto deadline = std::chrono::steady_clock::now() + budget;
  size_t next = 0;
  int port = ports[0];
  while (std::chrono::steady_clock::now() < deadline) {
    HttpClient client("127.0.0.1", static_cast<uint16_t>(port));
    auto r = client.Post("/commands", command.dump());
    if (r.ok() && r->status == 307) {
      auto body = nlohmann::json::parse(r->body);
      std::string owner = body["owner"];
      port = std::atoi(owner.substr(owner.rfind(':') + 1).c_str());
      continue;
    }
    if (r.ok() && r->status != 503) return {r->status, nlohmann::json::parse(r->body)};
    port = ports[++next % ports.size()];
    std::this_thread::sleep_for(20ms);
  }
  return {0, nullptr};
}

TEST_F(WriterFailover, SigkillOfAnOwnerUnderLoadLosesAndDuplicatesNothing) {
  WriterInstance a = StartWriter("a");
  ASSERT_TRUE(WaitUntil([&] { return OwnedCount(a) == kPartitions; }, 60s, 50ms)) << a.process->Log();
  WriterInstance b = StartWriter("b");
  // The cooperative group hands some partitions to b; both serve.
  ASSERT_TRUE(WaitUntil(
      [&] { return OwnedCount(b) > 0 && OwnedCount(a) > 0 && OwnedCount(a) + OwnedCount(b) == kPartitions; },
      60s, 50ms))
      << b.process->Log();
  // What the group assigned and what the slots serve agree (/readyz).
  EXPECT_EQ(AssignmentProblem({&a, &b}), "");

  constexpr int kClients = 4, kPerClient = 150;
  std::mutex mu;
  std::map<std::string, nlohmann::json> acked;  // id -> {partition, offset}
  std::map<std::string, int> refused;
  std::atomic<int> sent{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937 rng(c);
      for (int i = 0; i < kPerClient; ++i) {
        std::string id = "cmd-" + std::to_string(c) + "-" + std::to_string(i);
        nlohmann::json cmd = {{"id", id}, {"store", "store-" + std::to_string(rng() % 16)}, {"sku", "x"}};
        if (rng() % 3 == 0)
          cmd.update({{"type", "sell"}, {"qty", 1 + rng() % 3}});
        else
          cmd.update({{"type", "receive"}, {"qty", 1 + rng() % 5}});
        Answer answer = SendUntilDecided({a.port, b.port}, cmd, 90s);
        std::lock_guard lock(mu);
        if (answer.status == 200)
          acked[id] = answer.body;
        else if (answer.status == 409)
          refused[id]++;
        else
          failed = true;
        ++sent;
      }
    });
  }
  ASSERT_TRUE(WaitUntil([&] { return sent.load() >= kClients * kPerClient / 4; }, 60s));
  auto killed_at = std::chrono::steady_clock::now();
  a.process->Signal(SIGKILL);
  ASSERT_TRUE(WaitUntil([&] { return OwnedCount(b) == kPartitions; }, 60s, 10ms)) << b.process->Log();
  double takeover = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  RecordProperty("takeover_after_sigkill_seconds", std::to_string(takeover));
  std::cout << "takeover after SIGKILL (session timeout 3 s): " << takeover << " s\n";
  for (auto& t : clients) t.join();
  ASSERT_FALSE(failed.load()) << "a command was neither accepted nor refused within its budget";

  // Every acknowledged command is in the topic exactly once, where the
  // writer said it is; no event exists that was not acknowledged.
  std::map<std::string, int> events_per_id;
  OverlayState<InventoryDomain> replay;
  for (const auto& record : ReadAll(topic_, kPartitions)) {
    auto event = DecodeEventValue(record.value);
    ASSERT_TRUE(event.ok());
    events_per_id[event->id]++;
    ASSERT_TRUE(acked.count(event->id)) << "event " << event->id << " was never acknowledged";
    EXPECT_EQ(acked[event->id]["partition"], record.partition);
    EXPECT_EQ(acked[event->id]["offset"], record.offset);
    ASSERT_TRUE(replay.ApplyCommitted(*event).ok());
  }
  for (const auto& [id, ack] : acked) EXPECT_EQ(events_per_id[id], 1) << id;
  EXPECT_EQ(acked.size() + refused.size(), static_cast<size_t>(kClients * kPerClient));

  // The survivor serves exactly the state the topic rebuilds.
  HttpClient client("127.0.0.1", static_cast<uint16_t>(b.port));
  for (int s = 0; s < 16; ++s) {
    std::string store = "store-" + std::to_string(s);
    auto r = client.Get("/state/" + store + "/x");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(nlohmann::json::parse(r->body)["entity"], replay.EntityJson(store, "x")) << store;
  }
}

TEST_F(WriterFailover, ZombieOwnerCannotPublish) {
  WriterInstance a = StartWriter("a");
  ASSERT_TRUE(WaitUntil([&] { return OwnedCount(a) == kPartitions; }, 60s, 50ms)) << a.process->Log();
  HttpClient to_a("127.0.0.1", static_cast<uint16_t>(a.port));
  auto first = to_a.Post("/commands", R"({"id":"before","type":"receive","store":"s","sku":"k","qty":5})");
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->status, 200);

  a.process->Signal(SIGSTOP);
  // A command reaches the paused owner; it will only see it after resuming.
  std::atomic<int> zombie_status{-1};
  std::thread zombie_client([&] {
    auto r = to_a.Post("/commands", R"({"id":"zombie","type":"receive","store":"s","sku":"k","qty":100})");
    zombie_status = r.ok() ? r->status : 0;
  });
  WriterInstance b = StartWriter("b");
  ASSERT_TRUE(WaitUntil([&] { return OwnedCount(b) == kPartitions; }, 60s, 50ms)) << b.process->Log();
  HttpClient to_b("127.0.0.1", static_cast<uint16_t>(b.port));
  auto after = to_b.Post("/commands", R"({"id":"after","type":"sell","store":"s","sku":"k","qty":5})");
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->status, 200) << after->body;

  a.process->Signal(SIGCONT);
  zombie_client.join();
  EXPECT_NE(zombie_status.load() / 100, 2) << "the zombie acknowledged a command";

  std::map<std::string, int> ids;
  for (const auto& record : ReadAll(topic_, kPartitions)) ids[DecodeEventValue(record.value)->id]++;
  EXPECT_EQ(ids["before"], 1);
  EXPECT_EQ(ids["after"], 1);
  EXPECT_EQ(ids.count("zombie"), 0u) << "the zombie published";
  auto state = to_b.Get("/state/s/k");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(nlohmann::json::parse(state->body)["entity"]["on_hand"], 0);
}

TEST_F(WriterFailover, IdempotentRetryAcrossTakeoverProducesOneEvent) {
  WriterInstance a = StartWriter("a");
  ASSERT_TRUE(WaitUntil([&] { return OwnedCount(a) == kPartitions; }, 60s, 50ms)) << a.process->Log();
  HttpClient to_a("127.0.0.1", static_cast<uint16_t>(a.port));
  std::string body = R"({"type":"receive","store":"s1","sku":"k","qty":3})";
  auto first = to_a.Request("POST", "/commands", body, {{"Idempotency-Key", "order-42"}});
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->status, 200);
  auto ack = nlohmann::json::parse(first->body);

  a.process->Signal(SIGKILL);
  a.process->Wait(10s);
  WriterInstance b = StartWriter("b");
  ASSERT_TRUE(WaitUntil([&] { return OwnedCount(b) == kPartitions; }, 60s, 50ms)) << b.process->Log();
  HttpClient to_b("127.0.0.1", static_cast<uint16_t>(b.port));
  for (int retry = 0; retry < 2; ++retry) {
    auto again = to_b.Request("POST", "/commands", body, {{"Idempotency-Key", "order-42"}});
    ASSERT_TRUE(again.ok());
    ASSERT_EQ(again->status, 200) << again->body;
    auto j = nlohmann::json::parse(again->body);
    EXPECT_EQ(j["partition"], ack["partition"]);
    EXPECT_EQ(j["offset"], ack["offset"]);
    EXPECT_EQ(j["duplicate"], true);
  }
  int events = 0;
  for (const auto& record : ReadAll(topic_, kPartitions))
    events += DecodeEventValue(record.value)->id == "order-42";
  EXPECT_EQ(events, 1);
  auto state = to_b.Get("/state/s1/k");
  EXPECT_EQ(nlohmann::json::parse(state->body)["entity"]["on_hand"], 3);
}

TEST_F(WriterFailover, NonOwnerRedirectsToTheOwner) {
  WriterInstance a = StartWriter("a");
  ASSERT_TRUE(WaitUntil([&] { return OwnedCount(a) == kPartitions; }, 60s, 50ms)) << a.process->Log();
  WriterInstance b = StartWriter("b");
  ASSERT_TRUE(WaitUntil([&] { return OwnedCount(b) > 0 && OwnedCount(a) + OwnedCount(b) == kPartitions; },
                        60s, 50ms));
  nlohmann::json b_ready = Readyz(b);
  int32_t a_partition = -1;
  for (const auto& p : b_ready["partitions"])
    if (p["role"] != "owner") a_partition = p["partition"];
  ASSERT_GE(a_partition, 0);
  std::string store;
  for (int i = 0; store.empty(); ++i)
    if (PartitionForKey("st" + std::to_string(i), kPartitions) == a_partition)
      store = "st" + std::to_string(i);
  HttpClient to_b("127.0.0.1", static_cast<uint16_t>(b.port));
  nlohmann::json cmd = {{"type", "receive"}, {"store", store}, {"sku", "k"}, {"qty", 1}};
  ASSERT_TRUE(WaitUntil(
      [&] {  // a's claim reaches b through the owners topic
        auto r = to_b.Post("/commands", cmd.dump());
        return r.ok() && r->status == 307;
      },
      30s, 20ms));
  auto r = to_b.Post("/commands", cmd.dump());
  EXPECT_EQ(nlohmann::json::parse(r->body)["owner"], "http://127.0.0.1:" + std::to_string(a.port));
}

}  // namespace
}  // namespace freshet
