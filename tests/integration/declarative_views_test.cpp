// Declarative views end to end with the real `freshet views` process:
// rows equal a reference computed from the committed events, poison events
// land in the dead-letter topic with their reason while the good events
// around them are materialized, and the SQL side works as documented
// (await_offset, the read-only role, NOTIFY on flush).
#include <gtest/gtest.h>
#include <signal.h>

#include <random>
#include <set>
#include <thread>

#include "core/envelope.h"
#include "core/http_client.h"
#include "tests/support/integration_fixture.h"
#include "tests/support/test_env.h"
#include "tests/support/ws_client.h"

namespace freshet {
namespace {

using namespace std::chrono_literals;
using namespace freshet::testing;

constexpr int kPartitions = 3;

const char* kDefinitions = R"([
  {"name": "stock_on_hand", "kind": "latest",
   "key": {"store": "/store", "sku": "/sku"},
   "columns": {"on_hand": {"from": "/on_hand", "type": "bigint"}}},
  {"name": "low_stock", "kind": "latest",
   "key": {"store": "/store", "sku": "/sku"},
   "columns": {"on_hand": {"from": "/on_hand", "type": "bigint"}},
   "where": {"field": "/on_hand", "op": "<", "value": 5}},
  {"name": "sales_per_store", "kind": "aggregate", "event_types": ["StockSold"],
   "group_by": {"store": "/store"},
   "aggregates": {"units": {"fn": "sum", "from": "/qty"}, "sales": {"fn": "count"},
                  "biggest": {"fn": "max", "from": "/qty"}, "avg_qty": {"fn": "avg", "from": "/qty"}},
   "freshness": {"flush_interval_ms": 20, "priority": "batch"}}
])";

struct Reference {
  std::map<std::pair<std::string, std::string>, int64_t> on_hand;
  std::map<std::string, std::pair<double, int64_t>> sales;  // store -> (units, count)
  std::map<std::string, double> biggest;
  std::map<int32_t, int64_t> last_offset;
  int poison = 0;
};

// Two versions of one definition: v2 adds a column at the end.
const char* kOnHandV1 =
    R"([{"name": "stock_on_hand", "kind": "latest", "key": {"store": "/store", "sku": "/sku"},
                            "columns": {"on_hand": {"from": "/on_hand", "type": "bigint"}}}])";
const char* kOnHandV2 =
    R"([{"name": "stock_on_hand", "kind": "latest", "key": {"store": "/store", "sku": "/sku"},
                            "columns": {"on_hand": {"from": "/on_hand", "type": "bigint"},
                                        "last_qty": {"from": "/qty", "type": "bigint"}}}])";

class DeclarativeViews : public IntegrationFixture {
 protected:
  DeclarativeViews() : IntegrationFixture("decl") {}

  void SetUp() override {
    dlq_ = topic_ + "-dlq";
    ASSERT_TRUE(CreateTopicAndDatabase(kPartitions));
    ASSERT_TRUE(CreateTopic(dlq_, 1));
    config_path_ = WriteViewsConfig(kDefinitions);
    env_["FRESHET_KAFKA_DEAD_LETTER_TOPIC"] = dlq_;
    env_["FRESHET_VIEWS_FLUSH_INTERVAL_MS"] = "20";
  }

