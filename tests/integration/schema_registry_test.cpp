// Views over Avro, Protobuf and JSON Schema topics through a real schema
// registry (Apicurio Registry's Confluent-compatible API, scripts/
// schema-registry), with records written by Confluent's own serializers
// (Python confluent-kafka: tests/support/sr_produce.py), each view compared
// row by row with the reference the producer computed: Avro across a
// schema change, Protobuf with a nested message and a oneof, JSON Schema;
// bad records dead-lettered with their reasons while the records around them
// are materialized; the registry stopped mid-stream and started again.
#include <gtest/gtest.h>

#include <fstream>
#include <optional>

#include "core/http_client.h"
#include "tests/support/integration_fixture.h"
#include "tests/support/test_env.h"

namespace freshet {
namespace {

using namespace std::chrono_literals;
using namespace freshet::testing;
using Rows = std::vector<std::vector<std::optional<std::string>>>;

constexpr int kPartitions = 2;

class SchemaRegistrySources : public IntegrationFixture {
 protected:
  SchemaRegistrySources() : IntegrationFixture("sr") {}

  static void SetUpTestSuite() {
    std::string out;
    ASSERT_EQ(RunProjectScript("schema-registry setup", &out), 0) << out;
    dir_ = std::string(FRESHET_TEST_LOG_DIR) + "/schema-registry";
    (void)RunProjectScript("schema-registry stop --dir " + dir_, &out);  // a leftover of a crashed run
    registry_port_ = FreePort();
    ASSERT_TRUE(StartRegistry());
  }
  static void TearDownTestSuite() {
    std::string out;
    (void)RunProjectScript("schema-registry stop --dir " + dir_, &out);
  }
  static bool StartRegistry() {
    std::string out;
    int rc = RunProjectScript(
        "schema-registry start --dir " + dir_ + " --port " + std::to_string(registry_port_), &out);
    url_ = "http://127.0.0.1:" + std::to_string(registry_port_) + "/apis/ccompat/v7";
    EXPECT_EQ(rc, 0) << out;
    return rc == 0;
  }
  static bool StopRegistry() {
    std::string out;
    return RunProjectScript("schema-registry stop --dir " + dir_, &out) == 0;
  }

  // Every view names its own source topic: the test has no topic_ of its
  // own (topic_ only names its files), and the views get no writer's topic.
  void SetUp() override {
    dlq_ = UniqueName("sr-dlq");
    CreateDatabase();
    ASSERT_TRUE(CreateTopic(dlq_, 1));
    env_.erase("FRESHET_KAFKA_TOPIC");
    env_["FRESHET_KAFKA_DEAD_LETTER_TOPIC"] = dlq_;
    env_["FRESHET_VIEWS_ROCKSDB_PATH"] = TestFile(".rocksdb");
    env_["FRESHET_VIEWS_FLUSH_INTERVAL_MS"] = "20";
  }

  std::string Topic(const std::string& what) {
    std::string topic = UniqueName("sr-" + what);
    EXPECT_TRUE(CreateTopic(topic, kPartitions));
    return topic;
  }

  // Runs sr_produce.py CASE into `topic`; returns the reference rows.
  nlohmann::json Produce(const std::string& which, const std::string& topic, const std::string& hold = "") {
    std::string ref = std::string(FRESHET_TEST_LOG_DIR) + "/" + topic + "." + which + ".json", out;
    int rc = RunProjectScript("schema-registry produce " + which + " --brokers " + KafkaBrokers() +
                                  " --registry " + url_ + " --topic " + topic + " --out " + ref +
                                  (hold.empty() ? "" : " --hold " + hold),
                              &out);
    EXPECT_EQ(rc, 0) << out;
    std::ifstream in(ref);
    return nlohmann::json::parse(in, nullptr, false);
  }

  std::string WriteConfig(const std::string& definitions) {
    std::string text = definitions;
    for (size_t at; (at = text.find("REGISTRY")) != std::string::npos;) text.replace(at, 8, url_);
    return WriteViewsConfig(text);
  }

