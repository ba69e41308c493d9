#include "views/view_store.h"

#include <gtest/gtest.h>

namespace freshet {
namespace {

// RocksDB rows are written as JSON text built by hand (AppendTypedColumn)
// while feeds build json values (TypedColumn): both must give one value.
TEST(ViewStore, TypedColumnTextAndValueAgree) {
  struct Case {
    std::optional<std::string> text;
    std::string sql_type;
    nlohmann::json expected;
  };
  const std::vector<Case> cases = {
      {"42", "bigint", 42},
      {"-9223372036854775808", "bigint", INT64_MIN},
      {"12abc", "bigint", "12abc"},  // not a number: kept as text, not cut to 12
      {"2.5", "double precision", 2.5},
      {"3", "double precision", 3.0},
      {"1e+21", "double precision", 1e21},
      {"NaN", "double precision", "NaN"},  // no JSON form
      {"true", "boolean", true},
      {"f", "boolean", false},
      {R"({"a": [1, "x"]})", "jsonb", nlohmann::json::parse(R"({"a": [1, "x"]})")},
      {"{not json", "jsonb", "{not json"},
      {"say \"hi\"\\\n\t\x01 ünï", "text", "say \"hi\"\\\n\t\x01 ünï"},
      {"2023-11-14 22:13:20.123+00", "timestamptz", "2023-11-14 22:13:20.123+00"},
      {std::nullopt, "bigint", nullptr},
  };
  for (const Case& c : cases) {
    std::string text;
    AppendTypedColumn(&text, c.text, c.sql_type);
    nlohmann::json parsed = nlohmann::json::parse(text, nullptr, false);
    ASSERT_FALSE(parsed.is_discarded()) << text;
    EXPECT_EQ(parsed, c.expected) << c.sql_type << " " << text;
    // 3.0 must stay a double: an aggregate's merge adds integers as integers.
    EXPECT_EQ(parsed.is_number_float(), c.expected.is_number_float()) << c.sql_type << " " << text;
    EXPECT_EQ(TypedColumn(c.text, c.sql_type), c.expected) << c.sql_type << " " << c.text.value_or("(null)");
  }
}

}  // namespace
}  // namespace freshet
