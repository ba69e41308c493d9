// Reading records of each format and envelope, and what a view makes of
// them: the row a declarative view writes for a decoded record.
#include "sources/record_decoder.h"

#include <gtest/gtest.h>

#include "views/declarative_projection.h"
#include "views/view_spec.h"

namespace freshet {
namespace {

SourceSpec Source(const std::string& json) {
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(json);
  auto spec = ParseSourceSpec(&j, "source");
  EXPECT_TRUE(spec.ok()) << spec.status().message();
  return spec.ok() ? spec.value() : SourceSpec();
}

RawRecord Record(std::optional<std::string_view> key, std::optional<std::string_view> value) {
  RawRecord raw;
  raw.topic = "t";
  raw.partition = 1;
  raw.offset = 42;
  raw.timestamp_ms = 1700000000000;
  raw.key = key;
  raw.value = value;
  return raw;
}

TEST(SourceSpec, DefaultsToTheWritersTopicInFreshetsEnvelope) {
  auto spec = ParseSourceSpec(nullptr, "source");
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->topic, "");
  EXPECT_EQ(spec->envelope, SourceEnvelope::kFreshet);
  EXPECT_EQ(Source(R"({"format": "json"})").envelope, SourceEnvelope::kAppend);
}

TEST(SourceSpec, RefusesWhatItDoesNotKnowNamingTheField) {
  auto bad = [](const std::string& json) {
    nlohmann::ordered_json j = nlohmann::ordered_json::parse(json);
    return ParseSourceSpec(&j, "v.source").status().message();
  };
  EXPECT_EQ(bad(R"({"format": "xml"})"),
            "v.source.format: expected freshet, json, avro, protobuf or json_sr");
  if (!std::getenv("FRESHET_SCHEMA_REGISTRY_URL")) {
    EXPECT_NE(bad(R"({"format": "avro"})").find("reads its schemas from a schema registry"),
              std::string::npos);
  }
  EXPECT_NE(bad(R"({"format": "avro", "schema_registry": {"url": "ftp://x"}})")
                .find("v.source.schema_registry.url"),
            std::string::npos);
  EXPECT_NE(bad(R"({"format": "json", "key_format": "xml"})").find("v.source.key_format"), std::string::npos);
  EXPECT_EQ(bad(R"({"format": "json", "envelope": "freshet"})"),
            "v.source.envelope: the freshet envelope goes with the freshet format, and only with it");
  EXPECT_NE(bad(R"({"topic": "a b"})").find("v.source.topic"), std::string::npos);
  EXPECT_NE(bad(R"({"colour": 1})").find("v.source.colour: unknown key"), std::string::npos);
  EXPECT_NE(bad(R"({"format": "json", "timestamp": "$ts"})").find("v.source.timestamp"), std::string::npos);
}

TEST(RecordDecoder, ReadsFreshetEventsAsDecodeEventValueDoes) {
  RecordDecoder decoder(SourceSpec(), false);
  SourceRecord r;
  std::string value = R"({"type": "StockSold", "id": "c1", "ts": 1234, "data": {"qty": 2}})";
  auto raw = Record("s1", value);
  ASSERT_TRUE(decoder.Decode(raw, &r).ok());
  EXPECT_EQ(r.type, "StockSold");
  EXPECT_EQ(r.id, "c1");
  EXPECT_EQ(r.ts_ms, 1234);
  EXPECT_EQ(r.change, SourceRecord::Change::kEvent);
  auto tombstone = Record("s1", std::nullopt);
  EXPECT_EQ(decoder.Decode(tombstone, &r).message(),
            "event value is null (a tombstone), not a freshet event");
}

TEST(RecordDecoder, AppendTakesTheTypeFromAHeaderAPointerOrAConstant) {
  auto raw = Record("k", R"({"kind": "OrderPlaced", "at": 99})");
  raw.headers = {{"event-type", "FromHeader"}};
  SourceRecord r;
  RecordDecoder by_header(Source(R"({"format": "json", "type": "$header.event-type"})"), false);
  ASSERT_TRUE(by_header.Decode(raw, &r).ok());
  EXPECT_EQ(r.type, "FromHeader");
  EXPECT_EQ(r.ts_ms, 1700000000000) << "the Kafka timestamp";
  RecordDecoder by_pointer(Source(R"({"format": "json", "type": "/kind", "timestamp": "/at"})"), false);
  ASSERT_TRUE(by_pointer.Decode(raw, &r).ok());
  EXPECT_EQ(r.type, "OrderPlaced");
  EXPECT_EQ(r.ts_ms, 99);
  RecordDecoder constant(Source(R"({"format": "json", "type": "Order"})"), false);
  ASSERT_TRUE(constant.Decode(raw, &r).ok());
  EXPECT_EQ(r.type, "Order");
  auto tombstone = Record("k", std::nullopt);
  ASSERT_TRUE(constant.Decode(tombstone, &r).ok());
  EXPECT_EQ(r.change, SourceRecord::Change::kSkip);
  auto poison = Record("k", "{not json");
  EXPECT_EQ(constant.Decode(poison, &r).message(), "value is not valid JSON");
}

TEST(RecordDecoder, UpsertDeletesOnATombstoneAndNeedsAKey) {
  RecordDecoder decoder(Source(R"({"format": "json", "envelope": "upsert"})"), true);
  SourceRecord r;
  auto row = Record(R"({"id": 7})", R"({"name": "x"})");
  ASSERT_TRUE(decoder.Decode(row, &r).ok());
  EXPECT_EQ(r.change, SourceRecord::Change::kEvent);
  ASSERT_TRUE(r.has_key_json);
  FieldRef id = ParseFieldRef("$key/id", "k").value();
  simdjson::dom::element e;
  ASSERT_TRUE(FindElement(r, id, &e));
  EXPECT_EQ(int64_t(e), 7);
  auto tombstone = Record(R"({"id": 7})", std::nullopt);
  ASSERT_TRUE(decoder.Decode(tombstone, &r).ok());
  EXPECT_EQ(r.change, SourceRecord::Change::kDelete);
  auto keyless = Record(std::nullopt, R"({"name": "x"})");
  EXPECT_EQ(decoder.Decode(keyless, &r).message(),
            "upsert record without a key: the key is the row's identity");
}

// A Debezium change event as its JSON converter writes it with schemas.
std::string Debezium(const std::string& op, const std::string& before, const std::string& after) {
  return R"({"schema": {"type": "struct", "fields": [
      {"type": "struct", "field": "before", "fields": [{"type": "int32", "field": "id"}]},
      {"type": "struct", "field": "after", "fields": [
        {"type": "int32", "field": "id"},
        {"type": "bytes", "field": "balance", "name": "org.apache.kafka.connect.data.Decimal",
         "parameters": {"scale": "2", "connect.decimal.precision": "12"}},
        {"type": "int64", "field": "updated", "name": "io.debezium.time.MicroTimestamp"},
        {"type": "string", "field": "created", "name": "io.debezium.time.ZonedTimestamp"},
        {"type": "int32", "field": "born", "name": "io.debezium.time.Date"}]}]},
    "payload": {"before": )" +
         before + R"(, "after": )" + after + R"(, "op": ")" + op +
         R"(", "ts_ms": 1, "source": {"table": "customers"}}})";
}

