#include "views/view_spec.h"

#include <gtest/gtest.h>

#include "views/declarative_projection.h"
#include "views/view_runner.h"
#include "writer/domain_registry.h"

namespace freshet {
namespace {

using json = nlohmann::ordered_json;

json StockOnHand() {
  return json::parse(R"({"name": "stock_on_hand", "kind": "latest",
    "key": {"store": "/store", "sku": "/sku"},
    "columns": {"on_hand": {"from": "/on_hand", "type": "bigint"}, "at": {"from": "$ts"}},
    "delete_on": ["ItemDiscontinued"]})");
}

json SalesPerHour() {
  return json::parse(R"({"name": "sales_per_store_hour", "kind": "aggregate", "event_types": ["StockSold"],
    "group_by": {"store": "/store", "hour": {"from": "$ts", "bucket": "hour"}},
    "aggregates": {"units": {"fn": "sum", "from": "/qty"}, "sales": {"fn": "count"},
                   "biggest": {"fn": "max", "from": "/qty"}, "smallest": {"fn": "min", "from": "/qty"},
                   "avg_qty": {"fn": "avg", "from": "/qty"}}})");
}

std::string ErrorOf(const json& spec) {
  auto specs = ParseViewSpecs(json::array({spec}), "views.definitions");
  return specs.ok() ? "" : specs.status().message();
}

TEST(ViewSpec, ParsesLatestAndAggregateViews) {
  auto specs = ParseViewSpecs(json::array({StockOnHand(), SalesPerHour()}), "views.definitions");
  ASSERT_TRUE(specs.ok()) << specs.status().ToString();
  ASSERT_EQ(specs->size(), 2u);
  EXPECT_EQ((*specs)[0].kind, ViewKind::kLatest);
  EXPECT_EQ((*specs)[0].key_columns.size(), 2u);
  EXPECT_EQ((*specs)[1].kind, ViewKind::kAggregate);
  EXPECT_EQ((*specs)[1].key_columns[1].name, "hour");  // as written
  EXPECT_EQ((*specs)[1].key_columns[1].bucket, TimeBucket::kHour);
}

TEST(ViewSpec, ErrorsNameTheViewAndTheField) {
  json bad = StockOnHand();
  bad["colums"] = bad["columns"];
  EXPECT_NE(ErrorOf(bad).find("views.definitions[0](stock_on_hand).colums: unknown key"), std::string::npos)
      << ErrorOf(bad);

  bad = StockOnHand();
  bad["columns"]["on_hand"]["type"] = "integer";
  EXPECT_NE(ErrorOf(bad).find("(stock_on_hand).columns.on_hand.type"), std::string::npos) << ErrorOf(bad);

  bad = SalesPerHour();
  bad["aggregates"]["units"]["fn"] = "median";
  EXPECT_NE(ErrorOf(bad).find("aggregates.units.fn"), std::string::npos) << ErrorOf(bad);

  bad = SalesPerHour();
  bad["group_by"]["hour"] = json{{"from", "/when"}, {"bucket", "hour"}};
  EXPECT_NE(ErrorOf(bad).find("group_by.hour.bucket"), std::string::npos) << ErrorOf(bad);

  bad = StockOnHand();
  bad["key"]["store"] = "store";
  EXPECT_NE(ErrorOf(bad).find("key.store"), std::string::npos) << ErrorOf(bad);

  bad = StockOnHand();
  bad["kind"] = "table";
  EXPECT_NE(ErrorOf(bad).find(".kind"), std::string::npos);
}

TEST(ViewSpec, NamesCannotCarrySql) {
  json bad = StockOnHand();
  bad["name"] = "x; DROP TABLE users; --";
  EXPECT_NE(ErrorOf(bad).find(".name: must be a lower-case identifier"), std::string::npos) << ErrorOf(bad);
  bad = StockOnHand();
  bad["columns"]["on_hand\" text); DROP TABLE t; --"] = "/x";
  EXPECT_NE(ErrorOf(bad).find("lower-case identifier"), std::string::npos) << ErrorOf(bad);
  EXPECT_FALSE(IsValidIdentifier("Stock"));
  EXPECT_FALSE(IsValidIdentifier("1abc"));
  EXPECT_TRUE(IsValidIdentifier("_stock_2"));
}