  // Stock events with the state after them, plus poison in between.
  Reference Produce(int events) {
    auto producer = TransactionalProducer::Create(KafkaOptions(), UniqueName("decl-producer"));
    EXPECT_TRUE((*producer)->InitTransactions(30s).ok());
    Reference ref;
    std::mt19937 rng(5);
    std::vector<DeliveryReport> reports(events + 3);
    EXPECT_TRUE((*producer)->Begin().ok());
    for (int i = 0; i < events; ++i) {
      std::string store = "s" + std::to_string(rng() % 5), sku = "k" + std::to_string(rng() % 20);
      bool sale = rng() % 2;
      int64_t qty = 1 + rng() % 4;
      int64_t& on_hand = ref.on_hand[{store, sku}];
      on_hand = sale ? std::max<int64_t>(0, on_hand - qty) : on_hand + qty;
      Event e{sale ? "StockSold" : "StockReceived",
              "",
              NowMillis(),
              {{"store", store}, {"sku", sku}, {"qty", qty}, {"on_hand", on_hand}}};
      if (sale) {
        ref.sales[store].first += static_cast<double>(qty);
        ref.sales[store].second += 1;
        ref.biggest[store] = std::max(ref.biggest[store], static_cast<double>(qty));
      }
      OutgoingMessage m{
          topic_, PartitionForKey(store, kPartitions), store, EncodeEventValue(e), {{kTypeHeader, e.type}}};
      EXPECT_TRUE((*producer)->Produce(m, &reports[i]).ok());
      if (i == events / 3) {
        // Poison: not JSON; an event without the key fields; a wrong field type.
        EXPECT_TRUE((*producer)->Produce({topic_, 0, "s0", "{not json", {}}, &reports[events]).ok());
        Event bogus{"Bogus", "", NowMillis(), {{"note", "no key here"}}};
        EXPECT_TRUE(
            (*producer)->Produce({topic_, 1, "s1", EncodeEventValue(bogus), {}}, &reports[events + 1]).ok());
        Event wrong{"StockSold",
                    "",
                    NowMillis(),
                    {{"store", "s2"}, {"sku", "k1"}, {"qty", "three"}, {"on_hand", "x"}}};
        EXPECT_TRUE(
            (*producer)
                ->Produce({topic_, PartitionForKey("s2", kPartitions), "s2", EncodeEventValue(wrong), {}},
                          &reports[events + 2])
                .ok());
      }
    }
    EXPECT_TRUE((*producer)->Commit(30s).ok());
    for (const auto& r : reports)
      ref.last_offset[r.partition] = std::max(ref.last_offset[r.partition], r.offset);
    return ref;
  }

  bool CaughtUp(const std::string& view, const Reference& ref) {
    HttpClient client("127.0.0.1", static_cast<uint16_t>(port_), 5s);
    auto r = client.Get("/views/" + view + "/status");
    if (!r.ok() || r->status != 200) return false;
    auto offsets = nlohmann::json::parse(r->body)["next_offsets"];
    for (const auto& [p, last] : ref.last_offset)
      if (!offsets.contains(std::to_string(p)) || offsets[std::to_string(p)].get<int64_t>() <= last)
        return false;
    return true;
  }

  std::string dlq_, config_path_;
};