  nlohmann::json Status(const std::string& view, const std::string& store = "postgres") {
    HttpClient client("127.0.0.1", static_cast<uint16_t>(port_), 5s);
    auto r = client.Get("/views/" + view + "/status");
    if (!r.ok() || r->status != 200) return nullptr;
    auto status = nlohmann::json::parse(r->body, nullptr, false);
    if (status.contains("stores"))
      return status["stores"].contains(store) ? status["stores"][store] : nullptr;
    return status;
  }

  bool CaughtUp(const std::string& view, const std::string& topic, const std::string& store = "postgres") {
    nlohmann::json s = Status(view, store);
    if (s.is_null() || !s.contains("next_offsets")) return false;
    auto consumer = Consumer::Create(KafkaOptions(), "");
    for (int p = 0; p < kPartitions; ++p) {
      auto marks = (*consumer)->QueryWatermarks(topic, p, 5s);
      if (!marks.ok()) return false;
      if (marks->second == 0) continue;
      std::string key = std::to_string(p);
      if (!s["next_offsets"].contains(key) || s["next_offsets"][key].get<int64_t>() < marks->second)
        return false;
    }
    return true;
  }

  Rows Query(const std::string& sql) {
    pqxx::connection conn(db_url_);
    pqxx::nontransaction tx(conn);
    tx.exec("SET TIME ZONE 'UTC'");
    Rows rows;
    for (const auto& row : tx.exec(sql)) {
      rows.emplace_back();
      for (const auto& field : row)
        rows.back().push_back(field.is_null() ? std::nullopt : std::optional<std::string>(field.c_str()));
    }
    return rows;
  }

  static Rows Expected(const nlohmann::json& reference) {
    Rows rows;
    for (const auto& r : reference["rows"]) {
      rows.emplace_back();
      for (const auto& v : r)
        rows.back().push_back(v.is_null() ? std::nullopt : std::optional<std::string>(v));
    }
    return rows;
  }

  static std::string Dump(const Rows& rows) {
    std::string out;
    for (const auto& r : rows) {
      for (const auto& v : r) out += (v ? *v : "NULL") + " | ";
      out += "\n";
    }
    return out;
  }

  static std::string dir_, url_;
  static int registry_port_;
  std::string dlq_;
};

std::string SchemaRegistrySources::dir_, SchemaRegistrySources::url_;
int SchemaRegistrySources::registry_port_ = 0;

const char* kAvroView = R"({"name": "orders", "kind": "latest",
   "source": {"topic": "TOPIC", "format": "avro", "key_format": "avro", "envelope": "upsert",
              "schema_registry": {"url": "REGISTRY"}},
   "key": {"order_key": "$key"},
   "columns": {"id": {"from": "/id", "type": "bigint"}, "customer": "/customer/id",
               "amount": {"from": "/amount", "type": "numeric"}, "day": {"from": "/day", "type": "date"},
               "at": {"from": "/at", "type": "timestamptz"}, "status": "/status", "note": "/note"}})";

const char* kAvroQuery =
    "SELECT order_key, id::text, customer, amount::text, day::text, "
    "(extract(epoch from at) * 1000)::bigint::text, status, note FROM orders ORDER BY order_key COLLATE "
    "\"C\"";

std::string With(std::string text, const std::string& topic) {
  for (size_t at; (at = text.find("TOPIC")) != std::string::npos;) text.replace(at, 5, topic);
  return text;
}