TEST(RecordDecoder, DebeziumChangeEventsInBothConverterShapes) {
  RecordDecoder decoder(Source(R"({"format": "json", "envelope": "debezium"})"), false);
  SourceRecord r;
  std::string created = Debezium("c", "null", R"({"id": 1, "balance": "AeJA"})");
  auto raw = Record(R"({"id": 1})", created);
  ASSERT_TRUE(decoder.Decode(raw, &r).ok());
  EXPECT_EQ(r.change, SourceRecord::Change::kEvent);
  EXPECT_EQ(r.type, "c");
  ASSERT_NE(r.Logical("balance"), nullptr);
  EXPECT_EQ(r.Logical("balance")->scale, 2);

  auto bare = Record(R"({"id": 1})", R"({"before": {"id": 1}, "after": null, "op": "d", "ts_ms": 1})");
  ASSERT_TRUE(decoder.Decode(bare, &r).ok());
  EXPECT_EQ(r.change, SourceRecord::Change::kDelete);
  EXPECT_TRUE(r.has_data) << "the delete's before names the row";

  auto tombstone = Record(R"({"id": 1})", std::nullopt);
  ASSERT_TRUE(decoder.Decode(tombstone, &r).ok());
  EXPECT_EQ(r.change, SourceRecord::Change::kSkip);

  auto no_op = Record("k", R"({"before": null, "after": {"id": 1}})");
  EXPECT_NE(decoder.Decode(no_op, &r).message().find("Debezium record without \"op\""), std::string::npos);
  auto truncate = Record("k", R"({"op": "t", "ts_ms": 1})");
  EXPECT_NE(decoder.Decode(truncate, &r).message().find("truncate"), std::string::npos);
}