TEST_F(DeclarativeViews, MaterializeExactlyAndDeadLetterPoison) {
  Reference ref = Produce(3000);
  FreshetProcess views({"views", "--config", config_path_}, env_, "decl-views");
  for (const char* v : {"stock_on_hand", "low_stock", "sales_per_store"})
    ASSERT_TRUE(WaitUntil([&] { return CaughtUp(v, ref); }, 90s, 50ms)) << v << "\n" << views.Log();

  pqxx::connection conn(db_url_);
  pqxx::nontransaction tx(conn);
  std::map<std::pair<std::string, std::string>, int64_t> on_hand;
  for (const auto& row : tx.exec("SELECT store, sku, on_hand FROM stock_on_hand"))
    on_hand[{row[0].as<std::string>(), row[1].as<std::string>()}] = row[2].as<int64_t>();
  EXPECT_EQ(on_hand, ref.on_hand);

  size_t low = 0;
  for (const auto& [key, value] : ref.on_hand) low += value < 5;
  for (const auto& row : tx.exec("SELECT store, sku, on_hand FROM low_stock")) {
    EXPECT_LT(row[2].as<int64_t>(), 5);
    EXPECT_EQ(row[2].as<int64_t>(), (ref.on_hand[{row[0].as<std::string>(), row[1].as<std::string>()}]));
  }
  EXPECT_EQ(tx.exec("SELECT count(*) FROM low_stock")[0][0].as<size_t>(), low);

  for (const auto& row : tx.exec("SELECT store, units, sales, biggest, avg_qty FROM sales_per_store")) {
    std::string store = row[0].as<std::string>();
    EXPECT_DOUBLE_EQ(row[1].as<double>(), ref.sales[store].first) << store;
    EXPECT_EQ(row[2].as<int64_t>(), ref.sales[store].second) << store;
    EXPECT_DOUBLE_EQ(row[3].as<double>(), ref.biggest[store]) << store;
    EXPECT_NEAR(row[4].as<double>(), ref.sales[store].first / ref.sales[store].second, 1e-9) << store;
  }
  EXPECT_EQ(tx.exec("SELECT count(*) FROM sales_per_store")[0][0].as<size_t>(), ref.sales.size());

  // Poison: each view dead-letters what it cannot apply, with the reason.
  auto consumer = Consumer::Create(KafkaOptions(), "");
  ASSERT_TRUE((*consumer)->Assign({{dlq_, 0, kOffsetBeginning}}).ok());
  std::map<std::string, int> per_view;
  std::set<std::string> offsets;
  ASSERT_TRUE(WaitUntil(
      [&] {
        KafkaMessage m;
        auto outcome = (*consumer)->Poll(100ms, &m);
        if (outcome.ok() && *outcome == Consumer::PollOutcome::kMessage) {
          per_view[std::string(*m.header("freshet.view"))]++;
          EXPECT_FALSE(m.header("freshet.error")->empty());
          offsets.insert(std::string(*m.header("freshet.source.partition")) + ":" +
                         std::string(*m.header("freshet.source.offset")));
        }
        return per_view["stock_on_hand"] == 3 && per_view["low_stock"] == 3 &&
               per_view["sales_per_store"] == 2;
      },
      30s, 1ms))
      << "dead letters per view: stock_on_hand " << per_view["stock_on_hand"] << ", low_stock "
      << per_view["low_stock"] << ", sales_per_store " << per_view["sales_per_store"];
  EXPECT_EQ(offsets.size(), 3u);

  // The status reports freshness: lag per partition and event-to-visible latency.
  {
    HttpClient client("127.0.0.1", static_cast<uint16_t>(port_), 5s);
    auto status = nlohmann::json::parse(client.Get("/views/stock_on_hand/status")->body);
    EXPECT_EQ(status["state"], "running");
    EXPECT_TRUE(status.contains("lag"));
    ASSERT_TRUE(status.contains("event_to_visible_ms")) << status;
    EXPECT_GT(status["event_to_visible_ms"]["events"].get<int64_t>(), 0);
    EXPECT_GT(status["event_to_visible_ms"]["p99_at_most"].get<double>(), 0);
    // The last minute's bound, and when it was measured, on the server's clock.
    ASSERT_TRUE(status.contains("now_ms")) << status;
    int64_t now = status["now_ms"].get<int64_t>();
    EXPECT_LE(std::abs(now - NowMillis()), 5000) << status;
    EXPECT_LE(status["last_flush_ms"].get<int64_t>(), now) << status;
    ASSERT_TRUE(status.contains("event_to_visible_recent_ms")) << status;
    const auto& recent = status["event_to_visible_recent_ms"];
    EXPECT_GT(recent["events"].get<int64_t>(), 0) << status;
    EXPECT_LE(recent["events"].get<int64_t>(), status["event_to_visible_ms"]["events"].get<int64_t>())
        << status;
    EXPECT_GT(recent["p99_at_most"].get<double>(), 0) << status;
    EXPECT_EQ(recent["measured_at_ms"], now) << status;
    EXPECT_GT(recent["window_ms"].get<int64_t>(), 0) << status;
  }

  // Read-your-writes from SQL, for an offset reached and one never produced.
  int32_t p = ref.last_offset.begin()->first;
  int64_t last = ref.last_offset.begin()->second;
  EXPECT_TRUE(
      tx.exec_params("SELECT freshet.await_offset('stock_on_hand', $1, $2, '5s')", p, last)[0][0].as<bool>());
  EXPECT_FALSE(
      tx.exec_params("SELECT freshet.await_offset('stock_on_hand', $1, $2, '50ms')", p, last + 1000)[0][0]
          .as<bool>());
}

