// `freshet demo-load` against real writers that come and go: it retries each
// command with the same idempotency key while a writer restarts (or is not
// up yet), follows 307s to the owner of a partition, says how many retries
// it made, and the topic then holds every accepted command exactly once.
// Its stores cover every partition.
#include <gtest/gtest.h>
#include <signal.h>

#include <regex>
#include <set>
#include <thread>

#include "core/envelope.h"
#include "core/http_client.h"
#include "tests/support/integration_fixture.h"
#include "tests/support/test_env.h"

namespace freshet {
namespace {

using namespace std::chrono_literals;
using namespace freshet::testing;

constexpr int kPartitions = 4;

struct Summary {
  int64_t accepted = -1, retries = -1, redirects = -1;
};

// The figures of demo-load's closing lines.
Summary ParseSummary(const std::string& output) {
  Summary s;
  std::smatch m;
  if (std::regex_search(output, m, std::regex(R"(demo-load: (\d+) accepted)"))) s.accepted = std::stoll(m[1]);
  if (std::regex_search(output, m, std::regex(R"(demo-load: retries: (\d+), redirects followed: (\d+))"))) {
    s.retries = std::stoll(m[1]);
    s.redirects = std::stoll(m[2]);
  }
  return s;
}

class DemoLoad : public IntegrationFixture {
 protected:
  DemoLoad() : IntegrationFixture("demoload") {}

  static nlohmann::json Readyz(int port) {
    HttpClient c("127.0.0.1", static_cast<uint16_t>(port), 5s);
    auto r = c.Get("/readyz");
    if (!r.ok()) return nullptr;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (j.is_discarded()) return nullptr;
    j["status"] = r->status;
    return j;
  }
  static int Owned(int port) {
    nlohmann::json j = Readyz(port);
    if (j.is_null() || j["status"] != 200) return -1;
    int owned = 0;
    for (const auto& p : j["partitions"]) owned += p["role"] == "owner";
    return owned;
  }
  // Events in the topic so far, by the owner's applied offsets.
  static int64_t Applied(int port) {
    nlohmann::json j = Readyz(port);
    if (j.is_null()) return 0;
    int64_t n = 0;
    for (const auto& p : j["partitions"]) n += p["offset"].get<int64_t>() + 1;
    return n;
  }

