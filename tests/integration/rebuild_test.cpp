// `freshet rebuild VIEW` against the real broker and Postgres: readers
// querying the SQL view in a loop see only complete versions across the
// swap; the running view process follows the rebuilt table; an interrupted
// rebuild keeps what it built and resumes.
#include <gtest/gtest.h>
#include <signal.h>

#include <random>
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

class RebuildTest : public IntegrationFixture {
 protected:
  RebuildTest() : IntegrationFixture("rebuild") {}

  void SetUp() override {
    ASSERT_TRUE(CreateTopicAndDatabase(kPartitions));
    config_path_ = WriteViewsConfig(R"([
      {"name": "stock", "kind": "aggregate", "group_by": {"store": "/store", "sku": "/sku"},
       "aggregates": {"on_hand": {"fn": "sum", "from": "/delta", "type": "bigint"}}}])");
    env_["FRESHET_VIEWS_FLUSH_INTERVAL_MS"] = "20";
    producer_ =
        std::move(TransactionalProducer::Create(KafkaOptions(), UniqueName("rebuild-producer")).value());
    ASSERT_TRUE(producer_->InitTransactions(30s).ok());
  }

  void Produce(int events) {
    std::mt19937 rng(static_cast<unsigned>(events + total_events_));
    for (int start = 0; start < events; start += 5000) {
      ASSERT_TRUE(producer_->Begin().ok());
      for (int i = 0; i < std::min(5000, events - start); ++i) {
        std::string store = "s" + std::to_string(rng() % 10), sku = "k" + std::to_string(rng() % 100);
        int64_t delta = static_cast<int64_t>(rng() % 9) - 3;
        stock_[{store, sku}] += delta;
        total_ += delta;
        Event e{"StockAdjusted", "", NowMillis(), {{"store", store}, {"sku", sku}, {"delta", delta}}};
        ASSERT_TRUE(
            producer_
                ->Produce({topic_, PartitionForKey(store, kPartitions), store, EncodeEventValue(e), {}},
                          nullptr)
                .ok());
      }
      ASSERT_TRUE(producer_->Commit(30s).ok());
    }
    total_events_ += events;
  }

  // (rows, sum of on_hand) of the SQL view readers use.
  std::pair<int64_t, int64_t> ReadView(pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    auto r = tx.exec("SELECT count(*), coalesce(sum(on_hand), 0) FROM stock");
    return {r[0][0].as<int64_t>(), r[0][1].as<int64_t>()};
  }

  bool ViewEqualsReference() {
    try {
      pqxx::connection conn(db_url_);
      return ReadView(conn) == std::pair<int64_t, int64_t>(static_cast<int64_t>(stock_.size()), total_);
    } catch (const std::exception&) {
      return false;
    }
  }

  std::string Registry(const std::string& column) {
    pqxx::connection conn(db_url_);
    pqxx::nontransaction tx(conn);
    auto r = tx.exec("SELECT " + column + " FROM freshet.views WHERE name = 'stock'");
    return r.empty() || r[0][0].is_null() ? "" : r[0][0].as<std::string>();
  }

  std::string config_path_;
  std::unique_ptr<TransactionalProducer> producer_;
  std::map<std::pair<std::string, std::string>, int64_t> stock_;
  int64_t total_ = 0;
  int total_events_ = 0;
};