TEST_F(DeclarativeViews, ReaderRoleSeesViewsOnlyAndFlushesNotify) {
  Reference ref = Produce(200);
  FreshetProcess views({"views", "--config", config_path_}, env_, "decl-views");
  ASSERT_TRUE(WaitUntil([&] { return CaughtUp("stock_on_hand", ref); }, 90s, 50ms)) << views.Log();

  std::string reader = UniqueName("reader");
  for (auto& c : reader)
    if (c == '-') c = '_';
  {
    pqxx::connection admin(db_url_);
    pqxx::nontransaction tx(admin);
    tx.exec("CREATE ROLE " + reader + " LOGIN IN ROLE freshet_reader");
  }
  std::string reader_url = db_url_;
  reader_url.replace(reader_url.find("freshet@"), std::string("freshet@").size(), reader + "@");
  pqxx::connection as_reader(reader_url);
  {
    pqxx::nontransaction tx(as_reader);
    EXPECT_GT(tx.exec("SELECT count(*) FROM stock_on_hand")[0][0].as<int>(), 0);
  }
  for (const std::string& forbidden :
       {std::string("SELECT * FROM freshet.offsets"), "SELECT * FROM stock_on_hand__v" + std::string("x"),
        std::string("DELETE FROM stock_on_hand")}) {
    pqxx::nontransaction tx(as_reader);
    EXPECT_ANY_THROW(tx.exec(forbidden)) << forbidden;
  }

  // Each flush notifies freshet_flush with the view and its offsets.
  struct Listener : pqxx::notification_receiver {
    using pqxx::notification_receiver::notification_receiver;
    std::vector<std::string> payloads;
    void operator()(const std::string& payload, int) override { payloads.push_back(payload); }
  };
  pqxx::connection listen_conn(db_url_);
  Listener listener(listen_conn, "freshet_flush");
  listen_conn.get_notifs();
  auto producer = TransactionalProducer::Create(KafkaOptions(), UniqueName("decl-late"));
  ASSERT_TRUE((*producer)->InitTransactions(30s).ok());
  ASSERT_TRUE((*producer)->Begin().ok());
  Event e{"StockReceived", "", NowMillis(), {{"store", "s9"}, {"sku", "new"}, {"qty", 1}, {"on_hand", 1}}};
  ASSERT_TRUE(
      (*producer)
          ->Produce({topic_, PartitionForKey("s9", kPartitions), "s9", EncodeEventValue(e), {}}, nullptr)
          .ok());
  ASSERT_TRUE((*producer)->Commit(30s).ok());
  bool notified = WaitUntil(
      [&] {
        listen_conn.await_notification(0, 100000);
        for (const auto& p : listener.payloads)
          if (nlohmann::json::parse(p)["view"] == "stock_on_hand") return true;
        return false;
      },
      30s, 1ms);
  EXPECT_TRUE(notified);
}

