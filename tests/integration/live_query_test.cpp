// Live SQL over WebSocket against the real view process and Postgres: a
// subscribed query gets its result, then a diff when a change touches a row
// it selects and nothing for a change it does not select; anything but a
// read-only SELECT is refused, a slow query is cancelled, and the socket
// stays usable after each error.
#include <gtest/gtest.h>

#include "core/envelope.h"
#include "core/http_client.h"
#include "tests/support/integration_fixture.h"
#include "tests/support/test_env.h"
#include "tests/support/ws_client.h"

namespace freshet {
namespace {

using namespace std::chrono_literals;
using namespace freshet::testing;

constexpr int kPartitions = 2;

class LiveQueryTest : public IntegrationFixture {
 protected:
  LiveQueryTest() : IntegrationFixture("live") {}

  void SetUp() override {
    ASSERT_TRUE(CreateTopicAndDatabase(kPartitions));
    config_path_ = WriteViewsConfig(R"([
      {"name": "stock", "kind": "aggregate", "group_by": {"store": "/store", "sku": "/sku"},
       "aggregates": {"on_hand": {"fn": "sum", "from": "/delta", "type": "bigint"}}}])");
    env_["FRESHET_VIEWS_FLUSH_INTERVAL_MS"] = "20";
    env_["FRESHET_VIEWS_SQL_STATEMENT_TIMEOUT_MS"] = "300";
    producer_ = std::move(TransactionalProducer::Create(KafkaOptions(), UniqueName("live-producer")).value());
    ASSERT_TRUE(producer_->InitTransactions(30s).ok());
  }

  // One committed event; returns its (partition, offset).
  std::pair<int32_t, int64_t> Change(const std::string& store, const std::string& sku, int64_t delta) {
    DeliveryReport report;
    EXPECT_TRUE(producer_->Begin().ok());
    Event e{"StockAdjusted", "", NowMillis(), {{"store", store}, {"sku", sku}, {"delta", delta}}};
    EXPECT_TRUE(
        producer_
            ->Produce({topic_, PartitionForKey(store, kPartitions), store, EncodeEventValue(e), {}}, &report)
            .ok());
    EXPECT_TRUE(producer_->Commit(30s).ok());
    stock_[{store, sku}] += delta;
    return {report.partition, report.offset};
  }

  bool Applied(std::pair<int32_t, int64_t> at) {
    HttpClient client("127.0.0.1", static_cast<uint16_t>(port_), 5s);
    auto r = client.Get("/views/stock/status");
    if (!r.ok() || r->status != 200) return false;
    auto offsets = nlohmann::json::parse(r->body)["next_offsets"];
    auto p = std::to_string(at.first);
    return offsets.contains(p) && offsets[p].get<int64_t>() > at.second;
  }

  // The next message that is not a heartbeat-like extra; fails the test on timeout.
  nlohmann::json Next(WsClient& ws, std::chrono::milliseconds timeout = 10s) {
    auto m = ws.Next(timeout);
    EXPECT_TRUE(m) << "no message within " << timeout.count() << " ms";
    return m ? *m : nlohmann::json::object();
  }

  std::string Query(const std::string& sql, const std::vector<std::string>& key = {"store", "sku"}) {
    return nlohmann::json{{"sql", sql}, {"key", key}, {"min_interval_ms", 20}}.dump();
  }

