// The view process killed with SIGKILL mid-stream and restarted ends with
// exactly the rows an uninterrupted run would write: no update lost, none
// applied twice. Events are produced straight into the topic (including
// aborted transactions, which must never count); the reference is computed
// from what was committed; Postgres is compared with it row by row.
#include <signal.h>

#include <gtest/gtest.h>

#include <random>

#include "core/envelope.h"
#include "tests/support/test_env.h"

namespace freshet {
namespace {

using namespace std::chrono_literals;
using namespace freshet::testing;

constexpr int kPartitions = 4;
constexpr int kEvents = 40000;
constexpr int kPerTransaction = 500;
constexpr int kKills = 5;

using Reference = std::map<std::pair<std::string, std::string>, int64_t>;

struct Produced {
  Reference reference;
  std::map<int32_t, int64_t> last_offset;  // last committed data offset per partition
};

Produced ProduceStream(const std::string& topic) {
  auto producer = TransactionalProducer::Create(KafkaOptions(), UniqueName("crash-producer"));
  EXPECT_TRUE(producer.ok());
  EXPECT_TRUE((*producer)->InitTransactions(30s).ok());
  Produced out;
  std::mt19937 rng(2024);
  for (int txn = 0; txn * kPerTransaction < kEvents; ++txn) {
    bool abort = txn % 7 == 3;  // some transactions abort: their events must not count
    std::vector<DeliveryReport> reports(kPerTransaction);
    std::vector<std::pair<std::string, std::string>> keys;
    std::vector<int64_t> deltas;
    EXPECT_TRUE((*producer)->Begin().ok());
    for (int i = 0; i < kPerTransaction; ++i) {
      std::string store = "store-" + std::to_string(rng() % 8);
      std::string sku = "sku-" + std::to_string(rng() % 60);
      int64_t delta = static_cast<int64_t>(rng() % 16) - 5;
      Event e{"StockAdjusted", "", NowMillis(), {{"store", store}, {"sku", sku}, {"delta", delta}}};
      OutgoingMessage m{topic, PartitionForKey(store, kPartitions), store, EncodeEventValue(e), {}};
      EXPECT_TRUE((*producer)->Produce(m, &reports[i]).ok());
      keys.emplace_back(store, sku);
      deltas.push_back(delta);
    }
    if (abort) {
      EXPECT_TRUE((*producer)->Abort(30s).ok());
      continue;
    }
    EXPECT_TRUE((*producer)->Commit(30s).ok());
    for (int i = 0; i < kPerTransaction; ++i) {
      out.reference[keys[i]] += deltas[i];
      out.last_offset[reports[i].partition] = std::max(out.last_offset[reports[i].partition], reports[i].offset);
    }
  }
  return out;
}

int64_t StoredProgress(const std::string& db_url) {
  try {
    pqxx::connection conn(db_url);
    pqxx::nontransaction tx(conn);
    auto exists = tx.exec("SELECT to_regclass('freshet.offsets') IS NOT NULL");
    if (!exists[0][0].as<bool>()) return 0;
    auto r = tx.exec("SELECT COALESCE(sum(next_offset), 0) FROM freshet.offsets");
    return r[0][0].as<int64_t>();
  } catch (const std::exception&) {
    return 0;
  }
}

TEST(ViewCrash, SigkillMidStreamLosesAndDoublesNothing) {
  std::string topic = UniqueName("crash");
  ASSERT_TRUE(EnsureTopic(KafkaOptions(), topic, kPartitions, 1, 30s).ok());
  Produced produced = ProduceStream(topic);
  int64_t final_progress = 0;
  for (const auto& [p, last] : produced.last_offset) final_progress += last + 1;

  std::string db_url = CreateTestDatabase("crash");
  std::map<std::string, std::string> env = {
      {"FRESHET_KAFKA_BROKERS", KafkaBrokers()},  {"FRESHET_KAFKA_TOPIC", topic},
      {"FRESHET_POSTGRES_URL", db_url},           {"FRESHET_VIEWS_GROUP_ID", UniqueName("crash-views")},
      {"FRESHET_VIEWS_LISTEN", "127.0.0.1:0"},    {"FRESHET_VIEWS_FLUSH_INTERVAL_MS", "5"},
      {"FRESHET_VIEWS_MAX_BATCH_ROWS", "150"},    {"FRESHET_VIEWS_SESSION_TIMEOUT_MS", "6000"},
      {"FRESHET_LOG_LEVEL", "warn"}};

  // Kill at increasing fractions of the stream, each time once the stored
  // offsets have moved past that point: the kill lands between flushes or
  // in the middle of one, whichever it happens to be.
  int kills_done = 0;
  for (int k = 1; k <= kKills; ++k) {
    FreshetProcess views({"views"}, env, "crash-views");
    int64_t target = final_progress * k / (kKills + 1);
    bool reached = WaitUntil([&] { return StoredProgress(db_url) >= target || !views.running(); }, 120s, 2ms);
    ASSERT_TRUE(reached) << views.Log();
    ASSERT_TRUE(views.running()) << views.Log();
    if (StoredProgress(db_url) >= final_progress) break;  // too fast to catch mid-stream
    views.Signal(SIGKILL);
    EXPECT_EQ(views.Wait(10s), 128 + SIGKILL);
    ++kills_done;
  }
  EXPECT_GE(kills_done, 3) << "the stream finished before the kills could land mid-stream";

  FreshetProcess views({"views"}, env, "crash-views-final");
  ASSERT_TRUE(WaitUntil([&] { return StoredProgress(db_url) >= final_progress; }, 180s, 20ms)) << views.Log();

  pqxx::connection conn(db_url);
  pqxx::nontransaction tx(conn);
  Reference actual;
  for (const auto& row : tx.exec("SELECT store, sku, on_hand FROM public.stock_levels"))
    actual[{row[0].as<std::string>(), row[1].as<std::string>()}] = row[2].as<int64_t>();
  ASSERT_EQ(actual.size(), produced.reference.size());
  for (const auto& [key, expected] : produced.reference) {
    auto it = actual.find(key);
    ASSERT_NE(it, actual.end()) << key.first << "/" << key.second << " missing";
    EXPECT_EQ(it->second, expected) << key.first << "/" << key.second;
  }
  for (const auto& row : tx.exec("SELECT partition, next_offset FROM freshet.offsets"))
    EXPECT_EQ(row[1].as<int64_t>(), produced.last_offset[row[0].as<int32_t>()] + 1);

  views.Signal(SIGTERM);
  EXPECT_EQ(views.Wait(30s), 0);
}

}  // namespace
}  // namespace freshet
