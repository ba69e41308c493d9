// The view process rides out its stores going away mid-stream: a Postgres
// crash-restart and a Kafka broker crash-restart lose and double nothing,
// and two view processes sharing the partitions write exactly the
// reference between them. Row by row against what was committed.
#include <gtest/gtest.h>

#include "core/http_client.h"
#include "tests/support/integration_fixture.h"
#include "tests/support/test_env.h"

namespace freshet {
namespace {

using namespace std::chrono_literals;
using namespace freshet::testing;

constexpr int kPartitions = 4;

class ViewResilience : public IntegrationFixture {
 protected:
  ViewResilience() : IntegrationFixture("resilience") {}

  void SetUp() override {
    ASSERT_TRUE(CreateTopicAndDatabase(kPartitions));
    env_["FRESHET_VIEWS_FLUSH_INTERVAL_MS"] = "5";
    env_["FRESHET_VIEWS_MAX_BATCH_ROWS"] = "150";
    env_["FRESHET_VIEWS_SESSION_TIMEOUT_MS"] = "2000";
    env_["FRESHET_LOG_LEVEL"] = "warn";
  }

  std::map<std::string, std::string> EnvWithPort(int port) {
    auto env = env_;
    env["FRESHET_VIEWS_LISTEN"] = Loopback(port);
    return env;
  }

  void ExpectReference(const DeltaStream& stream) {
    auto actual = StockLevels(db_url_);
    ASSERT_EQ(actual.size(), stream.reference.size());
    for (const auto& [key, expected] : stream.reference)
      EXPECT_EQ(actual[key], expected) << key.first << "/" << key.second;
  }
};

TEST_F(ViewResilience, PostgresCrashRestartMidStreamLosesAndDoublesNothing) {
  DeltaStream stream = ProduceDeltaStream(topic_, kPartitions, 60000);
  FreshetProcess views({"views"}, EnvWithPort(0), "resilience-pg");
  ASSERT_TRUE(WaitUntil([&] { return StoredProgress(db_url_) >= stream.final_progress() / 4; }, 120s, 1ms))
      << views.Log();
  ASSERT_LT(StoredProgress(db_url_), stream.final_progress()) << "the stream finished before the restart";
  ASSERT_TRUE(RunServicesScript("pg-restart --hard"));  // immediate shutdown: a crash, then recovery
  ASSERT_TRUE(WaitUntil([&] { return StoredProgress(db_url_) >= stream.final_progress(); }, 180s, 20ms))
      << views.Log();
  EXPECT_TRUE(views.running()) << views.Log();
  ExpectReference(stream);
}

TEST_F(ViewResilience, BrokerCrashRestartMidStreamLosesAndDoublesNothing) {
  DeltaStream stream = ProduceDeltaStream(topic_, kPartitions, 60000);
  FreshetProcess views({"views"}, EnvWithPort(0), "resilience-kafka");
  ASSERT_TRUE(WaitUntil([&] { return StoredProgress(db_url_) >= stream.final_progress() / 4; }, 120s, 1ms))
      << views.Log();
  ASSERT_LT(StoredProgress(db_url_), stream.final_progress()) << "the stream finished before the restart";
  ASSERT_TRUE(RunServicesScript("kafka-restart --hard"));  // SIGKILL the broker, start it again
  ASSERT_TRUE(WaitUntil([&] { return StoredProgress(db_url_) >= stream.final_progress(); }, 180s, 20ms))
      << views.Log();
  EXPECT_TRUE(views.running()) << views.Log();
  ExpectReference(stream);
}

TEST_F(ViewResilience, TwoProcessesShareThePartitionsAndWriteExactlyTheReference) {
  int port_a = FreePort(), port_b = FreePort();
  FreshetProcess a({"views"}, EnvWithPort(port_a), "resilience-a");
  FreshetProcess b({"views"}, EnvWithPort(port_b), "resilience-b");
  auto owned = [](int port) {
    HttpClient c("127.0.0.1", static_cast<uint16_t>(port), 5s);
    auto r = c.Get("/views/stock_levels/status");
    if (!r.ok() || r->status != 200) return -1;
    return static_cast<int>(nlohmann::json::parse(r->body)["next_offsets"].size());
  };
  DeltaStream stream = ProduceDeltaStream(topic_, kPartitions, 30000);
  ASSERT_TRUE(WaitUntil([&] { return StoredProgress(db_url_) >= stream.final_progress(); }, 180s, 20ms))
      << a.Log() << b.Log();
  ExpectReference(stream);
  // Both took part: the group split the partitions between them.
  EXPECT_GT(owned(port_a), 0) << a.Log();
  EXPECT_GT(owned(port_b), 0) << b.Log();
  EXPECT_EQ(owned(port_a) + owned(port_b), kPartitions);
}

}  // namespace
}  // namespace freshet