// The row a latest view writes for one Debezium record.
std::vector<std::optional<std::string>> RowFor(const std::string& value) {
  auto specs = ParseViewSpecs(nlohmann::ordered_json::parse(R"([{"name": "customers", "kind": "latest",
      "source": {"format": "json", "envelope": "debezium"},
      "key": {"id": {"from": "/id", "type": "bigint"}},
      "columns": {"balance": {"from": "/balance", "type": "numeric"},
                  "updated": {"from": "/updated", "type": "timestamptz"},
                  "created": {"from": "/created", "type": "timestamptz"},
                  "born": {"from": "/born", "type": "date"}}}])"),
                              "views");
  EXPECT_TRUE(specs.ok()) << specs.status().message();
  DeclarativeProjection projection((*specs)[0]);
  RecordDecoder decoder((*specs)[0].source, false);
  auto raw = Record("k", value);
  SourceRecord r;
  Status st = decoder.Decode(raw, &r);
  if (st.ok()) st = projection.ApplyRecord(r);
  EXPECT_TRUE(st.ok()) << st.message();
  auto rows = projection.TakePending();
  return rows.empty() ? std::vector<std::optional<std::string>>{} : rows[0].values;
}

TEST(DeclarativeProjection, ConvertsDebeziumLogicalTypes) {
  auto values = RowFor(Debezium("u", "null", R"({"id": 1, "balance": "AeJA", "updated": 1700000000123456,
                                                  "created": "2024-01-02T03:04:05.000000Z", "born": 19000})"));
  ASSERT_EQ(values.size(), 4u);
  EXPECT_EQ(values[0], "1234.56");
  EXPECT_EQ(values[1], "2023-11-14 22:13:20.123456+00");
  EXPECT_EQ(values[2], "2024-01-02T03:04:05.000000Z");
  EXPECT_EQ(values[3], "2022-01-08");
  // Negative, and smaller than its scale.
  EXPECT_EQ(RowFor(Debezium("c", "null", R"({"id": 2, "balance": "/h3A"})"))[0], "-1234.56");
  EXPECT_EQ(RowFor(Debezium("c", "null", R"({"id": 3, "balance": "BQ=="})"))[0], "0.05");
  EXPECT_EQ(RowFor(Debezium("c", "null", R"({"id": 4, "balance": "AA=="})"))[0], "0.00");
}

TEST(DeclarativeProjection, ValuesThatDoNotFitTheirColumnAreBadRecordsNamingTheColumn) {
  auto specs = ParseViewSpecs(nlohmann::ordered_json::parse(R"([{"name": "t", "kind": "latest",
      "source": {"format": "json"}, "key": {"k": "/k"},
      "columns": {"n": {"from": "/n", "type": "numeric"}, "d": {"from": "/d", "type": "date"},
                  "u": {"from": "/u", "type": "uuid"}, "s": "/s"}}])"),
                              "views");
  ASSERT_TRUE(specs.ok()) << specs.status().message();
  auto apply = [&](const std::string& value) {
    DeclarativeProjection projection((*specs)[0]);
    RecordDecoder decoder((*specs)[0].source, false);
    auto raw = Record("k", value);
    SourceRecord r;
    Status st = decoder.Decode(raw, &r);
    return st.ok() ? projection.ApplyRecord(r) : st;
  };
  EXPECT_TRUE(
      apply(R"({"k": "a", "n": "12.50", "d": "2024-02-29", "u": "123e4567-e89b-12d3-a456-426614174000"})")
          .ok());
  EXPECT_TRUE(apply(R"({"k": "a", "n": 1e3})").ok());
  EXPECT_EQ(apply(R"({"k": "a", "n": "12,5"})").message(),
            "column n: expected a number or a decimal string, got string \"12,5\"");
  EXPECT_EQ(apply(R"({"k": "a", "d": "29.02.2024"})").message(),
            "column d: expected a date YYYY-MM-DD, got string \"29.02.2024\"");
  EXPECT_NE(apply(R"({"k": "a", "u": "nope"})").message().find("column u: expected a UUID"),
            std::string::npos);
  EXPECT_NE(apply(R"({"k": "a", "s": "nul\u0000here"})").message().find("column s: text with a NUL"),
            std::string::npos);
}

