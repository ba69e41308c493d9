// The typed half of the decider contract (writer/decider.h), on the small
// domain docs/library.md shows: commands and events in the domain's own
// structs, JSON only where they meet HTTP and Kafka.
#include <gtest/gtest.h>

#include "core/json_text.h"
#include "writer/decider.h"

namespace freshet {
namespace {

struct Counters {
  using Entity = int64_t;
  struct Add {
    int64_t by = 0;
  };
  struct Added {
    std::string counter;
    int64_t by = 0;
    int64_t total = 0;
  };
  using CommandData = Add;
  using EventData = Added;

  static Result<Command> ParseCommand(const nlohmann::json& body) {
    auto counter = body.find("counter");
    if (counter == body.end() || !counter->is_string())
      return Status::InvalidArgument("counter: required string");
    auto by = body.find("by");
    if (by == body.end() || !by->is_number_integer())
      return Status::InvalidArgument("by: expected an integer");
    Command c;
    c.type = "add";
    c.partition_key = counter->get<std::string>();
    c.fields = Add{by->get<int64_t>()};
    return c;
  }
  static Result<std::vector<TypedEvent<Added>>> Decide(const StateView<int64_t>& state, const Command& c,
                                                       const Add& fields) {
    const int64_t* now = state.Find(c.partition_key);
    int64_t total = (now ? *now : 0) + fields.by;
    if (total < 0) return Status::Refused("a counter does not go below zero");
    return OneEvent(TypedEvent<Added>{"Added", {c.partition_key, fields.by, total}});
  }
  static std::string EntityKeyOf(const Added& e) { return e.counter; }
  static int64_t Evolve(const int64_t&, const Added& e) { return e.total; }
  static void AppendEventData(const Added& e, std::string* json) {
    json->append("{\"by\":");
    AppendInteger(e.by, json);
    json->append(",\"counter\":");
    AppendJsonString(e.counter, json);
    json->append(",\"total\":");
    AppendInteger(e.total, json);
    json->push_back('}');
  }
  static Result<Added> DecodeEventData(const Event& e) {
    Added added;
    auto counter = e.data.find("counter");
    auto total = e.data.find("total");
    if (counter == e.data.end() || !counter->is_string())
      return Status::InvalidArgument("data.counter: missing");
    if (total == e.data.end() || !total->is_number_integer())
      return Status::InvalidArgument("data.total: missing");
    added.counter = counter->get<std::string>();
    added.total = total->get<int64_t>();
    added.by = e.data.value("by", int64_t{0});
    return added;
  }
  static nlohmann::json EntityToJson(const int64_t& n) { return n; }
  static std::string EntityKeyFromPath(const std::string& counter, const std::string&) { return counter; }
};

Command Add(const std::string& counter, int64_t by, const std::string& id = "") {
  Command c = Counters::ParseCommand({{"counter", counter}, {"by", by}}).value();
  c.id = id;
  return c;
}

TEST(TypedDomain, DecidesFromItsStructsAndWritesTheEnvelopeWithTheCommandsId) {
  OverlayState<Counters> state;
  auto events = state.Decide(Add("visits", 3, "req-1"));
  ASSERT_TRUE(events.ok()) << events.status().ToString();
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].type, "Added");
  auto event = DecodeEventValue((*events)[0].value);
  ASSERT_TRUE(event.ok()) << event.status().ToString() << " in " << (*events)[0].value;
  EXPECT_EQ(event->type, "Added");
  EXPECT_EQ(event->id, "req-1");
  EXPECT_GT(event->ts_ms, 0);
  EXPECT_EQ(event->data, nlohmann::json({{"by", 3}, {"counter", "visits"}, {"total", 3}}));
  // Pending until committed; the next command sees it.
  EXPECT_EQ(state.EntityJson("visits", ""), nullptr);
  ASSERT_TRUE(state.Decide(Add("visits", 2)).ok());
  state.CommitPending();
  EXPECT_EQ(state.EntityJson("visits", ""), 5);
}

TEST(TypedDomain, ARefusalOrADroppedBatchChangesNothing) {
  OverlayState<Counters> state;
  ASSERT_TRUE(state.Decide(Add("stock", 1)).ok());
  state.CommitPending();
  EXPECT_EQ(state.Decide(Add("stock", -2)).status().code(), StatusCode::kRefused);
  ASSERT_TRUE(state.Decide(Add("stock", 4)).ok());
  state.DropPending();
  EXPECT_EQ(state.EntityJson("stock", ""), 1);
}

TEST(TypedDomain, EventsReadBackRebuildTheStateAndABrokenOneIsNamed) {
  OverlayState<Counters> writer, replica;
  for (int64_t by : {5, 7, -3}) {
    auto events = writer.Decide(Add("c", by));
    ASSERT_TRUE(events.ok());
    writer.CommitPending();
    for (const DecidedEvent& e : *events)
      ASSERT_TRUE(replica.ApplyCommitted(*DecodeEventValue(e.value)).ok());
  }
  EXPECT_EQ(replica.EntityJson("c", ""), 9);
  Event broken;
  broken.type = "Added";
  broken.data = {{"counter", "c"}};
  Status st = replica.ApplyCommitted(broken);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("data.total"), std::string::npos) << st.message();
  EXPECT_EQ(replica.EntityJson("c", ""), 9);
}

TEST(TypedDomain, ACommandWithoutItsFieldsIsRefusedAsInvalid) {
  OverlayState<Counters> state;
  Command c;
  c.type = "add";
  c.partition_key = "c";
  c.data = {{"by", 1}};  // JSON, not Counters::Add
  EXPECT_EQ(state.Decide(c).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace freshet
