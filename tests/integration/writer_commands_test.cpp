// Commands through the real freshet binary, end to end: a command accepted
// over HTTP by `freshet writer` shows up as a row that `freshet views` wrote
// into Postgres; a refused command or bad input publishes nothing; a batch
// is answered command by command; a restarted writer recovers its state
// from the log.
#include <gtest/gtest.h>
#include <signal.h>

#include "core/envelope.h"
#include "core/http_client.h"
#include "tests/support/integration_fixture.h"
#include "tests/support/test_env.h"

namespace freshet {
namespace {

using namespace std::chrono_literals;
using namespace freshet::testing;

constexpr int kPartitions = 2;

// One writer and, where a test starts one, one view process, sharing env_.
class WriterCommands : public IntegrationFixture {
 protected:
  WriterCommands() : IntegrationFixture("commands") {}

  void SetUp() override {
    CreateDatabase();
    writer_port_ = FreePort();
    env_["FRESHET_KAFKA_PARTITIONS"] = std::to_string(kPartitions);
    env_["FRESHET_WRITER_LISTEN"] = Loopback(writer_port_);
    env_["FRESHET_VIEWS_FLUSH_INTERVAL_MS"] = "20";
    writer_ = std::make_unique<FreshetProcess>(std::vector<std::string>{"writer"}, env_, "writer");
    client_ = std::make_unique<HttpClient>("127.0.0.1", writer_port_);
    bool ready = WaitUntil(
        [&] {
          auto r = client_->Get("/readyz");
          return r.ok() && r->status == 200;
        },
        60s, 50ms);
    ASSERT_TRUE(ready) << writer_->Log();
  }

  nlohmann::json Post(const nlohmann::json& body, int expected_status) {
    auto r = client_->Post("/commands", body.dump());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return nullptr;
    EXPECT_EQ(r->status, expected_status) << r->body;
    EXPECT_EQ(r->content_type, "application/json");
    return nlohmann::json::parse(r->body);
  }

  std::optional<int64_t> OnHand(const std::string& store, const std::string& sku) {
    pqxx::connection conn(db_url_);
    pqxx::nontransaction tx(conn);
    auto exists = tx.exec("SELECT to_regclass('public.stock_levels') IS NOT NULL");
    if (!exists[0][0].as<bool>()) return std::nullopt;
    auto r = tx.exec_params("SELECT on_hand FROM stock_levels WHERE store = $1 AND sku = $2", store, sku);
    if (r.empty()) return std::nullopt;
    return r[0][0].as<int64_t>();
  }

  std::vector<ReadRecord> Events() { return ReadAll(topic_, kPartitions); }

  int writer_port_ = 0;
  std::unique_ptr<FreshetProcess> writer_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(WriterCommands, AcceptedCommandBecomesAPostgresRow) {
  nlohmann::json ack = Post({{"type", "receive"}, {"store", "store-1"}, {"sku", "A-1"}, {"qty", 10}}, 200);
  EXPECT_EQ(ack["partition"], PartitionForKey("store-1", kPartitions));
  ASSERT_GE(ack["offset"].get<int64_t>(), 0);

  // The event is in the topic at the acknowledged (partition, offset).
  auto events = Events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].partition, ack["partition"]);
  EXPECT_EQ(events[0].offset, ack["offset"]);
  EXPECT_EQ(events[0].key, "store-1");
  auto event = DecodeEventValue(events[0].value);
  ASSERT_TRUE(event.ok());
  EXPECT_EQ(event->type, "StockReceived");

  FreshetProcess views({"views"}, env_, "views");
  ASSERT_TRUE(WaitUntil([&] { return OnHand("store-1", "A-1") == 10; }, 60s, 50ms)) << views.Log();

  Post({{"type", "sell"}, {"store", "store-1"}, {"sku", "A-1"}, {"qty", 4}}, 200);
  ASSERT_TRUE(WaitUntil([&] { return OnHand("store-1", "A-1") == 6; }, 30s, 20ms)) << views.Log();