TEST(ViewSpec, DuplicateViewNamesAreRefused) {
  auto specs = ParseViewSpecs(json::array({StockOnHand(), StockOnHand()}), "views.definitions");
  ASSERT_FALSE(specs.ok());
  EXPECT_NE(specs.status().message().find("views.definitions[1].name"), std::string::npos);
}

TEST(ViewSpec, VersionFollowsTheDefinitionNotTheFreshness) {
  auto version = [](const json& j) { return ParseViewSpecs(json::array({j}), "v")->front().version; };
  json a = StockOnHand();
  json b = a;
  b["freshness"] = {{"flush_interval_ms", 5}, {"priority", "batch"}};
  json c = a;
  c["columns"]["reserved"] = json{{"from", "/reserved"}, {"type", "bigint"}};
  EXPECT_EQ(version(a), version(b));
  EXPECT_NE(version(a), version(c));
}

Event Ev(const std::string& type, nlohmann::json data, int64_t ts = 1700000000000) {
  return Event{type, "", ts, std::move(data)};
}

TEST(DeclarativeProjection, LatestRowCoalescesPerKeyAndDeletes) {
  auto spec = ParseViewSpecs(json::array({StockOnHand()}), "v")->front();
  DeclarativeProjection p(spec);
  ASSERT_TRUE(p.Apply(Ev("StockReceived", {{"store", "s1"}, {"sku", "a"}, {"on_hand", 5}})).ok());
  ASSERT_TRUE(p.Apply(Ev("StockSold", {{"store", "s1"}, {"sku", "a"}, {"on_hand", 3}})).ok());
  ASSERT_TRUE(p.Apply(Ev("StockReceived", {{"store", "s1"}, {"sku", "b"}, {"on_hand", 1}})).ok());
  ASSERT_TRUE(p.Apply(Ev("ItemDiscontinued", {{"store", "s1"}, {"sku", "b"}})).ok());
  auto rows = p.TakePending();
  ASSERT_EQ(rows.size(), 2u);  // one write per key
  // Columns as written: on_hand, at.
  EXPECT_EQ(rows[0].key, (std::vector<std::string>{"s1", "a"}));
  EXPECT_EQ(rows[0].values[0], "3");
  EXPECT_EQ(rows[0].values[1], "2023-11-14 22:13:20.000+00");
  EXPECT_TRUE(rows[1].deleted);
  EXPECT_TRUE(p.TakePending().empty());
}

TEST(DeclarativeProjection, WhereMakesRowsLeaveTheView) {
  json spec_json = StockOnHand();
  spec_json["name"] = "low_stock";
  spec_json["where"] = {{"field", "/on_hand"}, {"op", "<"}, {"value", 5}};
  DeclarativeProjection p(ParseViewSpecs(json::array({spec_json}), "v")->front());
  ASSERT_TRUE(p.Apply(Ev("StockSold", {{"store", "s"}, {"sku", "a"}, {"on_hand", 2}})).ok());
  auto low = p.TakePending();
  ASSERT_EQ(low.size(), 1u);
  EXPECT_FALSE(low[0].deleted);
  ASSERT_TRUE(p.Apply(Ev("StockReceived", {{"store", "s"}, {"sku", "a"}, {"on_hand", 20}})).ok());
  auto restocked = p.TakePending();
  ASSERT_EQ(restocked.size(), 1u);
  EXPECT_TRUE(restocked[0].deleted);
}