TEST_F(RebuildTest, ReadersSeeOnlyCompleteVersionsAndTheLiveProcessFollows) {
  Produce(60000);
  FreshetProcess views({"views", "--config", config_path_}, env_, "rebuild-views");
  ASSERT_TRUE(WaitUntil([&] { return ViewEqualsReference(); }, 90s, 50ms)) << views.Log();
  std::string old_table = Registry("table_name");

  // A reader in a loop while the rebuild runs and swaps.
  std::atomic<bool> reading{true};
  std::atomic<int> reads{0}, incomplete{0};
  std::string bad;
  std::thread reader([&] {
    pqxx::connection conn(db_url_);
    const std::pair<int64_t, int64_t> want(static_cast<int64_t>(stock_.size()), total_);
    while (reading) {
      auto got = ReadView(conn);
      ++reads;
      if (got != want && incomplete++ == 0)
        bad = std::to_string(got.first) + " rows, sum " + std::to_string(got.second);
    }
  });
  RunResult rebuild = RunFreshet({"rebuild", "stock", "--config", config_path_}, env_, 120s);
  reading = false;
  reader.join();
  ASSERT_EQ(rebuild.exit_code, 0) << rebuild.output;
  EXPECT_NE(rebuild.output.find("from offset zero"), std::string::npos) << rebuild.output;
  EXPECT_NE(rebuild.output.find("is live"), std::string::npos) << rebuild.output;
  EXPECT_GT(reads.load(), 10);
  EXPECT_EQ(incomplete.load(), 0) << "a reader saw a half-built version: " << bad;

  std::string new_table = Registry("table_name");
  EXPECT_NE(new_table, old_table);
  EXPECT_EQ(new_table.rfind(old_table + "r", 0), 0u) << new_table;
  EXPECT_EQ(Registry("building_table"), "");
  {
    pqxx::connection conn(db_url_);
    pqxx::nontransaction tx(conn);
    EXPECT_TRUE(tx.exec_params("SELECT to_regclass($1)", "public." + old_table)[0][0].is_null())
        << "old table kept";
  }
  EXPECT_TRUE(ViewEqualsReference());

  // New events: the running process follows the rebuilt table.
  Produce(3000);
  ASSERT_TRUE(WaitUntil([&] { return ViewEqualsReference(); }, 60s, 50ms)) << views.Log();
  EXPECT_EQ(Registry("table_name"), new_table);
  EXPECT_NE(views.Log().find("following the rebuilt version"), std::string::npos) << views.Log();
}

TEST_F(RebuildTest, AnInterruptedRebuildResumes) {
  // A live version first, then many more events for the rebuild to chew on.
  Produce(1000);
  {
    FreshetProcess views({"views", "--config", config_path_}, env_, "rebuild-views");
    ASSERT_TRUE(WaitUntil([&] { return ViewEqualsReference(); }, 90s, 50ms)) << views.Log();
    views.Signal(SIGTERM);
    ASSERT_EQ(views.Wait(30s), 0) << views.Log();
  }
  Produce(300000);
  FreshetProcess first({"rebuild", "stock", "--config", config_path_}, env_, "rebuild-first");
  // Interrupt it once it has stored some progress but not all.
  auto progress = [&]() -> int64_t {
    try {
      pqxx::connection conn(db_url_);
      pqxx::nontransaction tx(conn);
      auto r = tx.exec(
          "SELECT coalesce(sum(next_offset), 0) FROM freshet.offsets WHERE view_name LIKE 'stock__v%r%'");
      return r[0][0].as<int64_t>();
    } catch (const std::exception&) {
      return 0;
    }
  };
  ASSERT_TRUE(WaitUntil([&] { return progress() > 0; }, 60s, 10ms)) << first.Log();
  first.Signal(SIGINT);
  int code = first.Wait(60s);
  int64_t kept = progress();
  if (code == 0) GTEST_SKIP() << "the rebuild finished before the interrupt landed";
  EXPECT_EQ(code, 130) << first.Log();
  EXPECT_NE(first.Log().find("run the same command again to resume"), std::string::npos) << first.Log();
  EXPECT_GT(kept, 0);
  EXPECT_LT(kept, 301000);

  // A view process started now serves the old table and shows the
  // interrupted rebuild in its status.
  FreshetProcess views({"views", "--config", config_path_}, env_, "rebuild-views");
  auto status = [&]() -> nlohmann::json {
    HttpClient client("127.0.0.1", static_cast<uint16_t>(port_), 5s);
    auto r = client.Get("/views/stock/status");
    return r.ok() && r->status == 200 ? nlohmann::json::parse(r->body) : nlohmann::json::object();
  };
  ASSERT_TRUE(WaitUntil([&] { return status().contains("rebuild"); }, 60s, 50ms)) << views.Log();
  EXPECT_EQ(status()["rebuild"]["state"], "interrupted") << status();

  RunResult second = RunFreshet({"rebuild", "stock", "--config", config_path_}, env_, 120s);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("resuming the rebuild"), std::string::npos) << second.output;
  EXPECT_TRUE(WaitUntil([&] { return ViewEqualsReference(); }, 30s, 50ms));
  EXPECT_TRUE(WaitUntil([&] { return !status().contains("rebuild"); }, 30s, 50ms)) << status();
}

