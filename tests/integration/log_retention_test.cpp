// The event topic is the writer's only copy of history. These tests check,
// on the real broker, that the writer creates it to keep every record, says
// so when someone else created it with finite retention, and refuses to
// serve a partition whose log lost its beginning instead of serving a state
// rebuilt from what is left. Also: the writer's bearer token.
#include <gtest/gtest.h>
#include <signal.h>

#include "core/envelope.h"
#include "core/http_client.h"
#include "tests/support/integration_fixture.h"
#include "tests/support/test_env.h"
#include "writer/writer.h"

namespace freshet {
namespace {

using namespace std::chrono_literals;
using namespace freshet::testing;

constexpr int kPartitions = 3;

// port_ is the port of the writer StartWriter started last.
class LogRetention : public IntegrationFixture {
 protected:
  LogRetention() : IntegrationFixture("retention") {}

  std::unique_ptr<FreshetProcess> StartWriter(const std::string& name,
                                              const std::map<std::string, std::string>& extra_env = {}) {
    port_ = FreePort();
    std::map<std::string, std::string> env = WriterEnv(name, port_, kPartitions);
    env.insert(extra_env.begin(), extra_env.end());
    return std::make_unique<FreshetProcess>(std::vector<std::string>{"writer"}, env, "writer-" + name);
  }

