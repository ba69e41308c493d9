// Views over topics freshet did not write: plain JSON produced by kcat (a
// client that is not freshet), as an upsert table with tombstones and as an
// append stream, next to a view over the writer's own topic in the same
// process; poison dead-lettered with its reason; and a topic that lost its
// beginning refused unless the view allows it.
#include <gtest/gtest.h>
#include <signal.h>

#include <optional>
#include <random>
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

constexpr int kPartitions = 3;

// What one order id looks like after all its records.
struct Order {
  std::string customer, amount, placed, day, uid;
  int64_t qty = 0;
};

// topic_ is the writer's event topic (FRESHET_KAFKA_TOPIC); orders_topic_
// is another service's.
class Sources : public IntegrationFixture {
 protected:
  Sources() : IntegrationFixture("src-writer") {}

  void SetUp() override {
    orders_topic_ = UniqueName("src-orders");
    dlq_ = UniqueName("src-dlq");
    ASSERT_TRUE(CreateTopicAndDatabase(kPartitions));
    ASSERT_TRUE(CreateTopic(orders_topic_, kPartitions));
    ASSERT_TRUE(CreateTopic(dlq_, 1));
    env_["FRESHET_KAFKA_DEAD_LETTER_TOPIC"] = dlq_;
    env_["FRESHET_VIEWS_ROCKSDB_PATH"] = TestFile(".rocksdb");
    env_["FRESHET_VIEWS_FLUSH_INTERVAL_MS"] = "20";
  }

  nlohmann::json Status(const std::string& view, const std::string& store = "postgres") {
    HttpClient client("127.0.0.1", static_cast<uint16_t>(port_), 5s);
    auto r = client.Get("/views/" + view + "/status");
    if (!r.ok() || r->status != 200) return nullptr;
    auto status = nlohmann::json::parse(r->body, nullptr, false);
    if (status.contains("stores"))
      return status["stores"].contains(store) ? status["stores"][store] : nullptr;
    return status["store"] == store ? status : nullptr;
  }

  // Every partition of `topic` read to its end by `view`: next offsets at
  // the high watermarks (a transactional topic ends with a commit marker).
  bool CaughtUp(const std::string& view, const std::string& topic, const std::string& store = "postgres") {
    bool transactional = topic == topic_;
    nlohmann::json s = Status(view, store);
    if (s.is_null() || !s.contains("next_offsets")) return false;
    auto consumer = Consumer::Create(KafkaOptions(), "");
    for (int p = 0; p < kPartitions; ++p) {
      auto marks = (*consumer)->QueryWatermarks(topic, p, 5s);
      if (!marks.ok()) return false;
      if (marks->second == 0) continue;
      std::string key = std::to_string(p);
      int64_t end = marks->second - (transactional ? 1 : 0);
      if (!s["next_offsets"].contains(key) || s["next_offsets"][key].get<int64_t>() < end) return false;
    }
    return true;
  }

  // Dead letters per view, each as "reason[ (null key)] @topic:partition:offset".
  std::map<std::string, std::vector<std::string>> DeadLetters(size_t expected) {
    std::map<std::string, std::vector<std::string>> out;
    for (const DeadLetter& d : ReadDeadLetters(dlq_, expected))
      out[d.view].push_back(d.error + (d.null_key ? " (null key)" : "") + " @" + d.source_topic + ":" +
                            std::to_string(d.source_partition) + ":" + std::to_string(d.source_offset));
    return out;
  }

  std::string orders_topic_, dlq_;
};