  // Every accepted command is in the topic once: as many events as accepted
  // commands, no idempotency key twice, and every partition has events.
  void ExpectTopicHoldsEachAcceptedCommandOnce(const Summary& summary) {
    auto events = ReadAll(topic_, kPartitions);
    EXPECT_EQ(static_cast<int64_t>(events.size()), summary.accepted);
    std::set<std::string> ids;
    std::set<int32_t> partitions;
    for (const auto& record : events) {
      auto event = DecodeEventValue(record.value);
      ASSERT_TRUE(event.ok()) << record.value;
      EXPECT_FALSE(event->id.empty()) << "demo-load gives every command an id: " << record.value;
      EXPECT_TRUE(ids.insert(event->id).second)
          << "idempotency key " << event->id << " is in the topic twice";
      partitions.insert(record.partition);
    }
    EXPECT_EQ(partitions.size(), static_cast<size_t>(kPartitions))
        << "the demo's stores must cover every partition";
  }
};

// A writer SIGTERMed and restarted on the same port in the middle of the
// run: demo-load rides it out ("Connection refused", 503 while the new one
// takes its partitions), exits 0 and reports its retries.
TEST_F(DemoLoad, RetriesThroughAWriterRestartAndPublishesEachCommandOnce) {
  int port = FreePort();
  auto writer = std::make_unique<FreshetProcess>(std::vector<std::string>{"writer"},
                                                 WriterEnv("w", port, kPartitions), "demoload-w1");
  ASSERT_TRUE(WaitUntil([&] { return Owned(port) == kPartitions; }, 60s, 50ms)) << writer->Log();

  constexpr int kStores = 4, kSkus = 20;
  FreshetProcess load(
      {"demo-load", "--writer", "http://127.0.0.1:" + std::to_string(port), "--stores",
       std::to_string(kStores), "--skus", std::to_string(kSkus), "--commands", "4000", "--clients", "2"},
      {}, "demoload-load");
  // Restart once the random commands are flowing.
  ASSERT_TRUE(WaitUntil([&] { return Applied(port) >= kStores * kSkus + 200; }, 60s, 20ms)) << load.Log();
  ASSERT_TRUE(load.running()) << "demo-load finished before the restart; give it more commands\n"
                              << load.Log();
  writer->Signal(SIGTERM);
  ASSERT_EQ(writer->Wait(30s), 0) << writer->Log();
  std::this_thread::sleep_for(1s);  // nobody listens: connections are refused
  ASSERT_TRUE(load.running()) << "demo-load gave up while the writer was down\n" << load.Log();
  writer = std::make_unique<FreshetProcess>(std::vector<std::string>{"writer"},
                                            WriterEnv("w", port, kPartitions), "demoload-w2");

  ASSERT_EQ(load.Wait(180s), 0) << load.Log() << "\n" << writer->Log();
  Summary summary = ParseSummary(load.Log());
  ASSERT_GE(summary.accepted, kStores * kSkus) << load.Log();
  EXPECT_GT(summary.retries, 0) << load.Log();
  EXPECT_NE(load.Log().find("4 stores (store-01"), std::string::npos) << load.Log();
  EXPECT_NE(load.Log().find("on 4 of 4 partitions"), std::string::npos) << load.Log();
  ExpectTopicHoldsEachAcceptedCommandOnce(summary);
}

// demo-load started before the writer: it waits for it instead of failing.
TEST_F(DemoLoad, WaitsForAWriterThatIsNotUpYet) {
  int port = FreePort();
  FreshetProcess load({"demo-load", "--writer", "http://127.0.0.1:" + std::to_string(port), "--stores", "4",
                       "--skus", "10", "--commands", "200", "--clients", "2"},
                      {}, "demoload-early");
  std::this_thread::sleep_for(2s);
  ASSERT_TRUE(load.running()) << load.Log();
  FreshetProcess writer({"writer"}, WriterEnv("w", port, kPartitions), "demoload-late-writer");
  ASSERT_EQ(load.Wait(120s), 0) << load.Log() << "\n" << writer.Log();
  Summary summary = ParseSummary(load.Log());
  EXPECT_GT(summary.retries, 0) << load.Log();
  ExpectTopicHoldsEachAcceptedCommandOnce(summary);
}

// Two writers share the partitions; demo-load talks to one and follows its
// 307s to the other for the partitions it does not own.
TEST_F(DemoLoad, FollowsRedirectsToThePartitionsOwner) {
  int a = FreePort();
  FreshetProcess writer_a({"writer"}, WriterEnv("a", a, kPartitions), "demoload-a");
  ASSERT_TRUE(WaitUntil([&] { return Owned(a) == kPartitions; }, 60s, 50ms)) << writer_a.Log();
  int b = FreePort();
  FreshetProcess writer_b({"writer"}, WriterEnv("b", b, kPartitions), "demoload-b");
  ASSERT_TRUE(WaitUntil([&] { return Owned(a) > 0 && Owned(b) > 0 && Owned(a) + Owned(b) == kPartitions; },
                        60s, 50ms))
      << writer_b.Log();
  // b's claims reach a through the owners topic: a redirects instead of 503.
  ASSERT_TRUE(WaitUntil(
      [&] {
        HttpClient c("127.0.0.1", static_cast<uint16_t>(a), 5s);
        for (int s = 1; s <= 40; ++s) {
          char store[16];
          std::snprintf(store, sizeof(store), "store-%02d", s);
          auto r = c.Post(
              "/commands",
              nlohmann::json{{"type", "receive"}, {"store", store}, {"sku", "probe"}, {"qty", 1}}.dump());
          if (r.ok() && r->status == 307) return true;
        }
        return false;
      },
      30s, 100ms));
  auto before = ReadAll(topic_, kPartitions).size();

  auto r = RunFreshet({"demo-load", "--writer", "http://127.0.0.1:" + std::to_string(a), "--stores", "4",
                       "--skus", "10", "--commands", "200", "--clients", "2"},
                      {}, 120s);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  Summary summary = ParseSummary(r.output);
  EXPECT_GT(summary.redirects, 0) << r.output;
  auto events = ReadAll(topic_, kPartitions);
  EXPECT_EQ(static_cast<int64_t>(events.size() - before), summary.accepted) << r.output;
  std::set<std::string> ids;
  for (const auto& record : events) {
    auto event = DecodeEventValue(record.value);
    ASSERT_TRUE(event.ok());
    if (event->id.rfind("demo-", 0) == 0) {
      EXPECT_TRUE(ids.insert(event->id).second)
          << "idempotency key " << event->id << " is in the topic twice";
    }
  }
  EXPECT_EQ(static_cast<int64_t>(ids.size()), summary.accepted);
}

}  // namespace
}  // namespace freshet