  Result<HttpResponse> Get(const std::string& target) {
    HttpClient client("127.0.0.1", static_cast<uint16_t>(port_));
    return client.Get(target);
  }
  Result<HttpResponse> Post(const nlohmann::json& command) {
    HttpClient client("127.0.0.1", static_cast<uint16_t>(port_));
    return client.Post("/commands", command.dump());
  }
  nlohmann::json Readyz() {
    auto r = Get("/readyz");
    if (!r.ok()) return nullptr;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    j["status"] = r->status;
    return j;
  }
  // The role each partition reports, once every partition reports one
  // other than standby / taking-over.
  std::map<int, nlohmann::json> SettledPartitions() {
    std::map<int, nlohmann::json> out;
    WaitUntil(
        [&] {
          nlohmann::json j = Readyz();
          if (j.is_null() || !j.contains("partitions")) return false;
          out.clear();
          for (const auto& p : j["partitions"]) {
            if (p["role"] == "standby" || p["role"] == "taking-over") return false;
            out[p["partition"].get<int>()] = p;
          }
          return true;
        },
        60s, 50ms);
    return out;
  }
  // A store whose commands land on `partition`.
  std::string StoreOn(int partition) {
    for (int i = 0;; ++i) {
      std::string store = "store-" + std::to_string(i);
      if (PartitionForKey(store, kPartitions) == partition) return store;
    }
  }
};

TEST_F(LogRetention, WriterCreatesTheEventTopicToKeepEveryRecord) {
  auto writer = StartWriter("keep");
  auto partitions = SettledPartitions();
  ASSERT_EQ(partitions.size(), static_cast<size_t>(kPartitions)) << writer->Log();
  auto config = DescribeTopicConfig(KafkaOptions(), topic_, 15s);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ((*config)["retention.ms"], "-1");
  EXPECT_EQ((*config)["retention.bytes"], "-1");
  EXPECT_EQ((*config)["cleanup.policy"], "delete");
  EXPECT_EQ(RetentionProblem(*config), "");
  nlohmann::json ready = Readyz();
  EXPECT_EQ(ready["status"], 200) << ready.dump();
  EXPECT_FALSE(ready.contains("topic_retention_warning")) << ready.dump();
  auto metrics = Get("/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("freshet_writer_topic_retention_finite 0"), std::string::npos)
      << metrics->body;
}

TEST_F(LogRetention, WriterWarnsWhenSomeoneElseCreatedTheTopicWithFiniteRetention) {
  ASSERT_TRUE(EnsureTopic(KafkaOptions(), topic_, kPartitions, 1, 15s, {{"retention.ms", "604800000"}}).ok());
  auto writer = StartWriter("warn");
  auto partitions = SettledPartitions();
  ASSERT_EQ(partitions.size(), static_cast<size_t>(kPartitions)) << writer->Log();
  nlohmann::json ready = Readyz();
  ASSERT_TRUE(ready.contains("topic_retention_warning")) << ready.dump();
  EXPECT_NE(ready["topic_retention_warning"].get<std::string>().find("retention.ms=604800000"),
            std::string::npos);
  auto metrics = Get("/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("freshet_writer_topic_retention_finite 1"), std::string::npos);
  EXPECT_NE(writer->Log().find("retention.ms=-1"), std::string::npos) << "the log says what to do";
}

TEST_F(LogRetention, WriterRefusesAPartitionWhoseLogLostItsBeginning) {
  const int lost = 1;
  {
    auto writer = StartWriter("before");
    ASSERT_EQ(SettledPartitions().size(), static_cast<size_t>(kPartitions)) << writer->Log();
    for (int p = 0; p < kPartitions; ++p) {
      for (int i = 0; i < 3; ++i) {
        auto r = Post({{"type", "receive"}, {"store", StoreOn(p)}, {"sku", "A"}, {"qty", 5}});
        ASSERT_TRUE(r.ok() && r->status == 200) << (r.ok() ? r->body : r.status().ToString());
      }
    }
    writer->Signal(SIGTERM);
    ASSERT_EQ(writer->Wait(30s), 0) << writer->Log();
  }
  // What retention would do a week later: the oldest records are gone.
  ASSERT_TRUE(DeleteRecordsBefore(KafkaOptions(), topic_, lost, 2, 15s).ok());
  auto consumer = Consumer::Create(KafkaOptions(), "");
  ASSERT_EQ((*consumer)->QueryWatermarks(topic_, lost, 15s)->first, 2);
  ASSERT_EQ((*consumer)->QueryWatermarks(topic_, 0, 15s)->first, 0);

  auto writer = StartWriter("after");
  auto partitions = SettledPartitions();
  ASSERT_EQ(partitions.size(), static_cast<size_t>(kPartitions)) << writer->Log();
  for (int p = 0; p < kPartitions; ++p) {
    if (p == lost) continue;
    EXPECT_EQ(partitions[p]["role"], "owner") << partitions[p].dump();
  }
  ASSERT_EQ(partitions[lost]["role"], "log-incomplete") << partitions[lost].dump();
  std::string why = partitions[lost]["error"];
  EXPECT_NE(why.find("partition 1"), std::string::npos) << why;
  EXPECT_NE(why.find("starts at offset 2"), std::string::npos) << why;
  EXPECT_NE(why.find("retention.ms=-1"), std::string::npos) << why;
  nlohmann::json ready = Readyz();
  EXPECT_EQ(ready["status"], 503) << "a writer that refuses an assigned partition is not ready";

  // Commands for the refused partition get the reason; the others are served.
  auto refused = Post({{"type", "receive"}, {"store", StoreOn(lost)}, {"sku", "A"}, {"qty", 1}});
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status, 503);
  auto body = nlohmann::json::parse(refused->body);
  EXPECT_EQ(body["log_incomplete"], true);
  EXPECT_NE(body["error"].get<std::string>().find("starts at offset 2"), std::string::npos) << refused->body;
  auto served = Post({{"type", "receive"}, {"store", StoreOn(0)}, {"sku", "A"}, {"qty", 1}});
  ASSERT_TRUE(served.ok());
  EXPECT_EQ(served->status, 200) << served->body;

  auto metrics = Get("/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("freshet_writer_log_incomplete_total 1"), std::string::npos) << metrics->body;
  EXPECT_NE(writer->Log().find("starts at offset 2"), std::string::npos);
  // Nothing was published to the refused partition after the loss.
  auto after = ReadAll(topic_, kPartitions);
  int on_lost = 0;
  for (const auto& r : after) on_lost += r.partition == lost;
  // Three commands, each its own transaction (event + marker): offsets 0-5.
  // Records 2 and 4 are left, and the refused partition took nothing new.
  EXPECT_EQ(on_lost, 2);
}

// With writer.token set, commands and state need it; probes do not.
TEST_F(LogRetention, WriterTokenGuardsCommandsAndStateNotProbes) {
  auto writer = StartWriter("token", {{"FRESHET_WRITER_TOKEN", "s3cret"}});
  ASSERT_EQ(SettledPartitions().size(), static_cast<size_t>(kPartitions)) << writer->Log();
  HttpClient client("127.0.0.1", static_cast<uint16_t>(port_));
  std::string command = R"({"type": "receive", "store": "s1", "sku": "A", "qty": 1})";
  auto missing = client.Post("/commands", command);
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 401);
  EXPECT_NE(nlohmann::json::parse(missing->body)["error"].get<std::string>().find("a token is required"),
            std::string::npos);
  auto wrong = client.Request("POST", "/commands", command, {{"Authorization", "Bearer nope"}});
  ASSERT_TRUE(wrong.ok());
  EXPECT_EQ(wrong->status, 401);
  EXPECT_EQ(nlohmann::json::parse(wrong->body)["error"], "wrong token");
  auto state = client.Get("/state/s1/A");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->status, 401);
  EXPECT_TRUE(ReadAll(topic_, kPartitions).empty()) << "a refused command publishes nothing";

  auto right = client.Request("POST", "/commands", command, {{"Authorization", "Bearer s3cret"}});
  ASSERT_TRUE(right.ok());
  EXPECT_EQ(right->status, 200) << right->body;
  auto read = client.Request("GET", "/state/s1/A", "", {{"Authorization", "Bearer s3cret"}});
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->status, 200) << read->body;
  EXPECT_EQ(Get("/readyz")->status, 200);
  EXPECT_EQ(Get("/metrics")->status, 200);
}

}  // namespace
}  // namespace freshet