const char* kDefinitions = R"([
  {"name": "orders", "kind": "latest",
   "source": {"topic": "ORDERS", "format": "json", "envelope": "upsert"},
   "key": {"id": "$key"},
   "columns": {"customer": "/customer", "amount": {"from": "/amount", "type": "numeric"},
               "placed": {"from": "/placed", "type": "timestamptz"}, "day": {"from": "/day", "type": "date"},
               "uid": {"from": "/uid", "type": "uuid"}, "tags": {"from": "/tags", "type": "jsonb"},
               "qty": {"from": "/qty", "type": "bigint"}, "src": "$header.source",
               "at_offset": {"from": "$offset", "type": "bigint"}, "from_topic": "$topic"},
   "stores": ["postgres", "rocksdb"]},
  {"name": "units_per_customer", "kind": "aggregate",
   "source": {"topic": "ORDERS", "format": "json"},
   "group_by": {"customer": "/customer"},
   "aggregates": {"records": {"fn": "count"}, "units": {"fn": "sum", "from": "/qty", "type": "bigint"}}},
  {"name": "writer_events", "kind": "aggregate",
   "group_by": {"type": "$type"}, "aggregates": {"events": {"fn": "count"}}},
  {"name": "page_views", "kind": "aggregate",
   "source": {"topic": "CLICKS", "format": "json", "type": "$header.source"},
   "group_by": {"page": "/page", "source": "$type"}, "aggregates": {"views": {"fn": "count"}}}
])";