  // The writer serves its own state from memory.
  auto state = client_->Get("/state/store-1/A-1");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->status, 200);
  EXPECT_EQ(nlohmann::json::parse(state->body)["entity"]["on_hand"], 6);

  views.Signal(SIGTERM);
  EXPECT_EQ(views.Wait(30s), 0) << views.Log();
}

TEST_F(WriterCommands, BatchAnswersEachCommandInItsPlace) {
  nlohmann::json batch = nlohmann::json::array(
      {{{"type", "receive"}, {"store", "store-3"}, {"sku", "C"}, {"qty", 2}, {"id", "first"}},
       {{"type", "sell"}, {"store", "store-3"}, {"sku", "C"}, {"qty", 5}},
       {{"type", "receive"}, {"store", "store-4"}, {"sku", "D"}, {"qty", 1}},
       {{"type", "receive"}, {"store", "store-3"}, {"sku", "C"}, {"qty", 2}, {"id", "first"}}});
  nlohmann::json answer = Post(batch, 200);
  ASSERT_TRUE(answer["results"].is_array()) << answer;
  ASSERT_EQ(answer["results"].size(), 4u) << answer;
  const nlohmann::json& r = answer["results"];

  EXPECT_EQ(r[0]["status"], 200) << r[0];
  EXPECT_GE(r[0]["offset"].get<int64_t>(), 0) << r[0];
  EXPECT_FALSE(r[0].contains("duplicate")) << r[0];
  EXPECT_EQ(r[1]["status"], 409) << r[1];
  EXPECT_EQ(r[1]["refused"], true) << r[1];
  EXPECT_NE(r[1]["error"].get<std::string>().find("insufficient stock"), std::string::npos) << r[1];
  EXPECT_EQ(r[2]["status"], 200) << r[2];
  // The retry of "first" in the same batch is answered with its position.
  EXPECT_EQ(r[3]["status"], 200) << r[3];
  EXPECT_EQ(r[3]["duplicate"], true) << r[3];
  EXPECT_EQ(r[3]["offset"], r[0]["offset"]) << answer;
  EXPECT_EQ(r[3]["partition"], r[0]["partition"]) << answer;

  EXPECT_EQ(Events().size(), 2u) << "one event per accepted command, none for the refusal or the retry";
}

TEST_F(WriterCommands, CommandBelowZeroIsRefusedAndPublishesNothing) {
  Post({{"type", "receive"}, {"store", "store-2"}, {"sku", "B"}, {"qty", 3}}, 200);
  nlohmann::json refusal = Post({{"type", "sell"}, {"store", "store-2"}, {"sku", "B"}, {"qty", 4}}, 409);
  EXPECT_EQ(refusal["refused"], true);
  EXPECT_NE(refusal["error"].get<std::string>().find("insufficient stock"), std::string::npos) << refusal;

  auto events = Events();
  ASSERT_EQ(events.size(), 1u) << "a refused command must not publish an event";
  EXPECT_EQ(DecodeEventValue(events[0].value)->type, "StockReceived");

  auto state = client_->Get("/state/store-2/B");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(nlohmann::json::parse(state->body)["entity"]["on_hand"], 3);
}

