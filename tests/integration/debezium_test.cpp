// A real Debezium pipeline (scripts/debezium: Kafka Connect with Debezium's
// Postgres connector) capturing a table of the suite's Postgres, and a
// freshet view with envelope debezium that must mirror that table row by
// row: the snapshot, inserts, updates, deletes with their tombstones, a
// primary-key change, NUMERIC and timestamp columns, and a SIGKILL of the
// view process in the middle of a stream of changes.
#include <gtest/gtest.h>
#include <signal.h>

#include <random>

#include "core/http_client.h"
#include "tests/support/integration_fixture.h"
#include "tests/support/test_env.h"

namespace freshet {
namespace {

using namespace std::chrono_literals;
using namespace freshet::testing;

using Rows = std::vector<std::vector<std::string>>;

// The same columns, as text, from the source table and from the view.
const char* kSourceRows =
    "SELECT id::text, coalesce(email, '<null>'), coalesce(balance::text, '<null>'), "
    "coalesce(to_char(updated, 'YYYY-MM-DD HH24:MI:SS.US'), '<null>'), "
    "coalesce(to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), '<null>'), "
    "coalesce(born::text, '<null>') FROM customers ORDER BY id";
const char* kViewRows =
    "SELECT id::text, coalesce(email, '<null>'), coalesce(balance::text, '<null>'), "
    "coalesce(to_char(updated AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), '<null>'), "
    "coalesce(to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), '<null>'), "
    "coalesce(born::text, '<null>') FROM customers ORDER BY id";

Rows Read(const std::string& url, const char* sql) {
  try {
    pqxx::connection conn(url);
    pqxx::nontransaction tx(conn);
    Rows rows;
    for (const auto& row : tx.exec(sql)) {
      std::vector<std::string> r;
      for (const auto& field : row) r.push_back(field.as<std::string>());
      rows.push_back(std::move(r));
    }
    return rows;
  } catch (const std::exception& e) {
    return {{std::string("error: ") + e.what()}};
  }
}

std::string Show(const Rows& rows) {
  std::string out;
  for (size_t i = 0; i < rows.size() && i < 8; ++i) {
    for (const auto& f : rows[i]) out += f + " | ";
    out += "\n";
  }
  return out + "(" + std::to_string(rows.size()) + " rows)";
}

// db_url_ is the views' database; source_url_ the one the connector reads.
class Debezium : public IntegrationFixture {
 protected:
  Debezium() : IntegrationFixture("dbz") {}

  void SetUp() override {
    name_ = topic_;
    for (auto& c : name_)
      if (c == '-') c = '_';
    topic_ = name_ + ".public.customers";  // where the connector writes the table's changes
    source_url_ = CreateTestDatabase("dbzsrc");
    source_db_ = source_url_.substr(source_url_.rfind('/') + 1);
    CreateDatabase();
    env_["FRESHET_KAFKA_TOPIC"] = name_ + "-writer";
    env_["FRESHET_KAFKA_DEAD_LETTER_TOPIC"] = name_ + "-dlq";
    ASSERT_TRUE(CreateTopic(name_ + "-dlq", 1));
    pqxx::connection conn(source_url_);
    pqxx::nontransaction tx(conn);
    tx.exec(
        "CREATE TABLE customers (id integer PRIMARY KEY, email text, balance numeric(12,2), "
        "updated timestamp, created timestamptz, born date, region text)");
    // Rows from before the connector: they arrive as its snapshot (op r).
    tx.exec(
        "INSERT INTO customers VALUES (1, 'ann@example.com', 1234.56, '2024-01-02 03:04:05.123456', "
        "'2024-01-02 03:04:05+02', '1990-05-17', 'north'), (2, 'bob@example.com', -0.05, NULL, NULL, NULL, "
        "NULL)");
    std::string output;
    int rc = RunProjectScript("debezium start --name " + name_ + " --database " + source_db_ +
                                  " --tables public.customers --topic-prefix " + name_ + " --partitions 3",
                              &output);
    ASSERT_EQ(rc, 0) << output;
    started_ = true;
  }

  void TearDown() override {
    std::string output;
    if (started_) {
      EXPECT_EQ(RunProjectScript("debezium stop --name " + name_ + " --drop-slot", &output), 0) << output;
    }
  }