TEST_F(Sources, PlainJsonUpsertAndAppendViewsBesideTheWritersTopic) {
  // The records, as another service would write them: ids 0-39, updated
  // many times, some deleted (tombstones) and some recreated.
  std::mt19937 rng(7);
  std::vector<std::string> lines;
  std::map<std::string, std::optional<Order>> latest;
  std::map<std::string, std::pair<int64_t, int64_t>> units;  // customer -> (records, units)
  for (int i = 0; i < 600; ++i) {
    std::string id = "order-" + std::to_string(rng() % 40);
    if (rng() % 8 == 0) {
      lines.push_back(id + "\t");
      latest[id] = std::nullopt;
      continue;
    }
    Order o;
    o.customer = "c" + std::to_string(rng() % 7);
    o.amount = rng() % 2 ? std::to_string(rng() % 1000) + "." + std::to_string(10 + rng() % 90) : "";
    int64_t whole = rng() % 500;
    o.placed = "2024-0" + std::to_string(1 + rng() % 9) + "-1" + std::to_string(rng() % 10) + "T0" +
               std::to_string(rng() % 10) + ":15:30Z";
    o.day = o.placed.substr(0, 10);
    char uid[40];
    std::snprintf(uid, sizeof(uid), "%08x-0000-4000-8000-%012x", static_cast<unsigned>(rng()), i);
    o.uid = uid;
    o.qty = rng() % 10;
    nlohmann::json value = {{"customer", o.customer}, {"placed", o.placed}, {"day", o.day},
                            {"uid", o.uid},           {"qty", o.qty},       {"tags", {{"n", i}}}};
    if (o.amount.empty()) {
      value["amount"] = whole;  // a JSON number, the other half a decimal string
      o.amount = std::to_string(whole);
    } else {
      value["amount"] = o.amount;
    }
    lines.push_back(id + "\t" + value.dump());
    latest[id] = o;
    units[o.customer].first += 1;
    units[o.customer].second += o.qty;
  }
  // Poison: not JSON (both views), an amount that is no number (the upsert
  // view), a record without a key (the upsert view).
  lines.insert(lines.begin() + 100, "order-1\t{not json");
  lines.insert(lines.begin() + 200, "order-2\t{\"customer\": \"c1\", \"amount\": \"lots\", \"qty\": 1}");
  lines.insert(lines.begin() + 300, "\t{\"customer\": \"c2\", \"qty\": 2}");
  units["c1"].first += 1, units["c1"].second += 1;  // the append view takes both of these
  units["c2"].first += 1, units["c2"].second += 2;
  // order-2's bad record is skipped by the upsert view: its row stays as before.
  ASSERT_EQ(ProduceWithKcat(orders_topic_, lines), 0);

  // A few of the writer's own events, in freshet's envelope.
  auto producer = TransactionalProducer::Create(KafkaOptions(), UniqueName("src-producer"));
  ASSERT_TRUE((*producer)->InitTransactions(30s).ok());
  ASSERT_TRUE((*producer)->Begin().ok());
  for (int i = 0; i < 30; ++i) {
    Event e{i % 3 ? "StockReceived" : "StockSold", "", NowMillis(), {{"store", "s" + std::to_string(i % 4)}}};
    ASSERT_TRUE((*producer)
                    ->Produce({topic_, -1, "s" + std::to_string(i % 4), EncodeEventValue(e), {}}, nullptr)
                    .ok());
  }
  ASSERT_TRUE((*producer)->Commit(30s).ok());

  // A third topic, another service's click stream.
  std::string clicks_topic = UniqueName("src-clicks");
  ASSERT_TRUE(EnsureTopic(KafkaOptions(), clicks_topic, kPartitions, 1, 30s).ok());
  std::vector<std::string> clicks;
  for (int i = 0; i < 90; ++i)
    clicks.push_back("u" + std::to_string(i % 13) + "\t{\"page\": \"/p" + std::to_string(i % 3) + "\"}");
  ASSERT_EQ(ProduceWithKcat(clicks_topic, clicks), 0);

  std::string definitions = kDefinitions;
  for (size_t at; (at = definitions.find("ORDERS")) != std::string::npos;)
    definitions.replace(at, 6, orders_topic_);
  for (size_t at; (at = definitions.find("CLICKS")) != std::string::npos;)
    definitions.replace(at, 6, clicks_topic);
  FreshetProcess views({"views", "--config", WriteViewsConfig(definitions)}, env_, "src-views");
  for (const auto& [view, topic, store] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"orders", orders_topic_, "postgres"},
           {"orders", orders_topic_, "rocksdb"},
           {"units_per_customer", orders_topic_, "postgres"},
           {"writer_events", topic_, "postgres"},
           {"page_views", clicks_topic, "postgres"}})
    ASSERT_TRUE(WaitUntil([&] { return CaughtUp(view, topic, store); }, 90s, 50ms))
        << view << " " << store << "\n"
        << Status(view, store).dump() << "\n"
        << views.Log();

  // The upsert view holds the last value of each key, deletes applied.
  pqxx::connection conn(db_url_);
  pqxx::nontransaction tx(conn);
  tx.exec("SET TIME ZONE 'UTC'");
  std::map<std::string, Order> expected;
  for (const auto& [id, o] : latest)
    if (o) expected[id] = *o;
  std::map<std::string, Order> got;
  for (const auto& row :
       tx.exec("SELECT id, customer, amount::text, to_char(placed, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
               "day::text, uid::text, qty, tags->>'n', src, at_offset, from_topic FROM orders")) {
    Order o;
    o.customer = row[1].as<std::string>();
    o.amount = row[2].as<std::string>();
    o.placed = row[3].as<std::string>();
    o.day = row[4].as<std::string>();
    o.uid = row[5].as<std::string>();
    o.qty = row[6].as<int64_t>();
    EXPECT_FALSE(row[7].is_null());
    EXPECT_EQ(row[8].as<std::string>(), "crm");
    EXPECT_GE(row[9].as<int64_t>(), 0);
    EXPECT_EQ(row[10].as<std::string>(), orders_topic_);
    got[row[0].as<std::string>()] = o;
  }
  ASSERT_EQ(got.size(), expected.size());
  for (const auto& [id, o] : expected) {
    ASSERT_TRUE(got.count(id)) << id;
    const Order& g = got[id];
    EXPECT_EQ(g.customer, o.customer) << id;
    EXPECT_EQ(g.amount, o.amount) << id;
    EXPECT_EQ(g.placed, o.placed) << id;
    EXPECT_EQ(g.day, o.day) << id;
    EXPECT_EQ(g.uid, o.uid) << id;
    EXPECT_EQ(g.qty, o.qty) << id;
  }

  // The RocksDB copy holds the same rows, keyed by the Kafka key.
  HttpClient client("127.0.0.1", static_cast<uint16_t>(port_), 5s);
  auto scanned = client.Get("/views/orders/rows?prefix=order-&limit=1000");
  ASSERT_TRUE(scanned.ok() && scanned->status == 200) << (scanned.ok() ? scanned->body : "");
  auto rows = nlohmann::json::parse(scanned->body)["rows"];
  ASSERT_EQ(rows.size(), expected.size()) << scanned->body.substr(0, 500);
  for (const auto& row : rows) {
    std::string id = row["key"][0];
    ASSERT_TRUE(expected.count(id)) << id;
    EXPECT_EQ(row["value"]["customer"], expected[id].customer) << row.dump();
    EXPECT_EQ(row["value"]["qty"], expected[id].qty) << row.dump();
  }

  // The append aggregate counts every record that carried a value.
  std::map<std::string, std::pair<int64_t, int64_t>> aggregated;
  for (const auto& row : tx.exec("SELECT customer, records, units FROM units_per_customer"))
    aggregated[row[0].as<std::string>()] = {row[1].as<int64_t>(), row[2].as<int64_t>()};
  EXPECT_EQ(aggregated, units);

  // The writer's topic, read in the same process.
  auto events = tx.exec("SELECT type, events FROM writer_events ORDER BY type");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0][0].as<std::string>(), "StockReceived");
  EXPECT_EQ(events[0][1].as<int64_t>(), 20);
  EXPECT_EQ(events[1][1].as<int64_t>(), 10);

  // The third topic: 30 views of each page, the type from a header.
  auto pages = tx.exec("SELECT page, source, views FROM page_views ORDER BY page");
  ASSERT_EQ(pages.size(), 3u);
  for (const auto& row : pages) {
    EXPECT_EQ(row[1].as<std::string>(), "crm");
    EXPECT_EQ(row[2].as<int64_t>(), 30) << row[0].as<std::string>();
  }

  // Poison: dead-lettered with the view, the reason and where it was read.
  auto dead = DeadLetters(7);
  ASSERT_EQ(dead["orders"].size(), 6u) << "the postgres and rocksdb copies each dead-letter 3";
  ASSERT_EQ(dead["units_per_customer"].size(), 1u);
  std::string all;
  for (const auto& reason : dead["orders"]) all += reason + "\n";
  EXPECT_NE(all.find("value is not valid JSON @" + orders_topic_), std::string::npos) << all;
  EXPECT_NE(all.find("upsert record without a key: the key is the row's identity (null key) @"),
            std::string::npos)
      << "dead-lettered as it was read, null key and all:\n"
      << all;
  EXPECT_NE(all.find("column amount: expected a number or a decimal string, got string \"lots\""),
            std::string::npos)
      << all;
  EXPECT_EQ(dead["units_per_customer"][0].find("value is not valid JSON"), 0u)
      << dead["units_per_customer"][0];

  // A rebuild of the view over the other service's topic, from offset zero,
  // swaps in while a reader reads: the reader only ever sees the whole table.
  std::string config = TestFile(".json");
  std::atomic<bool> reading{true};
  std::atomic<int> reads{0}, wrong{0};
  std::string seen;
  std::thread reader([&] {
    pqxx::connection rconn(db_url_);
    while (reading) {
      pqxx::read_transaction rtx(rconn);
      auto r = rtx.exec("SELECT count(*), coalesce(sum(qty), 0) FROM orders");
      ++reads;
      int64_t qty = 0;
      for (const auto& [id, o] : expected) qty += o.qty;
      if ((r[0][0].as<size_t>() != expected.size() || r[0][1].as<int64_t>() != qty) && wrong++ == 0)
        seen = r[0][0].as<std::string>() + " rows";
    }
  });
  RunResult rebuild = RunFreshet({"rebuild", "orders", "--config", config}, env_, 120s);
  reading = false;
  reader.join();
  ASSERT_EQ(rebuild.exit_code, 0) << rebuild.output;
  EXPECT_NE(rebuild.output.find("rebuilding orders"), std::string::npos) << rebuild.output;
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(wrong.load(), 0) << "a reader saw " << seen << " during the rebuild";
  EXPECT_EQ(tx.exec("SELECT count(*) FROM orders")[0][0].as<size_t>(), expected.size());
}