TEST_F(WriterCommands, BadInputGets4xxAndLosesNothing) {
  Post({{"type", "receive"}, {"store", "s"}, {"sku", "k"}, {"qty", 5}}, 200);

  auto malformed = client_->Post("/commands", "{not json");
  ASSERT_TRUE(malformed.ok());
  EXPECT_EQ(malformed->status, 400);
  EXPECT_TRUE(nlohmann::json::parse(malformed->body).contains("error"));

  nlohmann::json unknown = Post({{"type", "teleport"}, {"store", "s"}, {"sku", "k"}}, 400);
  EXPECT_NE(unknown["error"].get<std::string>().find("teleport"), std::string::npos);

  nlohmann::json missing = Post({{"type", "sell"}, {"store", "s"}, {"sku", "k"}}, 400);
  EXPECT_NE(missing["error"].get<std::string>().find("qty"), std::string::npos);

  // One bad command in a batch: the whole batch is refused, nothing published.
  nlohmann::json batch =
      nlohmann::json::array({{{"type", "receive"}, {"store", "s"}, {"sku", "k"}, {"qty", 1}},
                             {{"type", "sell"}, {"store", "s"}, {"sku", "k"}}});
  nlohmann::json bad_batch = Post(batch, 400);
  EXPECT_NE(bad_batch["error"].get<std::string>().find("commands[1].qty"), std::string::npos) << bad_batch;

  auto wrong_method = client_->Get("/commands");
  ASSERT_TRUE(wrong_method.ok());
  EXPECT_EQ(wrong_method->status, 405);

  auto oversized = client_->Post("/commands", std::string(2 << 20, ' '));
  ASSERT_TRUE(oversized.ok());
  EXPECT_EQ(oversized->status, 413);

  EXPECT_EQ(Events().size(), 1u);
  HttpClient fresh("127.0.0.1", writer_port_);
  auto state = fresh.Get("/state/s/k");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(nlohmann::json::parse(state->body)["entity"]["on_hand"], 5);
}

// POST /commands takes JSON: Content-Type application/json (any charset) or
// none; a form-encoded body (what `curl -d` sends without -H) or any other
// type is refused with 415 and a JSON reason, and publishes nothing. A
// 100 kB URL is a 414.
TEST_F(WriterCommands, CommandsTakeJsonOrUntypedBodiesAndRefuseOtherTypesWith415) {
  const std::string command = R"({"type":"receive","store":"ct","sku":"k","qty":1})";
  for (const char* accepted : {"application/json", "application/json; charset=utf-8", ""}) {
    auto r = client_->Request("POST", "/commands", command, {{"Content-Type", accepted}});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 200) << "Content-Type '" << accepted << "': " << r->body;
  }
  for (const char* refused :
       {"application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=b"}) {
    auto r = client_->Request("POST", "/commands", command, {{"Content-Type", refused}});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 415) << refused << ": " << r->body;
    EXPECT_EQ(r->content_type, "application/json");
    auto reason = nlohmann::json::parse(r->body);
    EXPECT_NE(reason["error"].get<std::string>().find("application/json"), std::string::npos) << r->body;
  }
  EXPECT_EQ(Events().size(), 3u) << "one event per accepted command, none for a refused type";
  auto state = client_->Get("/state/ct/k");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(nlohmann::json::parse(state->body)["entity"]["on_hand"], 3);

  auto long_url = client_->Get("/state/ct/" + std::string(100 * 1024, 'k'));
  ASSERT_TRUE(long_url.ok()) << long_url.status().ToString();
  EXPECT_EQ(long_url->status, 414) << long_url->body;
  EXPECT_TRUE(nlohmann::json::parse(long_url->body).contains("error"));
}

TEST_F(WriterCommands, RestartedWriterRecoversItsStateFromTheLog) {
  Post({{"type", "receive"}, {"store", "s9"}, {"sku", "z"}, {"qty", 7}}, 200);
  Post({{"type", "reserve"}, {"store", "s9"}, {"sku", "z"}, {"qty", 2}}, 200);
  writer_->Signal(SIGTERM);
  ASSERT_EQ(writer_->Wait(30s), 0) << writer_->Log();

  writer_ = std::make_unique<FreshetProcess>(std::vector<std::string>{"writer"}, env_, "writer");
  client_ = std::make_unique<HttpClient>("127.0.0.1", writer_port_);
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto r = client_->Get("/readyz");
        return r.ok() && r->status == 200;
      },
      60s, 50ms))
      << writer_->Log();
  // Only 5 are available: selling 6 must be refused by the recovered state.
  Post({{"type", "sell"}, {"store", "s9"}, {"sku", "z"}, {"qty", 6}}, 409);
  Post({{"type", "sell"}, {"store", "s9"}, {"sku", "z"}, {"qty", 5}}, 200);
}

}  // namespace
}  // namespace freshet