// A changed definition is built into a new table beside the live one while
// readers keep querying the old rows, then swapped in atomically: every
// query sees one complete version.
TEST_F(DeclarativeViews, ChangedDefinitionIsBuiltBesideAndSwappedIn) {
  const char* v1 = kOnHandV1;
  const char* v2 = kOnHandV2;
  Reference ref = Produce(20000);
  WriteViewsConfig(v1);
  {
    FreshetProcess views({"views", "--config", config_path_}, env_, "decl-v1");
    ASSERT_TRUE(WaitUntil([&] { return CaughtUp("stock_on_hand", ref); }, 90s, 50ms)) << views.Log();
    views.Signal(SIGTERM);
    ASSERT_EQ(views.Wait(30s), 0);
  }
  pqxx::connection conn(db_url_);
  auto live_table = [&] {
    pqxx::nontransaction tx(conn);
    auto r = tx.exec("SELECT table_name, building_table FROM freshet.views WHERE name = 'stock_on_hand'");
    return std::make_pair(r[0][0].as<std::string>(),
                          r[0][1].is_null() ? std::string() : r[0][1].as<std::string>());
  };
  std::string v1_table = live_table().first;
  // A user's SQL view on top of the view: the swap must keep it working.
  {
    pqxx::connection c(db_url_);
    pqxx::nontransaction tx(c);
    tx.exec("CREATE VIEW on_hand_total AS SELECT sum(on_hand)::bigint AS total FROM stock_on_hand");
  }

  std::atomic<bool> stop{false};
  std::vector<std::pair<size_t, size_t>> seen;  // (rows, columns) per query
  std::atomic<int> reads_of_v2{0};
  std::thread reader([&] {
    pqxx::connection c(db_url_);
    while (!stop) {
      pqxx::nontransaction tx(c);
      auto r = tx.exec("SELECT * FROM stock_on_hand");
      seen.emplace_back(r.size(), r.columns());
      if (r.columns() == 4) ++reads_of_v2;
    }
  });
  WriteViewsConfig(v2);
  FreshetProcess views({"views", "--config", config_path_}, env_, "decl-v2");
  // A feed client that connects while v2 builds gets the live (v1) rows,
  // complete, and once v2 is live a reset and the v2 rows.
  std::unique_ptr<WsClient> feed;
  ASSERT_TRUE(WaitUntil(
      [&] {
        feed = WsClient::Connect(static_cast<uint16_t>(port_), "/views/stock_on_hand/feed");
        return feed != nullptr;
      },
      30s, 5ms))
      << views.Log();
  // (rows, rows with last_qty) of each complete snapshot, in order.
  std::vector<std::pair<size_t, size_t>> snapshots;
  size_t rows_in = 0, with_qty = 0;
  auto read_snapshot = [&] {
    for (;;) {
      auto m = feed->Next(30s);
      if (!m) return false;
      if ((*m)["type"] != "snapshot") continue;
      for (const auto& r : (*m)["rows"]) {
        ++rows_in;
        with_qty += r["row"].contains("last_qty");
      }
      if ((*m)["done"] == true) {
        snapshots.emplace_back(rows_in, with_qty);
        rows_in = with_qty = 0;
        return true;
      }
    }
  };
  ASSERT_TRUE(read_snapshot()) << views.Log();
  if (snapshots[0].second == 0) {
    ASSERT_TRUE(read_snapshot()) << "no fresh snapshot after the swap\n" << views.Log();
  }
  for (const auto& [rows, qty] : snapshots)
    EXPECT_EQ(rows, ref.on_hand.size()) << "a feed snapshot of a half-built version";
  EXPECT_EQ(snapshots.back().second, ref.on_hand.size()) << "the last snapshot is of v2";
  bool swapped = WaitUntil(
      [&] {
        auto [live, building] = live_table();
        return live != v1_table && building.empty();
      },
      90s, 20ms);
  WaitUntil([&] { return reads_of_v2 >= 3; }, 30s, 5ms);  // a few reads of the new version
  stop = true;
  reader.join();
  ASSERT_TRUE(swapped) << views.Log();

  size_t before = 0, after = 0;
  for (const auto& [rows, columns] : seen) {
    ASSERT_EQ(rows, ref.on_hand.size()) << "a query saw a half-built version";
    (columns == 3 ? before : after)++;
    ASSERT_TRUE(columns == 3 || columns == 4);
  }
  EXPECT_GT(before, 0u) << "the reader never saw the old version during the build";
  EXPECT_GT(after, 0u);
  EXPECT_EQ(seen.back().second, 4u);
  pqxx::nontransaction tx(conn);
  EXPECT_TRUE(tx.exec("SELECT to_regclass('public." + v1_table + "') IS NULL")[0][0].as<bool>())
      << "old table kept";
  EXPECT_EQ(
      tx.exec_params("SELECT count(*) FROM freshet.offsets WHERE view_name = $1", v1_table)[0][0].as<int>(),
      0);
  int64_t total = 0;
  for (const auto& [key, on_hand] : ref.on_hand) total += on_hand;
  EXPECT_EQ(tx.exec("SELECT total FROM on_hand_total")[0][0].as<int64_t>(), total)
      << "the user's view on top";
}