// `freshet inspect` recognises each kind of topic, and what it prints,
// used as printed, materializes the topic.
TEST_F(Sources, InspectPrintsDefinitionsThatMaterializeTheTopic) {
  std::string append_topic = UniqueName("src-clicks");
  ASSERT_TRUE(EnsureTopic(KafkaOptions(), append_topic, kPartitions, 1, 30s).ok());
  std::vector<std::string> upserts, clicks;
  std::set<std::string> live;
  for (int i = 0; i < 120; ++i) {
    std::string id = R"({"id": )" + std::to_string(i % 30) + "}";
    if (i % 9 == 4) {
      upserts.push_back(id + "\t");
      live.erase(id);
    } else {
      upserts.push_back(id + "\t" + R"({"name": "n)" + std::to_string(i) + R"(", "score": )" +
                        std::to_string(i % 7) + R"(, "price": ")" + std::to_string(i) +
                        R"(.25", "seen": "2024-03-0)" + std::to_string(1 + i % 9) +
                        R"(T10:00:00Z", "vip": )" + (i % 2 ? "true" : "false") + "}");
      live.insert(id);
    }
    clicks.push_back("\t" + std::string(R"({"page": "/p)") + std::to_string(i % 5) + R"(", "ms": )" +
                     std::to_string(i) + "}");
  }
  ASSERT_EQ(ProduceWithKcat(orders_topic_, upserts), 0);
  ASSERT_EQ(ProduceWithKcat(append_topic, clicks), 0);

  std::string said;
  nlohmann::ordered_json upsert = InspectTopic(orders_topic_, "accounts", &said);
  ASSERT_FALSE(upsert.is_null()) << said;
  EXPECT_EQ(upsert["source"]["envelope"], "upsert") << said;
  EXPECT_EQ(upsert["key"]["id"]["from"], "$key/id") << said;
  EXPECT_EQ(upsert["key"]["id"]["type"], "bigint") << said;
  EXPECT_EQ(upsert["columns"]["score"]["type"], "bigint") << said;
  EXPECT_EQ(upsert["columns"]["price"]["type"], "numeric") << said;
  EXPECT_EQ(upsert["columns"]["seen"]["type"], "timestamptz") << said;
  EXPECT_EQ(upsert["columns"]["vip"]["type"], "boolean") << said;
  nlohmann::ordered_json append = InspectTopic(append_topic, "clicks", &said);
  ASSERT_FALSE(append.is_null()) << said;
  EXPECT_EQ(append["source"]["envelope"], "append") << said;

  // The writer's own topic, in freshet's envelope.
  auto producer = TransactionalProducer::Create(KafkaOptions(), UniqueName("src-producer"));
  ASSERT_TRUE((*producer)->InitTransactions(30s).ok());
  ASSERT_TRUE((*producer)->Begin().ok());
  for (int i = 0; i < 25; ++i) {
    Event e{"StockReceived",
            "c" + std::to_string(i),
            NowMillis(),
            {{"store", "s" + std::to_string(i % 4)}, {"qty", i}}};
    ASSERT_TRUE((*producer)
                    ->Produce({topic_, -1, "s" + std::to_string(i % 4), EncodeEventValue(e), {}}, nullptr)
                    .ok());
  }
  ASSERT_TRUE((*producer)->Commit(30s).ok());
  nlohmann::ordered_json events = InspectTopic(topic_, "events", &said);
  ASSERT_FALSE(events.is_null()) << said;
  EXPECT_EQ(events["columns"]["qty"]["type"], "bigint") << said;
  EXPECT_NE(said.find("format freshet, envelope freshet"), std::string::npos) << said;

  FreshetProcess views(
      {"views", "--config", WriteViewsConfig(nlohmann::ordered_json::array({upsert, append, events}).dump())},
      env_, "src-inspected");
  ASSERT_TRUE(WaitUntil([&] { return CaughtUp("accounts", orders_topic_); }, 60s, 50ms)) << views.Log();
  ASSERT_TRUE(WaitUntil([&] { return CaughtUp("clicks", append_topic); }, 60s, 50ms)) << views.Log();
  pqxx::connection conn(db_url_);
  pqxx::nontransaction tx(conn);
  EXPECT_EQ(tx.exec("SELECT count(*) FROM accounts")[0][0].as<size_t>(), live.size());
  EXPECT_EQ(tx.exec("SELECT count(*) FROM clicks")[0][0].as<size_t>(), clicks.size());
  EXPECT_EQ(tx.exec("SELECT sum(ms) FROM clicks")[0][0].as<int64_t>(), 119 * 120 / 2);
  ASSERT_TRUE(WaitUntil([&] { return CaughtUp("events", topic_); }, 60s, 50ms)) << views.Log();
  EXPECT_EQ(tx.exec("SELECT count(*), sum(qty) FROM events WHERE type = 'StockReceived'")[0][1].as<int64_t>(),
            24 * 25 / 2);
  EXPECT_EQ(tx.exec("SELECT count(*) FROM events")[0][0].as<int64_t>(), 25);
}