// The RocksDB copy: the running view process holds the database, so the
// rebuild runs inside it; point-query readers in a loop see only complete
// versions, feed clients start over on the new version, and a restarted
// process keeps the rebuilt table. With no process running, the command
// builds it itself.
TEST_F(RebuildTest, RocksDbCopyIsRebuiltInTheProcessThatHoldsIt) {
  WriteViewsConfig(R"([
    {"name": "stock", "kind": "aggregate", "stores": ["rocksdb"], "group_by": {"store": "/store", "sku": "/sku"},
     "aggregates": {"on_hand": {"fn": "sum", "from": "/delta", "type": "bigint"}}}])");
  env_["FRESHET_VIEWS_ROCKSDB_PATH"] = TestFile(".rocksdb");
  // (rows, sum of on_hand, table) as the rows endpoint answers.
  struct Read {
    int64_t rows = -1, sum = 0;
    std::string table;  // or why the read failed
  };
  auto read_rows = [&](HttpClient& client) {
    Read out;
    auto r = client.Get("/views/stock/rows?prefix=&limit=10000");
    if (!r.ok()) {
      out.table = "(no answer: " + r.status().ToString() + ")";
      return out;
    }
    if (r->status != 200) {
      out.table = "(HTTP " + std::to_string(r->status) + ": " + r->body + ")";
      return out;
    }
    auto j = nlohmann::json::parse(r->body);
    out.rows = static_cast<int64_t>(j["rows"].size());
    for (const auto& row : j["rows"]) out.sum += row["value"]["on_hand"].get<int64_t>();
    out.table = j["table"];
    return out;
  };
  auto complete = [&](const Read& r) {
    return r.rows == static_cast<int64_t>(stock_.size()) && r.sum == total_;
  };
  HttpClient client("127.0.0.1", static_cast<uint16_t>(port_), 10s);

  Produce(60000);
  std::string old_table, new_table;
  {
    FreshetProcess views({"views", "--config", config_path_}, env_, "rebuild-rocks");
    ASSERT_TRUE(WaitUntil([&] { return complete(read_rows(client)); }, 90s, 50ms)) << views.Log();
    old_table = read_rows(client).table;
    auto feed = WsClient::Connect(static_cast<uint16_t>(port_), "/views/stock/feed?batch=1");
    ASSERT_TRUE(feed);
    bool snapshot = false;
    while (!snapshot) {
      auto m = feed->Next(10s);
      ASSERT_TRUE(m) << "no snapshot";
      snapshot = (*m)["type"] == "snapshot" && (*m)["done"] == true;
    }

    std::atomic<bool> reading{true};
    std::atomic<int> reads{0}, incomplete{0};
    std::string bad;
    std::thread reader([&] {
      HttpClient own("127.0.0.1", static_cast<uint16_t>(port_), 10s);
      while (reading) {
        Read got = read_rows(own);
        ++reads;
        if (!complete(got) && incomplete++ == 0)
          bad = std::to_string(got.rows) + " rows, sum " + std::to_string(got.sum) + " in " + got.table;
      }
    });
    RunResult rebuild =
        RunFreshet({"rebuild", "stock", "--store", "rocksdb", "--config", config_path_}, env_, 120s);
    reading = false;
    reader.join();
    ASSERT_EQ(rebuild.exit_code, 0) << rebuild.output << views.Log();
    EXPECT_NE(rebuild.output.find("inside the view process"), std::string::npos) << rebuild.output;
    EXPECT_NE(rebuild.output.find("is live"), std::string::npos) << rebuild.output;
    EXPECT_GT(reads.load(), 10);
    EXPECT_EQ(incomplete.load(), 0) << "a reader saw a half-built version: " << bad;
    new_table = read_rows(client).table;
    EXPECT_EQ(new_table.rfind(old_table + "r", 0), 0u) << new_table;

    // The feed client is told to start over, and its new snapshot is the
    // new version's rows.
    bool reset = false, fresh = false;
    int64_t rows = 0;
    while (!fresh) {
      auto m = feed->Next(20s);
      if (!m) break;
      if ((*m)["type"] == "reset") reset = true;
      if (reset && (*m)["type"] == "snapshot") {
        rows += static_cast<int64_t>((*m)["rows"].size());
        fresh = (*m)["done"] == true;
      }
    }
    EXPECT_TRUE(reset && fresh) << "the feed client was not sent the new version";
    EXPECT_EQ(rows, static_cast<int64_t>(stock_.size()));

    // The live engine goes on in the new table.
    Produce(3000);
    ASSERT_TRUE(WaitUntil([&] { return complete(read_rows(client)); }, 60s, 50ms)) << views.Log();
    EXPECT_EQ(read_rows(client).table, new_table);
    views.Signal(SIGTERM);
    ASSERT_EQ(views.Wait(30s), 0) << views.Log();
  }

  // Nobody holds the database now: the command builds the next version itself.
  RunResult here =
      RunFreshet({"rebuild", "stock", "--store", "rocksdb", "--config", config_path_}, env_, 120s);
  ASSERT_EQ(here.exit_code, 0) << here.output;
  EXPECT_NE(here.output.find("built here"), std::string::npos) << here.output;
  FreshetProcess views({"views", "--config", config_path_}, env_, "rebuild-rocks-2");
  ASSERT_TRUE(WaitUntil([&] { return complete(read_rows(client)); }, 90s, 50ms)) << views.Log();
  std::string third = read_rows(client).table;
  EXPECT_NE(third, new_table);
  EXPECT_EQ(third.rfind(old_table + "r", 0), 0u) << third;
  // It serves the rebuilt table as its own: nothing to build.
  std::string state;
  ASSERT_TRUE(WaitUntil(
      [&] {
        state = nlohmann::json::parse(client.Get("/views/stock/status")->body)["state"];
        return state != "starting";
      },
      30s, 20ms))
      << views.Log();
  EXPECT_EQ(state, "running") << views.Log();
  views.Signal(SIGTERM);
  ASSERT_EQ(views.Wait(30s), 0) << views.Log();

  // A changed definition is built beside the live table too: until the
  // swap, readers get complete old rows (no "events" column), then complete
  // new ones.
  WriteViewsConfig(R"([
    {"name": "stock", "kind": "aggregate", "stores": ["rocksdb"], "group_by": {"store": "/store", "sku": "/sku"},
     "aggregates": {"on_hand": {"fn": "sum", "from": "/delta", "type": "bigint"}, "events": {"fn": "count"}}}])");
  FreshetProcess changed({"views", "--config", config_path_}, env_, "rebuild-rocks-3");
  std::vector<Read> seen;
  ASSERT_TRUE(WaitUntil(
      [&] {
        seen.push_back(read_rows(client));
        return seen.back().table != third && seen.back().table.rfind("stock__v", 0) == 0;
      },
      90s, 5ms))
      << changed.Log();
  for (const Read& r : seen) {
    if (r.rows >= 0) {
      EXPECT_TRUE(complete(r)) << r.rows << " rows, sum " << r.sum << " in " << r.table;
    }
  }
  auto row = nlohmann::json::parse(client.Get("/views/stock/rows?prefix=&limit=1")->body)["rows"][0]["value"];
  EXPECT_TRUE(row.contains("events")) << row;

  // Bad requests: GET, a Postgres store, an unknown view.
  EXPECT_EQ(client.Get("/views/stock/rebuild")->status, 405);
  EXPECT_EQ(client.Post("/views/stock/rebuild?store=postgres", "")->status, 400);
  EXPECT_EQ(client.Post("/views/nope/rebuild", "")->status, 404);
  RunResult wrong =
      RunFreshet({"rebuild", "stock", "--store", "postgres", "--config", config_path_}, env_, 30s);
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_NE(wrong.output.find("has no postgres copy"), std::string::npos) << wrong.output;
}

TEST_F(RebuildTest, UnknownViewIsNamed) {
  RunResult r = RunFreshet({"rebuild", "nope", "--config", config_path_}, env_, 30s);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("no view named \"nope\" in views.definitions (known: stock)"), std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace freshet