// Two processes with different definitions of one view (a half-done rolling
// upgrade): the one whose definition went live later wins; the outdated one
// waits with a clear error instead of rebuilding its version and swapping
// it back (which would make the two rebuild each other forever).
TEST_F(DeclarativeViews, AnOutdatedDefinitionWaitsInsteadOfSwappingBack) {
  const char* v1 = kOnHandV1;
  const char* v2 = kOnHandV2;
  Reference ref = Produce(5000);
  WriteViewsConfig(v1);
  std::string v2_path = WriteViewsConfig(v2, ".v2.json");
  FreshetProcess old_process({"views", "--config", config_path_}, env_, "decl-old");
  ASSERT_TRUE(WaitUntil([&] { return CaughtUp("stock_on_hand", ref); }, 90s, 50ms)) << old_process.Log();
  pqxx::connection conn(db_url_);
  auto registry = [&] {
    pqxx::nontransaction tx(conn);
    auto r = tx.exec(
        "SELECT table_name, coalesce(building_table, '') FROM freshet.views WHERE name = 'stock_on_hand'");
    return std::make_pair(r[0][0].as<std::string>(), r[0][1].as<std::string>());
  };
  std::string v1_table = registry().first;

  // The new definition starts in a second process and goes live. It runs in
  // a group of its own (a blue/green deployment), so it builds every
  // partition and swaps without waiting for the old process: in a shared
  // group the build would wait for the old process's partitions.
  auto env2 = env_;
  env2["FRESHET_VIEWS_GROUP_ID"] = UniqueName("decl-new");
  int port2 = FreePort();
  env2["FRESHET_VIEWS_LISTEN"] = "127.0.0.1:" + std::to_string(port2);
  FreshetProcess new_process({"views", "--config", v2_path}, env2, "decl-new");
  ASSERT_TRUE(WaitUntil([&] { return registry().first != v1_table && registry().second.empty(); }, 90s, 20ms))
      << new_process.Log();
  std::string v2_table = registry().first;

  // New events: the old process finds its table gone and must not build v1 again.
  Reference more = Produce(500);
  HttpClient old_client("127.0.0.1", static_cast<uint16_t>(port_), 5s);
  std::string error;
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto r = old_client.Get("/views/stock_on_hand/status");
        if (!r.ok() || r->status != 200) return false;
        error = nlohmann::json::parse(r->body).value("error", "");
        return error.find("another process published") != std::string::npos;
      },
      60s, 50ms))
      << error << "\n"
      << old_process.Log();
  EXPECT_NE(error.find("same definition"), std::string::npos) << error;
  EXPECT_EQ(registry(), std::make_pair(v2_table, std::string()))
      << "the old definition must not build or swap back";
  EXPECT_TRUE(old_process.running());
}

// delivery: at_least_once keeps its offsets in the consumer group, not in
// the store; after a SIGKILL nothing is lost: a latest-row view converges to
// the reference and an aggregate counts every event at least once.
TEST_F(DeclarativeViews, AtLeastOnceCommitsToTheGroupAndLosesNothingOnSigkill) {
  const char* defs = R"([
    {"name": "stock_alo", "kind": "latest", "delivery": "at_least_once", "key": {"store": "/store", "sku": "/sku"},
     "columns": {"on_hand": {"from": "/on_hand", "type": "bigint"}}, "freshness": {"max_batch_rows": 200}},
    {"name": "sales_alo", "kind": "aggregate", "delivery": "at_least_once", "event_types": ["StockSold"],
     "group_by": {"store": "/store"}, "aggregates": {"sales": {"fn": "count"}},
     "freshness": {"max_batch_rows": 200}}])";
  WriteViewsConfig(defs);
  Reference ref = Produce(20000);
  auto stock_rows = [&] { return StockLevels(db_url_, "stock_alo"); };
  auto sales_rows = [&] {
    pqxx::connection conn(db_url_);
    pqxx::nontransaction tx(conn);
    std::map<std::string, int64_t> out;
    for (const auto& r : tx.exec("SELECT store, sales FROM sales_alo"))
      out[r[0].as<std::string>()] = r[1].as<int64_t>();
    return out;
  };
  auto progress = [&](const std::string& view) -> int64_t {
    HttpClient client("127.0.0.1", static_cast<uint16_t>(port_), 5s);
    auto r = client.Get("/views/" + view + "/status");
    if (!r.ok() || r->status != 200) return -1;
    int64_t sum = 0;
    auto offsets =
        nlohmann::json::parse(r->body)["next_offsets"];  // not a temporary in the range-for: it would dangle
    for (const auto& [p, next] : offsets.items()) sum += next.get<int64_t>();
    return sum;
  };
  {
    FreshetProcess views({"views", "--config", config_path_}, env_, "decl-alo");
    for (const char* v : {"stock_alo", "sales_alo"})
      ASSERT_TRUE(WaitUntil([&] { return CaughtUp(v, ref); }, 90s, 50ms)) << views.Log();
    views.Signal(SIGTERM);
    ASSERT_EQ(views.Wait(30s), 0) << views.Log();
  }
  // A clean run applies each event once.
  EXPECT_EQ(stock_rows(), ref.on_hand);
  // (+1 for s2: the poison event with a text qty is still a StockSold for
  // s2, and counting needs no qty.)
  auto sales_once = sales_rows();
  for (const auto& [store, sums] : ref.sales)
    EXPECT_EQ(sales_once[store], sums.second + (store == "s2")) << store;
  // The offsets are in the group (one per table), not in the store.
  pqxx::connection conn(db_url_);
  std::string table;
  {
    pqxx::nontransaction tx(conn);
    table = tx.exec("SELECT table_name FROM freshet.views WHERE name = 'stock_alo'")[0][0].as<std::string>();
    EXPECT_EQ(
        tx.exec("SELECT count(*) FROM freshet.offsets WHERE view_name LIKE '%_alo__v%'")[0][0].as<int>(), 0);
  }
  auto group = Consumer::Create(KafkaOptions(), env_["FRESHET_VIEWS_GROUP_ID"] + ".stock_alo." + table);
  ASSERT_TRUE(group.ok());
  auto committed = (*group)->CommittedOffsets(topic_, {0, 1, 2}, 10s);
  ASSERT_TRUE(committed.ok()) << committed.status().message();
  for (const auto& [p, last] : ref.last_offset) EXPECT_EQ((*committed)[p], last + 1) << "partition " << p;

  // The same 20,000 events again (same seed): killed mid-way, restarted.
  int64_t before = 0;
  for (const auto& [p, last] : ref.last_offset) before += last + 1;
  Reference again = Produce(20000);
  {
    FreshetProcess views({"views", "--config", config_path_}, env_, "decl-alo-kill");
    ASSERT_TRUE(WaitUntil([&] { return progress("sales_alo") > before + 3000; }, 60s, 1ms))
        << progress("sales_alo") << " " << before << "\n"
        << views.Log();
    views.Signal(SIGKILL);
    views.Wait(10s);
  }
  FreshetProcess views({"views", "--config", config_path_}, env_, "decl-alo-after");
  for (const char* v : {"stock_alo", "sales_alo"})
    ASSERT_TRUE(WaitUntil([&] { return CaughtUp(v, again); }, 90s, 50ms)) << views.Log();
  EXPECT_EQ(stock_rows(), again.on_hand) << "a latest-row view converges";
  auto sales = sales_rows();
  for (const auto& [store, sums] : ref.sales)
    EXPECT_GE(sales[store], 2 * (sums.second + (store == "s2"))) << store << ": an event was lost";
}