// Found by the fuzzers: each of these once killed the view process or
// produced text Postgres refuses (failing the whole batch's COPY).
TEST(DeclarativeProjection, HostileValuesAreBadRecordsNotCrashes) {
  auto specs = ParseViewSpecs(nlohmann::ordered_json::parse(R"([{"name": "t", "kind": "latest",
      "source": {"format": "json"}, "key": {"k": "$key"},
      "columns": {"j": {"from": "$key", "type": "jsonb"}, "t": {"from": "/t", "type": "timestamptz"},
                  "born": {"from": "/born", "type": "date"}}}])"),
                              "views");
  ASSERT_TRUE(specs.ok()) << specs.status().message();
  auto apply = [&](std::string key, const std::string& value) -> std::pair<Status, std::vector<RowWrite>> {
    DeclarativeProjection projection((*specs)[0]);
    RecordDecoder decoder((*specs)[0].source, false);
    auto raw = Record(key, value);
    SourceRecord r;
    Status st = decoder.Decode(raw, &r);
    if (st.ok()) st = projection.ApplyRecord(r);
    return {st, projection.TakePending()};
  };
  EXPECT_NE(apply("\xA2", "{}").first.message().find("column k: not valid UTF-8"), std::string::npos);
  auto [st, rows] = apply("k", R"({"t": -1})");
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(rows[0].values[1], "1969-12-31 23:59:59.999+00");
  EXPECT_NE(apply("k", R"({"t": 9223372036854775807})").first.message().find("within the years 1 to 9999"),
            std::string::npos);

  // Debezium's schema bounds nothing: a huge scale or date is refused, not computed.
  auto debezium = [&](const std::string& field_schema, const std::string& after) {
    auto dbz = ParseViewSpecs(nlohmann::ordered_json::parse(R"([{"name": "d", "kind": "latest",
        "source": {"format": "json", "envelope": "debezium"}, "key": {"id": "/id"},
        "columns": {"v": {"from": "/v", "type": "numeric"}, "born": {"from": "/born", "type": "date"}}}])"),
                              "views");
    EXPECT_TRUE(dbz.ok());
    DeclarativeProjection projection((*dbz)[0]);
    RecordDecoder decoder((*dbz)[0].source, false);
    std::string value = R"({"schema": {"fields": [{"field": "after", "fields": [)" + field_schema +
                        R"(]}]}, "payload": {"op": "c", "after": )" + after + "}}";
    auto raw = Record("k", value);
    SourceRecord r;
    Status s = decoder.Decode(raw, &r);
    return s.ok() ? projection.ApplyRecord(r) : s;
  };
  EXPECT_NE(
      debezium(
          R"({"field": "v", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2000000000"}})",
          R"({"id": 1, "v": "AeJA"})")
          .message()
          .find("column v: expected a Decimal of at most 1,024 bytes"),
      std::string::npos);
  EXPECT_NE(debezium(R"({"field": "born", "name": "io.debezium.time.Date"})",
                     R"({"id": 1, "born": 200000000000000})")
                .message()
                .find("column born: expected a date within the years 1 to 9999"),
            std::string::npos);
  auto dx = Record("k", R"({"op": "dx", "before": {"id": 1}})");
  RecordDecoder decoder(Source(R"({"format": "json", "envelope": "debezium"})"), false);
  SourceRecord r;
  EXPECT_EQ(decoder.Decode(dx, &r).message(), "Debezium record with unknown op \"dx\"");
}

TEST(DeclarativeProjection, AKafkaKeyOfDigitsFitsABigintColumn) {
  auto specs = ParseViewSpecs(nlohmann::ordered_json::parse(R"([{"name": "t", "kind": "latest",
      "source": {"format": "json", "envelope": "upsert"}, "key": {"id": {"from": "$key", "type": "bigint"}},
      "columns": {"n": "/n"}}])"),
                              "views");
  ASSERT_TRUE(specs.ok()) << specs.status().message();
  DeclarativeProjection projection((*specs)[0]);
  RecordDecoder decoder((*specs)[0].source, false);
  SourceRecord r;
  auto digits = Record("12345", R"({"n": "x"})");
  ASSERT_TRUE(decoder.Decode(digits, &r).ok());
  ASSERT_TRUE(projection.ApplyRecord(r).ok());
  EXPECT_EQ(projection.TakePending()[0].key[0], "12345");
  auto letters = Record("12a", R"({"n": "x"})");
  ASSERT_TRUE(decoder.Decode(letters, &r).ok());
  EXPECT_EQ(projection.ApplyRecord(r).message(), "column id: expected an integer, got string \"12a\"");
}