TEST(DeclarativeProjection, AggregatesCoalesceIntoPartials) {
  DeclarativeProjection p(ParseViewSpecs(json::array({SalesPerHour()}), "v")->front());
  int64_t hour = 1700000000000 - 1700000000000 % 3600000;
  ASSERT_TRUE(p.Apply(Ev("StockSold", {{"store", "s1"}, {"qty", 2}}, hour + 10)).ok());  // key: store, hour
  ASSERT_TRUE(p.Apply(Ev("StockSold", {{"store", "s1"}, {"qty", 6}}, hour + 20)).ok());
  ASSERT_TRUE(p.Apply(Ev("StockSold", {{"store", "s1"}, {"qty", 1}}, hour + 3600000)).ok());
  ASSERT_TRUE(p.Apply(Ev("StockReceived", {{"store", "s1"}, {"qty", 100}}, hour))
                  .ok());  // not an event type of the view
  // A wrong field type is refused and changes nothing.
  EXPECT_FALSE(p.Apply(Ev("StockSold", {{"store", "s1"}, {"qty", "two"}}, hour)).ok());
  auto rows = p.TakePending();
  ASSERT_EQ(rows.size(), 2u);  // two hours
  // Table columns as written: units, sales, biggest, smallest, avg_qty__sum, avg_qty__count.
  const auto& first = rows[0];
  EXPECT_EQ(first.key[0], "s1");
  EXPECT_EQ(first.values[0], "8");
  EXPECT_EQ(first.values[1], "2");
  EXPECT_EQ(first.values[2], "6");
  EXPECT_EQ(first.values[3], "2");
  EXPECT_EQ(first.values[4], "8");
  EXPECT_EQ(first.values[5], "2");
  EXPECT_EQ(p.table().value_columns[4].name, "avg_qty__sum");
  EXPECT_NE(p.table().view_select.find("AS \"avg_qty\""), std::string::npos);
}

TEST(DeclarativeProjection, MissingKeyFieldIsABadEvent) {
  DeclarativeProjection p(ParseViewSpecs(json::array({StockOnHand()}), "v")->front());
  Status st = p.Apply(Ev("Bogus", json::object()));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("key column"), std::string::npos);
}

// The engine hands the topic's bytes to ApplyValue, which reads them with
// simdjson: it must refuse what DecodeEventValue refuses, in its words, and
// read every column type as the nlohmann-based code did.
TEST(DeclarativeProjection, ApplyValueReadsEventsAsDecodeEventValueDoes) {
  DeclarativeProjection p(ParseViewSpecs(json::array({StockOnHand()}), "v")->front());
  for (std::string bad :
       {"not json", "[1]", R"({"data": {}})", R"({"type": 7, "data": {}})", R"({"type": "X", "data": 3})",
        R"({"type": "X", "ts": "now", "data": {}})", R"({"type": "X", "id": 5, "data": {}})",
        R"({"type": "X", "ts": 1.5, "data": {}})"}) {
    int64_t ts = 0;
    Status st = p.ApplyValue(bad, 0, 0, &ts);
    ASSERT_FALSE(st.ok()) << bad;
    EXPECT_EQ(st.message(), DecodeEventValue(bad).status().message()) << bad;
  }
  EXPECT_TRUE(p.TakePending().empty());

  json spec = json::parse(R"({"name": "typed", "kind": "latest", "key": {"k": "/k"},
    "where": {"field": "/flag", "op": "=", "value": true},
    "columns": {"nested": {"from": "/a/b"}, "second": {"from": "/list/1", "type": "bigint"},
                "whole": {"from": "/whole", "type": "bigint"}, "price": {"from": "/price", "type": "double"},
                "flag": {"from": "/flag", "type": "boolean"}, "when": {"from": "/when", "type": "timestamptz"},
                "doc": {"from": "/a", "type": "jsonb"}, "slash": {"from": "/x~1y"}, "missing": {"from": "/nope"},
                "type": {"from": "$type"}, "id": {"from": "$id"}}})");
  auto typed_spec = ParseViewSpecs(json::array({spec}), "v");
  ASSERT_TRUE(typed_spec.ok()) << typed_spec.status().ToString();
  DeclarativeProjection typed(typed_spec->front());
  int64_t ts = 0;
  std::string value =
      R"({"type": "T", "id": "e1", "ts": 42, "data": {"k": "k1", "a": {"b": {"c": [1, "two"]}},
    "list": [10, 20], "whole": 3.0, "price": 2.5, "flag": true, "when": 1700000000123, "x/y": "s", "nope": null}})";
  Status st = typed.ApplyValue(value, 3, 7, &ts);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(ts, 42);
  auto rows = typed.TakePending();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].partition, 3);
  EXPECT_EQ(rows[0].offset, 7);
  ASSERT_FALSE(rows[0].deleted);
  std::vector<std::optional<std::string>> expected = {
      R"({"c":[1,"two"]})",       "20", "3",          "2.5", "true", "2023-11-14 22:13:20.123+00",
      R"({"b":{"c":[1,"two"]}})", "s",  std::nullopt, "T",   "e1"};
  EXPECT_EQ(rows[0].values, expected);

  // `where` compares other JSON types by value: false leaves the view.
  ASSERT_TRUE(typed.ApplyValue(R"({"type": "T", "data": {"k": "k1", "flag": false}})", 0, 8, &ts).ok());
  rows = typed.TakePending();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_TRUE(rows[0].deleted);

  // A mistyped field names the column, the type and the value.
  st = typed.ApplyValue(R"({"type": "T", "data": {"k": "k1", "list": [1, "x"]}})", 0, 9, &ts);
  EXPECT_EQ(st.message(), R"(column second: expected an integer, got string "x")");
  EXPECT_TRUE(typed.TakePending().empty());
}