// The RocksDB copy of a view answers point and prefix queries over HTTP,
// merges aggregates across flushes exactly, and with min_offset waits until
// a just-written event is applied (read-your-writes).
TEST_F(DeclarativeViews, RocksDbCopyServesPointAndPrefixQueries) {
  const char* defs = R"([
    {"name": "stock_on_hand", "kind": "latest", "stores": ["postgres", "rocksdb"],
     "key": {"store": "/store", "sku": "/sku"}, "columns": {"on_hand": {"from": "/on_hand", "type": "bigint"}}},
    {"name": "sales_per_store", "kind": "aggregate", "stores": ["rocksdb"], "event_types": ["StockSold"],
     "group_by": {"store": "/store"},
     "aggregates": {"units": {"fn": "sum", "from": "/qty", "type": "bigint"}, "sales": {"fn": "count"}},
     "freshness": {"flush_interval_ms": 5, "max_batch_rows": 50}}])";
  WriteViewsConfig(defs);
  auto env = env_;
  env["FRESHET_VIEWS_ROCKSDB_PATH"] = TestFile(".rocksdb");
  Reference ref = Produce(3000);
  FreshetProcess views({"views", "--config", config_path_}, env, "decl-rocks");
  HttpClient client("127.0.0.1", static_cast<uint16_t>(port_), 10s);
  auto rocks_caught_up = [&](const std::string& view) {
    auto r = client.Get("/views/" + view + "/status");
    if (!r.ok() || r->status != 200) return false;
    auto j = nlohmann::json::parse(r->body);
    auto offsets = j.contains("stores") ? j["stores"]["rocksdb"]["next_offsets"] : j["next_offsets"];
    for (const auto& [p, last] : ref.last_offset)
      if (!offsets.contains(std::to_string(p)) || offsets[std::to_string(p)].get<int64_t>() <= last)
        return false;
    return true;
  };
  for (const char* v : {"stock_on_hand", "sales_per_store"})
    ASSERT_TRUE(WaitUntil([&] { return rocks_caught_up(v); }, 90s, 50ms)) << v << "\n" << views.Log();

  // Point query: every key equals the reference.
  for (const auto& [key, on_hand] : ref.on_hand) {
    auto r = client.Get("/views/stock_on_hand/rows?key=" + key.first + "/" + key.second);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->status, 200) << r->body;
    auto rows = nlohmann::json::parse(r->body)["rows"];
    ASSERT_EQ(rows.size(), 1u) << key.first << "/" << key.second;
    EXPECT_EQ(rows[0]["value"]["on_hand"], on_hand);
  }
  // Prefix query: every SKU of one store, in key order.
  auto r = client.Get("/views/stock_on_hand/rows?prefix=s1/&limit=1000");
  ASSERT_TRUE(r.ok());
  size_t of_s1 = 0;
  for (const auto& [key, v] : ref.on_hand) of_s1 += key.first == "s1";
  EXPECT_EQ(nlohmann::json::parse(r->body)["rows"].size(), of_s1);
  // Aggregates merged across many small flushes.
  for (const auto& [store, sums] : ref.sales) {
    auto a = client.Get("/views/sales_per_store/rows?key=" + store);
    ASSERT_TRUE(a.ok());
    auto row = nlohmann::json::parse(a->body)["rows"][0]["value"];
    EXPECT_EQ(row["units"].get<double>(), sums.first) << store;
    EXPECT_EQ(row["sales"], sums.second) << store;
  }

  // Read-your-writes: a new event, then a query that waits for its offset.
  auto producer = TransactionalProducer::Create(KafkaOptions(), UniqueName("decl-ryw"));
  ASSERT_TRUE((*producer)->InitTransactions(30s).ok());
  ASSERT_TRUE((*producer)->Begin().ok());
  DeliveryReport report;
  Event e{"StockReceived", "", NowMillis(), {{"store", "s1"}, {"sku", "fresh"}, {"qty", 7}, {"on_hand", 7}}};
  ASSERT_TRUE(
      (*producer)
          ->Produce({topic_, PartitionForKey("s1", kPartitions), "s1", EncodeEventValue(e), {}}, &report)
          .ok());
  ASSERT_TRUE((*producer)->Commit(30s).ok());
  auto fresh =
      client.Get("/views/stock_on_hand/rows?key=s1/fresh&min_offset=" + std::to_string(report.partition) +
                 ":" + std::to_string(report.offset));
  ASSERT_TRUE(fresh.ok());
  ASSERT_EQ(fresh->status, 200) << fresh->body;
  EXPECT_EQ(nlohmann::json::parse(fresh->body)["rows"][0]["value"]["on_hand"], 7);

  // Bad queries get a 4xx naming the problem.
  auto bad = client.Get("/views/stock_on_hand/rows?key=a&prefix=b");
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(client.Get("/views/stock_on_hand/rows?key=a&min_offset=x")->status, 400);
  EXPECT_EQ(client.Get("/views/nope/rows?key=a")->status, 404);
  EXPECT_EQ(client.Get("/views/stock_on_hand/rows?key=s1/k1&min_offset=0:99999999")->status, 504);
  // A partition the topic does not have: a 400 naming the partition count,
  // at once (not a 504 after the 5 s wait).
  auto asked = std::chrono::steady_clock::now();
  auto no_partition = client.Get("/views/stock_on_hand/rows?key=s1/k1&min_offset=9:1");
  auto took = std::chrono::steady_clock::now() - asked;
  ASSERT_TRUE(no_partition.ok());
  EXPECT_EQ(no_partition->status, 400) << no_partition->body;
  EXPECT_NE(no_partition->body.find("partition 9 does not exist"), std::string::npos) << no_partition->body;
  EXPECT_NE(no_partition->body.find("has " + std::to_string(kPartitions) + " partitions"), std::string::npos)
      << no_partition->body;
  EXPECT_LT(took, 3s);
  EXPECT_EQ(
      client.Get("/views/stock_on_hand/rows?key=s1/k1&min_offset=" + std::to_string(kPartitions) + ":0")
          ->status,
      400);
}

TEST_F(DeclarativeViews, BadDefinitionIsRefusedAtStart) {
  WriteViewsConfig(R"([{"name": "x", "kind": "latest", "key": {"a": "/a"},
                       "columns": {"b": {"from": "/b", "type": "money"}}}])");
  auto r = RunFreshet({"views", "--config", config_path_}, env_);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("views.definitions[0](x).columns.b.type"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace freshet