  // `instance` names the consumer groups and the RocksDB folder: a restart
  // with the same instance recovers from what the killed one stored.
  std::unique_ptr<FreshetProcess> StartViews(const std::string& log_name,
                                             const std::string& instance = "main",
                                             const std::string& definitions = "",
                                             const std::string& view_url = "") {
    std::string config =
        WriteViewsConfig(definitions.empty() ? Definitions() : definitions, log_name + ".json");
    std::map<std::string, std::string> env = env_;
    if (!view_url.empty()) env["FRESHET_POSTGRES_URL"] = view_url;
    env["FRESHET_VIEWS_GROUP_ID"] = name_ + "-" + instance;
    if (instance != "main") env["FRESHET_VIEWS_LISTEN"] = Loopback(FreePort());
    env["FRESHET_VIEWS_ROCKSDB_PATH"] = TestFile("-" + instance + ".rocksdb");
    return std::make_unique<FreshetProcess>(std::vector<std::string>{"views", "--config", config}, env,
                                            log_name);
  }

  // A latest view of the table and an aggregate over it, both in Postgres,
  // the latest one in RocksDB too.
  std::string Definitions() const {
    return R"([
      {"name": "customers", "kind": "latest",
       "source": {"topic": ")" +
           topic_ + R"(", "format": "json", "envelope": "debezium"},
       "key": {"id": {"from": "/id", "type": "bigint"}},
       "columns": {"email": "/email", "balance": {"from": "/balance", "type": "numeric"},
                   "updated": {"from": "/updated", "type": "timestamptz"},
                   "created": {"from": "/created", "type": "timestamptz"},
                   "born": {"from": "/born", "type": "date"}},
       "stores": ["postgres", "rocksdb"], "freshness": {"flush_interval_ms": 20}},
      {"name": "balance_per_region", "kind": "aggregate",
       "source": {"topic": ")" +
           topic_ + R"(", "format": "json", "envelope": "debezium"},
       "group_by": {"region": "/region"},
       "aggregates": {"customers": {"fn": "count"}, "balance": {"fn": "sum", "from": "/balance"},
                      "biggest": {"fn": "max", "from": "/balance"}},
       "freshness": {"flush_interval_ms": 20}}])";
  }

  // Waits until the view holds exactly the source table's rows.
  ::testing::AssertionResult Mirrors(std::chrono::seconds budget) { return Mirrors(db_url_, budget); }
  ::testing::AssertionResult Mirrors(const std::string& view_url, std::chrono::seconds budget) {
    Rows source, view;
    bool same = WaitUntil(
        [&] {
          source = Read(source_url_, kSourceRows);
          view = Read(view_url, kViewRows);
          // The aggregate view is a separate consumer and may trail the
          // latest view: wait for both, not for the first one.
          return source == view && AggregatesMatch(view_url);
        },
        budget, 100ms);
    if (same) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "source:\n"
                                         << Show(source) << "\nview:\n"
                                         << Show(view) << "\naggregates:\n"
                                         << last_aggregates_;
  }

  // The aggregate view equals the same aggregate computed on the source
  // (only where the view process runs it: the main instance).
  bool AggregatesMatch(const std::string& view_url) {
    if (view_url != db_url_) return true;
    Rows source = Read(source_url_,
                       "SELECT coalesce(region, '<null>'), count(*)::text, round(sum(balance), 2)::text, "
                       "round(max(balance), 2)::text FROM customers GROUP BY region ORDER BY 1");
    Rows view = Read(view_url,
                     "SELECT coalesce(region, '<null>'), customers::text, round(balance::numeric, 2)::text, "
                     "round(biggest::numeric, 2)::text FROM balance_per_region ORDER BY 1");
    if (source != view) last_aggregates_ = "source:\n" + Show(source) + "\nview:\n" + Show(view);
    return source == view;
  }

  // The RocksDB copy's rows, as (id, email).
  std::map<std::string, std::string> RocksRows() {
    HttpClient client("127.0.0.1", static_cast<uint16_t>(port_), 5s);
    auto r = client.Get("/views/customers/rows?prefix=&limit=10000");
    std::map<std::string, std::string> out;
    last_rows_answer_ =
        r.ok() ? std::to_string(r->status) + " " + r->body.substr(0, 300) : r.status().ToString();
    if (!r.ok() || r->status != 200) return out;
    nlohmann::json answer = nlohmann::json::parse(r->body);  // not a temporary: the loop reads into it
    for (const auto& row : answer["rows"])
      out[row["key"][0]] =
          row["value"]["email"].is_null() ? "<null>" : row["value"]["email"].get<std::string>();
    return out;
  }

  std::string name_, source_url_, source_db_;
  bool started_ = false;
  std::string last_rows_answer_;
  std::string last_aggregates_;
};

