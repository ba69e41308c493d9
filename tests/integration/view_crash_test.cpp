// The view process killed with SIGKILL mid-stream and restarted ends with
// exactly the rows an uninterrupted run would write: no update lost, none
// applied twice. Events are produced straight into the topic (including
// aborted transactions, which must never count); the reference is computed
// from what was committed; Postgres is compared with it row by row.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <iostream>
#include <random>

#include "core/envelope.h"
#include "core/http_client.h"
#include "tests/support/integration_fixture.h"
#include "tests/support/test_env.h"

namespace freshet {
namespace {

using namespace std::chrono_literals;
using namespace freshet::testing;

constexpr int kPartitions = 4;
constexpr int kEvents = 100000;
constexpr int kKills = 20;

class ViewCrash : public IntegrationFixture {
 protected:
  ViewCrash() : IntegrationFixture("crash") {}
};

TEST_F(ViewCrash, SigkillMidStreamLosesAndDoublesNothing) {
  ASSERT_TRUE(CreateTopicAndDatabase(kPartitions));
  DeltaStream produced = ProduceDeltaStream(topic_, kPartitions, kEvents);
  int64_t final_progress = produced.final_progress();

  // stock_levels as a declarative view kept in both stores, each with its
  // own offsets: the kills hit both.
  std::string config = WriteViewsConfig(R"([
      {"name": "stock_levels", "kind": "aggregate", "stores": ["postgres", "rocksdb"],
       "group_by": {"store": "/store", "sku": "/sku"},
       "aggregates": {"on_hand": {"fn": "sum", "from": "/delta", "type": "bigint"}},
       "freshness": {"flush_interval_ms": 5, "max_batch_rows": 150}}])");
  env_["FRESHET_VIEWS_ROCKSDB_PATH"] = TestFile(".rocksdb");
  env_["FRESHET_VIEWS_SESSION_TIMEOUT_MS"] = "2000";
  env_["FRESHET_LOG_LEVEL"] = "warn";
  const std::vector<std::string> args = {"views", "--config", config};

  // Kill at 20 random moments: each time the stored offsets pass a random
  // point of the stream, so the kill lands between flushes or inside one.
  std::mt19937 rng(77);
  std::vector<int64_t> targets;
  for (int k = 0; k < kKills; ++k) targets.push_back(static_cast<int64_t>(rng() % final_progress));
  std::sort(targets.begin(), targets.end());
  int kills_done = 0;
  for (int64_t target : targets) {
    if (StoredProgress(db_url_) >= target) continue;  // passed already: the next point
    FreshetProcess views(args, env_, "crash-views");
    bool reached =
        WaitUntil([&] { return StoredProgress(db_url_) >= target || !views.running(); }, 120s, 1ms);
    ASSERT_TRUE(reached) << views.Log();
    ASSERT_TRUE(views.running()) << views.Log();
    if (StoredProgress(db_url_) >= final_progress) break;  // too fast to catch mid-stream
    views.Signal(SIGKILL);
    EXPECT_EQ(views.Wait(10s), 128 + SIGKILL);
    ++kills_done;
  }
  std::cout << "SIGKILLed the view process " << kills_done << " times during " << kEvents << " events\n";
  RecordProperty("kills", kills_done);
  EXPECT_GE(kills_done, 12) << "the stream finished before the kills could land mid-stream";

  FreshetProcess views(args, env_, "crash-views-final");
  ASSERT_TRUE(WaitUntil([&] { return StoredProgress(db_url_) >= final_progress; }, 180s, 20ms))
      << views.Log();
  HttpClient client("127.0.0.1", static_cast<uint16_t>(port_), 10s);
  auto rocksdb_progress = [&] {
    auto r = client.Get("/views/stock_levels/status");
    if (!r.ok() || r->status != 200) return int64_t{0};
    int64_t total = 0;
    // -1: a partition with nothing stored yet (8 stores hash to only some partitions).
    nlohmann::json status =
        nlohmann::json::parse(r->body);  // a named value: range-for would dangle on a temporary
    for (const auto& [p, next] : status["stores"]["rocksdb"]["next_offsets"].items())
      total += std::max<int64_t>(0, next.get<int64_t>());
    return total;
  };
  ASSERT_TRUE(WaitUntil([&] { return rocksdb_progress() >= final_progress; }, 180s, 20ms)) << views.Log();

  // Postgres, row by row.
  auto actual = StockLevels(db_url_);
  ASSERT_EQ(actual.size(), produced.reference.size());
  for (const auto& [key, expected] : produced.reference) {
    auto it = actual.find(key);
    ASSERT_NE(it, actual.end()) << key.first << "/" << key.second << " missing";
    EXPECT_EQ(it->second, expected) << key.first << "/" << key.second;
  }
  pqxx::connection conn(db_url_);
  pqxx::nontransaction tx(conn);
  for (const auto& row : tx.exec("SELECT partition, next_offset FROM freshet.offsets"))
    EXPECT_EQ(row[1].as<int64_t>(), produced.last_offset[row[0].as<int32_t>()] + 1);

  // RocksDB, row by row.
  auto scan = client.Get("/views/stock_levels/rows?prefix=&limit=10000");
  ASSERT_TRUE(scan.ok());
  auto rows = nlohmann::json::parse(scan->body)["rows"];
  ASSERT_EQ(rows.size(), produced.reference.size());
  for (const auto& row : rows) {
    std::pair<std::string, std::string> key{row["key"][0], row["key"][1]};
    EXPECT_EQ(row["value"]["on_hand"].get<int64_t>(), produced.reference[key])
        << key.first << "/" << key.second << " (rocksdb)";
  }

  views.Signal(SIGTERM);
  EXPECT_EQ(views.Wait(30s), 0);
}

}  // namespace
}  // namespace freshet