TEST_F(SchemaRegistrySources, AvroAcrossASchemaChangeProtobufAndJsonSchemaEqualTheirReferences) {
  std::string avro = Topic("avro"), proto = Topic("proto"), json = Topic("json");
  nlohmann::json avro_ref = Produce("avro", avro), proto_ref = Produce("protobuf", proto),
                 json_ref = Produce("json_sr", json);
  ASSERT_FALSE(avro_ref.is_discarded() || proto_ref.is_discarded() || json_ref.is_discarded());
  std::string definitions = "[" + With(kAvroView, avro) + "," +
                            With(R"(
  {"name": "pb_orders", "kind": "latest",
   "source": {"topic": "TOPIC", "format": "protobuf", "envelope": "upsert", "schema_registry": {"url": "REGISTRY"}},
   "key": {"order_key": "$key"},
   "columns": {"id": {"from": "/id", "type": "bigint"}, "sku": "/first/sku", "qty": {"from": "/first/qty", "type": "bigint"},
               "lines": {"from": "/lines", "type": "jsonb"}, "card": "/card",
               "voucher": {"from": "/voucher", "type": "bigint"}, "at": {"from": "/at", "type": "timestamptz"},
               "discount": {"from": "/discount", "type": "bigint"}}})",
                                 proto) +
                            "," +
                            With(R"(
  {"name": "payments", "kind": "latest",
   "source": {"topic": "TOPIC", "format": "json_sr", "envelope": "upsert", "schema_registry": {"url": "REGISTRY"}},
   "key": {"payment_key": "$key"},
   "columns": {"id": {"from": "/id", "type": "bigint"}, "customer": "/customer/id",
               "amount": {"from": "/amount", "type": "numeric"}}})",
                                 json) +
                            "]";
  FreshetProcess views({"views", "--config", WriteConfig(definitions)}, env_, prefix_);
  for (const auto& [view, topic] : std::vector<std::pair<std::string, std::string>>{
           {"orders", avro}, {"pb_orders", proto}, {"payments", json}})
    ASSERT_TRUE(WaitUntil([&] { return CaughtUp(view, topic); }, 60s, 50ms)) << view << "\n"
                                                                             << Status(view).dump() << "\n"
                                                                             << views.Log();

  Rows avro_rows = Query(kAvroQuery), avro_expected = Expected(avro_ref);
  EXPECT_EQ(avro_rows, avro_expected) << Dump(avro_rows) << "---\n" << Dump(avro_expected);
  // Both schemas are there: rows written with v1 have no note, some of v2 have one.
  EXPECT_GT(Query("SELECT 1 FROM orders WHERE note IS NOT NULL").size(), 0u);
  EXPECT_GT(Query("SELECT 1 FROM orders WHERE note IS NULL").size(), 0u);

  Rows proto_rows = Query(
      "SELECT order_key, id::text, sku, qty::text, jsonb_array_length(lines)::text, card, voucher::text, "
      "(extract(epoch from at) * 1000000)::bigint::text, discount::text FROM pb_orders ORDER BY order_key "
      "COLLATE \"C\"");
  EXPECT_EQ(proto_rows, Expected(proto_ref)) << Dump(proto_rows) << "---\n" << Dump(Expected(proto_ref));

  Rows json_rows = Query(
      "SELECT payment_key, id::text, customer, amount::text FROM payments ORDER BY payment_key COLLATE "
      "\"C\"");
  EXPECT_EQ(json_rows, Expected(json_ref)) << Dump(json_rows);
  EXPECT_TRUE(ReadDeadLetters(dlq_, 1, 1s).empty());
}

TEST_F(SchemaRegistrySources, ProtobufImportsAreFetchedAsSchemaReferences) {
  std::string topic = Topic("proto-refs");
  nlohmann::json ref = Produce("protobuf_refs", topic);
  FreshetProcess views({"views", "--config",
                        WriteConfig("[" +
                                    With(R"(
  {"name": "payments", "kind": "latest",
   "source": {"topic": "TOPIC", "format": "protobuf", "envelope": "upsert", "schema_registry": {"url": "REGISTRY"}},
   "key": {"payment_key": "$key"},
   "columns": {"id": "/id", "currency": "/total/currency", "cents": {"from": "/total/cents", "type": "bigint"}}})",
                                         topic) +
                                    "]")},
                       env_, prefix_);
  ASSERT_TRUE(WaitUntil([&] { return CaughtUp("payments", topic); }, 60s, 50ms))
      << Status("payments").dump() << views.Log();
  Rows rows =
      Query("SELECT payment_key, id, currency, cents::text FROM payments ORDER BY payment_key COLLATE \"C\"");
  EXPECT_EQ(rows, Expected(ref)) << Dump(rows);
  EXPECT_TRUE(ReadDeadLetters(dlq_, 1, 1s).empty());
}