TEST_F(Debezium, LatestViewMirrorsTheSourceTableThroughChangesAndAViewCrash) {
  auto views = StartViews("-views");
  ASSERT_TRUE(Mirrors(60s)) << views->Log();  // the snapshot

  // Poison on the topic, from a producer that is not Debezium: a change
  // event without "op". Dead-lettered with the reason; nothing else moves.
  {
    ASSERT_EQ(ProduceWithKcat(topic_, {R"({"id": 99})"
                                       "\t"
                                       R"({"before": null, "after": {"id": 99}})"}),
              0);
    // Each view dead-letters it: customers in Postgres and in RocksDB, balance_per_region.
    auto dead = ReadDeadLetters(name_ + "-dlq", 3);
    ASSERT_EQ(dead.size(), 3u);
    for (const auto& d : dead) {
      EXPECT_NE(d.error.find("Debezium record without \"op\""), std::string::npos)
          << d.view << ": " << d.error;
      EXPECT_EQ(d.source_topic, topic_);
    }
    ASSERT_TRUE(Mirrors(30s)) << views->Log();
  }

  pqxx::connection conn(source_url_);
  pqxx::nontransaction tx(conn);
  tx.exec(
      "INSERT INTO customers VALUES (3, 'cy@example.com', 99999999.99, '1999-12-31 23:59:59.999999', "
      "'2000-01-01 00:00:00+00', '2000-02-29')");
  tx.exec("UPDATE customers SET balance = balance + 0.44, email = 'ann@example.org' WHERE id = 1");
  tx.exec("DELETE FROM customers WHERE id = 2");         // a delete and its tombstone
  tx.exec("UPDATE customers SET id = 10 WHERE id = 3");  // a key change: delete, tombstone, create
  ASSERT_TRUE(Mirrors(60s)) << views->Log();
  EXPECT_EQ(Read(db_url_, "SELECT id::text FROM customers ORDER BY id"), (Rows{{"1"}, {"10"}}));

  // A stream of changes, with the view process killed in the middle of it.
  std::mt19937 rng(11);
  auto change = [&](int i) {
    int id = 100 + static_cast<int>(rng() % 200);
    switch (rng() % 4) {
      case 0:
        tx.exec_params("DELETE FROM customers WHERE id = $1", id);
        break;
      default:
        tx.exec_params(
            "INSERT INTO customers VALUES ($1::integer, $2, $3::numeric / 100, now()::timestamp, now(), "
            "'2020-01-01'::date + $1::integer, $4) ON CONFLICT (id) DO UPDATE SET email = excluded.email, "
            "balance = excluded.balance, updated = excluded.updated, region = excluded.region",
            id, "c" + std::to_string(i) + "@example.com", static_cast<int64_t>(rng() % 10000000) - 5000000,
            std::string(i % 5 == 0   ? "south"
                        : i % 3 == 0 ? "east"
                                     : "north"));
    }
  };
  for (int i = 0; i < 1500; ++i) change(i);
  ASSERT_TRUE(WaitUntil([&] { return Read(db_url_, "SELECT count(*) FROM customers")[0][0] != "2"; }, 60s));
  views->Signal(SIGKILL);
  views->Wait(10s);
  for (int i = 1500; i < 3000; ++i) change(i);
  views = StartViews("-restarted");
  ASSERT_TRUE(Mirrors(90s)) << views->Log();

  // `freshet inspect` recognises the topic, and its definition, used as
  // printed, mirrors the table too.
  std::string said;
  nlohmann::ordered_json inspected = InspectTopic(topic_, "customers", &said);
  ASSERT_FALSE(inspected.is_null()) << said;
  EXPECT_EQ(inspected["source"]["envelope"], "debezium") << said;
  EXPECT_EQ(inspected["key"]["id"]["from"], "/id") << said;
  EXPECT_EQ(inspected["columns"]["balance"]["type"], "numeric") << said;
  EXPECT_EQ(inspected["columns"]["updated"]["type"], "timestamptz") << said;
  EXPECT_EQ(inspected["columns"]["born"]["type"], "date") << said;
  std::string inspected_url = CreateTestDatabase("dbzinspect");
  auto inspected_views =
      StartViews("-inspected", "inspected", nlohmann::ordered_json::array({inspected}).dump(), inspected_url);
  EXPECT_TRUE(Mirrors(inspected_url, 60s)) << inspected_views->Log();

  // The RocksDB copy went through the same crash and holds the same rows.
  std::map<std::string, std::string> expected;
  for (const auto& row : Read(source_url_, kSourceRows)) expected[row[0]] = row[1];
  std::map<std::string, std::string> rocks;
  EXPECT_TRUE(WaitUntil([&] { return (rocks = RocksRows()) == expected; }, 30s, 100ms))
      << rocks.size() << " rows in RocksDB, " << expected.size()
      << " in the source; last answer: " << last_rows_answer_;
}

}  // namespace
}  // namespace freshet