TEST(ViewSpec, CppViewNamesARegisteredProjectionAndTakesNoEventFilters) {
  auto specs = ParseViewSpecs(nlohmann::ordered_json::parse(
                                  R"([{"name": "stock_levels", "kind": "cpp", "projection": "stock_levels",
                                       "freshness": {"flush_interval_ms": 20}}])"),
                              "views.definitions");
  ASSERT_TRUE(specs.ok()) << specs.status().ToString();
  EXPECT_EQ((*specs)[0].kind, ViewKind::kCpp);
  EXPECT_EQ((*specs)[0].projection, "stock_levels");
  auto made = MakeViewProjection((*specs)[0], StockProjections());
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_EQ((*made)->table().view_name, "stock_levels");

  auto missing = ParseViewSpecs(nlohmann::ordered_json::parse(R"([{"name": "x", "kind": "cpp"}])"), "v");
  EXPECT_NE(missing.status().message().find("v[0](x).projection"), std::string::npos)
      << missing.status().ToString();
  auto filtered =
      ParseViewSpecs(nlohmann::ordered_json::parse(
                         R"([{"name": "x", "kind": "cpp", "projection": "p", "event_types": ["A"]}])"),
                     "v");
  EXPECT_FALSE(filtered.ok());

  // Unknown, or registered under another view's name: refused, saying what is registered.
  auto unknown = ParseViewSpecs(
      nlohmann::ordered_json::parse(R"([{"name": "seats", "kind": "cpp", "projection": "seats"}])"), "v");
  ASSERT_TRUE(unknown.ok());
  auto not_made = MakeViewProjection((*unknown)[0], StockProjections());
  EXPECT_EQ(not_made.status().message(),
            "view seats: projection: no C++ projection named \"seats\"; registered: stock_levels");
  auto renamed = ParseViewSpecs(
      nlohmann::ordered_json::parse(R"([{"name": "levels", "kind": "cpp", "projection": "stock_levels"}])"),
      "v");
  ASSERT_TRUE(renamed.ok());
  EXPECT_NE(MakeViewProjection((*renamed)[0], StockProjections())
                .status()
                .message()
                .find("writes the view \"stock_levels\""),
            std::string::npos);
}

TEST(DomainRegistry, MakesRegisteredDomainsAndNamesThemWhenAskedForAnother) {
  DomainRegistry domains = StockDomains();
  auto inventory = domains.Make("inventory");
  ASSERT_TRUE(inventory.ok());
  EXPECT_EQ((*inventory)->name(), "inventory");
  auto other = domains.Make("bookings");
  EXPECT_EQ(other.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(other.status().message(), "no domain named \"bookings\"; registered: accounts, inventory");
}

}  // namespace
}  // namespace freshet