TEST_F(SchemaRegistrySources, BadRecordsAreDeadLetteredWithTheirReasonsAndTheRestMaterialized) {
  std::string topic = Topic("poison");
  nlohmann::json ref = Produce("poison", topic);
  std::string view = With(kAvroView, topic);
  view.replace(view.find(R"("key_format": "avro", )"), 22, "");  // keys are plain text here
  FreshetProcess views({"views", "--config", WriteConfig("[" + view + "]")}, env_, prefix_);
  ASSERT_TRUE(WaitUntil([&] { return CaughtUp("orders", topic); }, 60s, 50ms)) << views.Log();
  Rows rows = Query(kAvroQuery);
  EXPECT_EQ(rows, Expected(ref)) << Dump(rows);
  std::vector<std::string> reasons;
  for (const DeadLetter& d : ReadDeadLetters(dlq_, 3)) reasons.push_back(d.error);
  ASSERT_EQ(reasons.size(), 3u);
  std::sort(reasons.begin(), reasons.end());
  EXPECT_NE(reasons[0].find("schema id"), std::string::npos) << reasons[0];  // truncated
  EXPECT_NE(reasons[0].find("truncated"), std::string::npos) << reasons[0];
  EXPECT_NE(reasons[1].find("unknown schema id 987654"), std::string::npos) << reasons[1];
  EXPECT_NE(reasons[2].find("wrong magic byte 0x7b"), std::string::npos) << reasons[2];
}

TEST_F(SchemaRegistrySources, RegistryStoppedMidStreamTheViewWaitsAndCatchesUpLosingNothing) {
  std::string topic = Topic("restart");
  std::string held = std::string(FRESHET_TEST_LOG_DIR) + "/" + topic + ".held.json";
  // v1 records produced; the v2 ones serialized (v2 registered) and held back.
  nlohmann::json ref = Produce("avro", topic, held);
  ASSERT_GT(ref.value("held", 0), 0);
  FreshetProcess views({"views", "--config", WriteConfig("[" + With(kAvroView, topic) + "]")}, env_, prefix_);
  ASSERT_TRUE(WaitUntil([&] { return CaughtUp("orders", topic); }, 60s, 50ms)) << views.Log();

  ASSERT_TRUE(StopRegistry());
  Produce("raw", topic, held);  // records of a schema this view has not fetched yet
  ASSERT_TRUE(WaitUntil(
      [&] { return Status("orders").value("waiting_for", "").find("schema registry") != std::string::npos; },
      30s, 50ms))
      << Status("orders").dump() << views.Log();
  EXPECT_FALSE(CaughtUp("orders", topic));

  ASSERT_TRUE(StartRegistry());
  ASSERT_TRUE(WaitUntil([&] { return CaughtUp("orders", topic); }, 60s, 50ms))
      << Status("orders").dump() << views.Log();
  EXPECT_FALSE(Status("orders").contains("waiting_for"));
  Rows rows = Query(kAvroQuery);
  EXPECT_EQ(rows, Expected(ref)) << Dump(rows);
  EXPECT_TRUE(ReadDeadLetters(dlq_, 1, 1s).empty());
}