  std::string config_path_;
  std::unique_ptr<TransactionalProducer> producer_;
  std::map<std::pair<std::string, std::string>, int64_t> stock_;
};

TEST_F(LiveQueryTest, DiffsForSelectedRowsOnlyAndClearRefusals) {
  for (int i = 0; i < 5; ++i) Change("s1", "k" + std::to_string(i), 10 + i);
  auto last = Change("s2", "k0", 7);
  FreshetProcess views({"views", "--config", config_path_}, env_, "live-views");
  ASSERT_TRUE(WaitUntil([&] { return Applied(last); }, 90s, 50ms)) << views.Log();

  auto ws = WsClient::Connect(static_cast<uint16_t>(port_), "/sql/feed");
  ASSERT_TRUE(ws) << views.Log();
  ws->Send(Query("SELECT store, sku, on_hand FROM stock WHERE store = 's1' ORDER BY sku"));
  nlohmann::json result = Next(*ws);
  ASSERT_EQ(result["type"], "result") << result;
  EXPECT_EQ(result["columns"], nlohmann::json::array({"store", "sku", "on_hand"}));
  ASSERT_EQ(result["rows"].size(), 5u);
  for (const auto& row : result["rows"])
    EXPECT_EQ(row["on_hand"].get<int64_t>(), (stock_[{"s1", row["sku"].get<std::string>()}])) << row;
  // The result says which offsets of the view it reflects.
  ASSERT_TRUE(result["views"].contains("stock")) << result;
  EXPECT_GT(result["views"]["stock"][std::to_string(last.first)].get<int64_t>(), last.second) << result;

  // A change the query does not select sends nothing; one it selects sends
  // exactly that row as changed, with offsets past the change.
  auto other = Change("s2", "k0", 1);
  ASSERT_TRUE(WaitUntil([&] { return Applied(other); }, 30s, 20ms));
  auto mine = Change("s1", "k3", -4);
  nlohmann::json diff = Next(*ws);
  ASSERT_EQ(diff["type"], "diff") << diff;
  EXPECT_TRUE(diff["added"].empty()) << diff;
  EXPECT_TRUE(diff["removed"].empty()) << diff;
  ASSERT_EQ(diff["changed"].size(), 1u) << diff;
  EXPECT_EQ(diff["changed"][0],
            (nlohmann::json{{"store", "s1"}, {"sku", "k3"}, {"on_hand", stock_[{"s1", "k3"}]}}));
  EXPECT_GT(diff["views"]["stock"][std::to_string(mine.first)].get<int64_t>(), mine.second) << diff;

  // Added and removed rows: a new SKU appears, one the filter drops goes.
  Change("s1", "k9", 3);
  nlohmann::json added = Next(*ws);
  ASSERT_EQ(added["type"], "diff") << added;
  EXPECT_EQ(added["added"], nlohmann::json::array({{{"store", "s1"}, {"sku", "k9"}, {"on_hand", 3}}}));

  // Refusals, each with a reason; the socket stays open for the next query.
  struct Case {
    std::string message, reason;
  };
  for (const Case& c : std::vector<Case>{
           {Query("DELETE FROM stock"), "only a single SELECT is allowed"},
           {Query("SELECT * FROM stock; DELETE FROM stock"), "only a single statement"},
           {Query("SELECT nextval('freshet_test_seq') AS store, 1 AS sku"), "permission denied"},
           {Query("SELECT set_config('role', 'postgres', false) AS store, 1 AS sku"), "permission denied"},
           {Query("SELECT view_name AS store, topic AS sku FROM freshet.offsets"), "permission denied"},
           {Query("SELECT pg_sleep(2)::text AS store, 1 AS sku"),
            "query cancelled: it ran longer than 300 ms"},
           {Query("SELECT store FROM stock"), "key: the result has no column \"sku\""},
           {R"({"sql": "SELECT 1"})", "key: required"},
           {"{not json", "expected a JSON object"},
       }) {
    if (c.reason == "permission denied" && c.message.find("nextval") != std::string::npos) {
      pqxx::connection admin(db_url_);
      pqxx::nontransaction tx(admin);
      tx.exec("CREATE SEQUENCE IF NOT EXISTS public.freshet_test_seq");
    }
    ws->Send(c.message);
    nlohmann::json error = Next(*ws);
    EXPECT_EQ(error["type"], "error") << c.message << ": " << error;
    EXPECT_NE(error.value("error", "").find(c.reason), std::string::npos) << c.message << ": " << error;
  }
  ws->Send(Query("SELECT store, sku, on_hand FROM stock WHERE store = 's2'"));
  nlohmann::json again = Next(*ws);
  ASSERT_EQ(again["type"], "result") << again;
  EXPECT_EQ(again["rows"], nlohmann::json::array({{{"store", "s2"}, {"sku", "k0"}, {"on_hand", 8}}}));

  // Nothing was written by any of it.
  pqxx::connection admin(db_url_);
  pqxx::nontransaction tx(admin);
  EXPECT_EQ(tx.exec("SELECT count(*) FROM stock")[0][0].as<int>(), 7);

  // Other endpoints refuse bad upgrades clearly.
  int status = 0;
  std::string body;
  EXPECT_FALSE(WsClient::Connect(static_cast<uint16_t>(port_), "/nowhere", {}, &status, &body));
  EXPECT_EQ(status, 404);
  EXPECT_NE(body.find("no WebSocket endpoint"), std::string::npos) << body;

  // Clients come and go: each new session is served while the ended ones'
  // threads are joined, and the process still stops at once on SIGTERM
  // with a client connected (its session thread joined, not left behind).
  ws.reset();
  for (int i = 0; i < 3; ++i) {
    auto next = WsClient::Connect(static_cast<uint16_t>(port_), "/sql/feed");
    ASSERT_TRUE(next) << views.Log();
    next->Send(Query("SELECT store, sku, on_hand FROM stock WHERE store = 's2'"));
    EXPECT_EQ(Next(*next)["type"], "result") << i;
  }
  auto connected = WsClient::Connect(static_cast<uint16_t>(port_), "/sql/feed");
  ASSERT_TRUE(connected) << views.Log();
  connected->Send(Query("SELECT store, sku, on_hand FROM stock WHERE store = 's2'"));
  EXPECT_EQ(Next(*connected)["type"], "result");
  views.Signal(SIGTERM);
  EXPECT_EQ(views.Wait(20s), 0) << views.Log();
}

}  // namespace
}  // namespace freshet