TEST(ViewSpec, AFieldOfTheWrongTypeIsNamedNotThrown) {
  auto parse = [](const std::string& json) {
    return ParseViewSpecs(nlohmann::ordered_json::parse(json), "views").status().message();
  };
  EXPECT_EQ(parse(R"([{"name": "x", "kind": 5}])"), "views[0](x).kind: expected a string");
  EXPECT_EQ(
      parse(
          R"([{"name": "x", "kind": "latest", "key": {"k": "/k"}, "columns": {"c": "/c"}, "delivery": true}])"),
      "views[0](x).delivery: expected a string");
  EXPECT_EQ(
      parse(
          R"([{"name": "x", "kind": "aggregate", "group_by": {"k": "/k"}, "aggregates": {"n": {"fn": 1}}}])"),
      "views[0](x).aggregates.n.fn: expected a string");
  EXPECT_EQ(parse(R"([{"name": "x", "kind": "latest", "key": {"k": "/k"}, "columns": {"c": "/c"},
                       "where": {"field": 5, "op": "=", "value": 1}}])"),
            "views[0](x).where.field: expected a string");
}

// An aggregate over a changelog keeps one row per source row (keyed by the
// Kafka key) and lets its SQL view aggregate them: a delete or a replaced
// row takes its contribution with it.
TEST(DeclarativeProjection, AggregateOverAChangelogKeepsOneRowPerSourceRow) {
  auto specs = ParseViewSpecs(nlohmann::ordered_json::parse(R"([{"name": "per_region", "kind": "aggregate",
      "source": {"format": "json", "envelope": "upsert"},
      "group_by": {"region": "/region"},
      "aggregates": {"n": {"fn": "count"}, "total": {"fn": "sum", "from": "/amount"}}}])"),
                              "views");
  ASSERT_TRUE(specs.ok()) << specs.status().message();
  DeclarativeProjection projection((*specs)[0]);
  const TableSpec& t = projection.table();
  ASSERT_EQ(t.key_columns.size(), 1u);
  EXPECT_EQ(t.key_columns[0].name, "__row");
  EXPECT_EQ(t.view_group_by, "\"region\"");
  EXPECT_EQ(t.view_select,
            "\"region\", count(*) AS \"n\", coalesce(sum(\"__in_total\"), 0)::double precision AS \"total\"");
  RecordDecoder decoder((*specs)[0].source, false);
  SourceRecord r;
  auto a = Record("row-1", R"({"region": "north", "amount": 5})");
  ASSERT_TRUE(decoder.Decode(a, &r).ok());
  ASSERT_TRUE(projection.ApplyRecord(r).ok());
  auto gone = Record("row-2", std::nullopt);
  ASSERT_TRUE(decoder.Decode(gone, &r).ok());
  ASSERT_TRUE(projection.ApplyRecord(r).ok());
  auto rows = projection.TakePending();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].key[0], "row-1");
  EXPECT_EQ(rows[0].values[0], "north");
  EXPECT_EQ(rows[0].values[1], "5");
  EXPECT_TRUE(rows[1].deleted);
}

TEST(ViewSpec, RefusesAggregatesOverChangelogsAndUpsertKeysOutsideTheKafkaKey) {
  auto parse = [](const std::string& json) {
    return ParseViewSpecs(nlohmann::ordered_json::parse(json), "views").status().message();
  };
  EXPECT_NE(parse(R"([{"name": "a", "kind": "aggregate", "source": {"format": "json", "envelope": "debezium"},
                       "group_by": {"g": "/g"}, "aggregates": {"n": {"fn": "count"}}, "stores": ["rocksdb"]}])")
                .find("views[0](a).stores: an aggregate over a changelog (envelope debezium) is computed by "
                      "Postgres"),
            std::string::npos);
  EXPECT_EQ(parse(R"([{"name": "a", "kind": "latest", "source": {"format": "json", "envelope": "upsert"},
                       "key": {"id": "/id"}, "columns": {"x": "/x"}}])"),
            "views[0](a).key.id: an upsert source's rows are identified by the Kafka key: use $key or "
            "$key/pointer, "
            "not /id");
  EXPECT_NE(parse(R"([{"name": "a", "kind": "latest", "key": {"id": "$nope"}, "columns": {"x": "/x"}}])")
                .find("views[0](a).key.id: expected a JSON pointer"),
            std::string::npos);
}

}  // namespace
}  // namespace freshet
