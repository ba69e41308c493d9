#include "live/sql_query.h"

#include <gtest/gtest.h>

namespace freshet {
namespace {

std::string Request(const std::string& sql) {
  return nlohmann::json{{"sql", sql}, {"key", {"store"}}}.dump();
}

TEST(LiveSql, AcceptsOneSelect) {
  auto r = ParseLiveQueryRequest(
      R"({"sql": "SELECT store, sum(on_hand) AS total FROM stock_levels GROUP BY store;  ", "key": ["store"], "min_interval_ms": 50})");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->sql, "SELECT store, sum(on_hand) AS total FROM stock_levels GROUP BY store");
  EXPECT_EQ(r->key, std::vector<std::string>{"store"});
  EXPECT_EQ(r->min_interval_ms, 50);
  EXPECT_TRUE(ParseLiveQueryRequest(Request("with t as (select 1 as store) select * from t")).ok());
  // Semicolons and keywords inside literals, quoted names and comments are text.
  EXPECT_TRUE(ParseLiveQueryRequest(Request("SELECT 'a;b; delete' AS store -- ; drop table x\n")).ok());
  EXPECT_TRUE(ParseLiveQueryRequest(Request("SELECT $x$;delete$x$ AS store /* ; */")).ok());
}

TEST(LiveSql, RefusesAnythingElseWithAReason) {
  struct Case {
    std::string sql, reason;
  };
  for (const Case& c : std::vector<Case>{
           {"DELETE FROM stock_levels", "only a single SELECT is allowed, not delete"},
           {"SELECT 1 AS store; DELETE FROM stock_levels", "only a single statement"},
           {"SELECT 1 AS store;;", "only a single statement"},
           {"WITH d AS (DELETE FROM stock_levels RETURNING *) SELECT * FROM d", "found delete"},
           {"SELECT * INTO backup FROM stock_levels", "found into"},
           {"update stock_levels set on_hand = 0", "not update"},
           {"SELECT 'unterminated", "unterminated string literal"},
           {"   ", "empty query"},
       }) {
    auto r = ParseLiveQueryRequest(Request(c.sql));
    ASSERT_FALSE(r.ok()) << c.sql;
    EXPECT_NE(r.status().message().find(c.reason), std::string::npos)
        << c.sql << ": " << r.status().message();
  }
  EXPECT_FALSE(ParseLiveQueryRequest("not json").ok());
  EXPECT_NE(ParseLiveQueryRequest(R"({"sql": "select 1"})").status().message().find("key: required"),
            std::string::npos);
  EXPECT_NE(ParseLiveQueryRequest(R"({"sql": "select 1", "key": ["a"], "min_interval_ms": 1})")
                .status()
                .message()
                .find("min_interval_ms"),
            std::string::npos);
  EXPECT_NE(ParseLiveQueryRequest(R"({"sql": "select 1", "key": ["a"], "limit": 3})")
                .status()
                .message()
                .find("limit: unknown field"),
            std::string::npos);
}

TEST(LiveSql, FindsTheViewsAQueryNames) {
  std::set<std::string> views = {"stock_levels", "low_stock", "sales"};
  EXPECT_EQ(ReferencedViews("SELECT * FROM Stock_Levels s JOIN \"low_stock\" l USING (sku) WHERE x = 'sales'",
                            views),
            (std::set<std::string>{"stock_levels", "low_stock"}));
  EXPECT_TRUE(ReferencedViews("SELECT 1 -- sales", views).empty());
}

TEST(LiveSql, DiffsByKey) {
  KeyedRows before = {{"[\"a\"]", {{"k", "a"}, {"v", 1}}}, {"[\"b\"]", {{"k", "b"}, {"v", 2}}}};
  KeyedRows after = {{"[\"a\"]", {{"k", "a"}, {"v", 1}}},
                     {"[\"b\"]", {{"k", "b"}, {"v", 3}}},
                     {"[\"c\"]", {{"k", "c"}, {"v", 4}}}};
  ResultDiff d = DiffResults(before, after, {"k"});
  EXPECT_EQ(d.added, nlohmann::json::array({{{"k", "c"}, {"v", 4}}}));
  EXPECT_EQ(d.changed, nlohmann::json::array({{{"k", "b"}, {"v", 3}}}));
  EXPECT_TRUE(d.removed.empty());
  ResultDiff back = DiffResults(after, before, {"k"});
  EXPECT_EQ(back.removed, nlohmann::json::array({{{"k", "c"}}}));
  EXPECT_TRUE(DiffResults(before, before, {"k"}).empty());
}

}  // namespace
}  // namespace freshet