// One view into Postgres and RocksDB: two engines of one process read the
// same Avro topic, and each record is decoded once between them (the
// view's metrics say who decoded what).
TEST_F(SchemaRegistrySources, TwoStoresOfOneViewShareEachRecordsDecode) {
  std::string topic = Topic("shared");
  nlohmann::json ref = Produce("avro", topic);
  std::string view = With(kAvroView, topic);
  view.replace(view.find(R"("kind": "latest",)"), 17,
               R"("kind": "latest", "stores": ["postgres", "rocksdb"],)");
  FreshetProcess views({"views", "--config", WriteConfig("[" + view + "]")}, env_, prefix_);
  ASSERT_TRUE(
      WaitUntil([&] { return CaughtUp("orders", topic) && CaughtUp("orders", topic, "rocksdb"); }, 60s, 50ms))
      << Status("orders").dump() << views.Log();
  Rows rows = Query(kAvroQuery);
  EXPECT_EQ(rows, Expected(ref)) << Dump(rows);

  HttpClient client("127.0.0.1", static_cast<uint16_t>(port_), 5s);
  std::string metrics = client.Get("/metrics")->body;
  auto count = [&](const std::string& name, const std::string& store) -> int64_t {
    std::string line = name + "{view=\"orders\",store=\"" + store + "\"} ";
    auto at = metrics.find(line);
    return at == std::string::npos ? -1 : std::stoll(metrics.substr(at + line.size()));
  };
  int64_t decoded_pg = count("freshet_view_records_decoded_total", "postgres"),
          taken_pg = count("freshet_view_records_decoded_by_another_view_total", "postgres"),
          decoded_rocks = count("freshet_view_records_decoded_total", "rocksdb"),
          taken_rocks = count("freshet_view_records_decoded_by_another_view_total", "rocksdb");
  std::string counts = "postgres: decoded " + std::to_string(decoded_pg) + ", taken " +
                       std::to_string(taken_pg) + "; rocksdb: decoded " + std::to_string(decoded_rocks) +
                       ", taken " + std::to_string(taken_rocks);
  // Each engine read every record, decoding it or taking it decoded.
  int64_t records = decoded_pg + taken_pg;
  EXPECT_GE(records, 300) << counts;  // what sr_produce.py wrote
  EXPECT_EQ(decoded_rocks + taken_rocks, records) << counts;
  // Between them most records were decoded once (both may reach a record
  // before either has kept it; then both decode it).
  EXPECT_GE(taken_pg + taken_rocks, records / 2) << counts;
  EXPECT_LE(decoded_pg + decoded_rocks, records + records / 2) << counts;
}

TEST_F(SchemaRegistrySources, InspectReadsTheThreeFormatsAndPrintsWorkingDefinitions) {
  std::map<std::string, std::string> topics = {{"avro", Topic("inspect-avro")},
                                               {"protobuf", Topic("inspect-proto")},
                                               {"json_sr", Topic("inspect-json")}};
  std::map<std::string, nlohmann::json> refs;
  for (const auto& [format, topic] : topics) refs[format] = Produce(format, topic);
  std::string all;
  for (const auto& [format, topic] : topics) {
    RunResult r = RunFreshet(
        {"inspect", topic, "--brokers", KafkaBrokers(), "--schema-registry", url_, "--name", format}, {});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("fields of the writer schema"), std::string::npos) << r.output;
    const std::string marker = "review the guesses before using it):\n";
    auto at = r.output.find(marker);
    ASSERT_NE(at, std::string::npos) << r.output;
    std::string rest = r.output.substr(at + marker.size());
    auto d = nlohmann::ordered_json::parse(rest.substr(0, rest.find("\n}\n") + 2), nullptr, false);
    ASSERT_TRUE(d.is_object()) << r.output;
    EXPECT_EQ(d["source"]["format"], format);
    EXPECT_EQ(d["source"]["schema_registry"]["url"], url_);
    EXPECT_EQ(d["source"]["envelope"], "upsert");
    if (format == "avro") {
      EXPECT_EQ(d["source"]["key_format"], "avro");
      EXPECT_EQ(d["columns"]["amount"]["type"], "numeric");
      EXPECT_EQ(d["columns"]["day"]["type"], "date");
      EXPECT_EQ(d["columns"]["at"]["type"], "timestamptz");
    } else if (format == "protobuf") {
      EXPECT_EQ(d["columns"]["at"]["type"], "timestamptz");
      EXPECT_EQ(d["columns"]["voucher"]["type"], "bigint");
    } else {
      EXPECT_EQ(d["columns"]["amount"]["type"], "numeric");
    }
    all += (all.empty() ? "" : ",") + d.dump();
  }
  // The printed definitions, as they are, materialize their topics.
  FreshetProcess views({"views", "--config", WriteConfig("[" + all + "]")}, env_, prefix_);
  for (const auto& [format, topic] : topics)
    ASSERT_TRUE(WaitUntil([&] { return CaughtUp(format, topic); }, 60s, 50ms)) << format << "\n"
                                                                               << views.Log();
  for (const auto& [format, ref] : refs)
    EXPECT_EQ(Query("SELECT count(*) FROM " + format)[0][0], std::to_string(ref["rows"].size())) << format;
  EXPECT_TRUE(ReadDeadLetters(dlq_, 1, 1s).empty());
}

}  // namespace
}  // namespace freshet