TEST_F(Sources, UpsertViewWithoutAKeyFromTheKafkaKeyIsRefusedAtStart) {
  std::string definitions = R"([{"name": "orders", "kind": "latest",
     "source": {"topic": ")" +
                            orders_topic_ + R"(", "format": "json", "envelope": "upsert"},
     "key": {"id": "/id"}, "columns": {"customer": "/customer"}}])";
  auto result = RunFreshet({"views", "--config", WriteViewsConfig(definitions)}, env_, 30s);
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_NE(
      result.output.find("views.definitions[0](orders).key.id: an upsert source's rows are identified by the "
                         "Kafka key"),
      std::string::npos)
      << result.output;
}

TEST_F(Sources, ViewOverATopicThatLostItsBeginningRefusesUnlessAllowed) {
  std::vector<std::string> lines;
  for (int i = 0; i < 20; ++i)
    lines.push_back("k" + std::to_string(i) + "\t{\"n\": " + std::to_string(i) + "}");
  ASSERT_EQ(ProduceWithKcat(orders_topic_, lines), 0);
  auto consumer = Consumer::Create(KafkaOptions(), "");
  int32_t truncated = -1;
  for (int p = 0; p < kPartitions && truncated < 0; ++p) {
    auto marks = (*consumer)->QueryWatermarks(orders_topic_, p, 5s);
    ASSERT_TRUE(marks.ok());
    if (marks->second >= 2) truncated = p;
  }
  ASSERT_GE(truncated, 0);
  ASSERT_TRUE(DeleteRecordsBefore(KafkaOptions(), orders_topic_, truncated, 1, 15s).ok());

  auto definitions = [&](bool allow) {
    return R"([{"name": "numbers", "kind": "latest",
       "source": {"topic": ")" +
           orders_topic_ + R"(", "format": "json", "envelope": "upsert")" +
           (allow ? R"(, "allow_incomplete_log": true)" : "") + R"(},
       "key": {"k": "$key"}, "columns": {"n": {"from": "/n", "type": "bigint"}}}])";
  };
  {
    FreshetProcess views({"views", "--config", WriteViewsConfig(definitions(false))}, env_, "src-truncated");
    nlohmann::json s;
    ASSERT_TRUE(WaitUntil(
        [&] {
          s = Status("numbers");
          return !s.is_null() && s["state"] == "stopped";
        },
        60s, 50ms))
        << s.dump() << "\n"
        << views.Log();
    std::string error = s["error"];
    EXPECT_NE(error.find("partition " + std::to_string(truncated) + " starts at offset 1"), std::string::npos)
        << error;
    EXPECT_NE(error.find("allow_incomplete_log"), std::string::npos) << error;
    EXPECT_EQ(s["source_log_start"][std::to_string(truncated)], 1) << s.dump();
    pqxx::connection conn(db_url_);
    pqxx::nontransaction tx(conn);
    EXPECT_EQ(tx.exec("SELECT count(*) FROM freshet.offsets")[0][0].as<int>(), 0) << "nothing was applied";
    views.Signal(SIGTERM);
    views.Wait(30s);
  }
  FreshetProcess views({"views", "--config", WriteViewsConfig(definitions(true))}, env_, "src-allowed");
  ASSERT_TRUE(WaitUntil([&] { return CaughtUp("numbers", orders_topic_); }, 60s, 50ms)) << views.Log();
  pqxx::connection conn(db_url_);
  pqxx::nontransaction tx(conn);
  EXPECT_EQ(tx.exec("SELECT count(*) FROM numbers")[0][0].as<int>(), 19)
      << "all but the deleted first record";
}

}  // namespace
}  // namespace freshet
