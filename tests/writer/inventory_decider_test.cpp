#include <gtest/gtest.h>

#include <random>

#include "writer/inventory.h"

namespace freshet {
namespace {

nlohmann::json Cmd(const std::string& type, int64_t qty, bool from_reservation = false) {
  nlohmann::json c = {{"type", type}, {"store", "s1"}, {"sku", "A"}};
  if (type == "adjust")
    c["counted"] = qty;
  else
    c["qty"] = qty;
  if (from_reservation) c["from_reservation"] = true;
  return c;
}

class InventoryDecider : public ::testing::Test {
 protected:
  // Decides and, when accepted, commits; returns the status.
  Status Run(const nlohmann::json& body) {
    auto command = InventoryDomain::ParseCommand(body);
    if (!command.ok()) return command.status();
    auto events = state_.Decide(*command);
    if (!events.ok()) return events.status();
    state_.CommitPending();
    return Status::Ok();
  }
  nlohmann::json Item() { return state_.EntityJson("s1", "A"); }
  OverlayState<InventoryDomain> state_;
};

TEST_F(InventoryDecider, ReceivesStock) {
  ASSERT_TRUE(Run(Cmd("receive", 10)).ok());
  EXPECT_EQ(Item()["on_hand"], 10);
}

TEST_F(InventoryDecider, RefusesSaleBeyondOnHand) {
  ASSERT_TRUE(Run(Cmd("receive", 3)).ok());
  Status st = Run(Cmd("sell", 4));
  EXPECT_EQ(st.code(), StatusCode::kRefused);
  EXPECT_NE(st.message().find("insufficient stock"), std::string::npos);
  EXPECT_EQ(Item()["on_hand"], 3);
}

TEST_F(InventoryDecider, RefusesSaleOfReservedStock) {
  ASSERT_TRUE(Run(Cmd("receive", 5)).ok());
  ASSERT_TRUE(Run(Cmd("reserve", 4)).ok());
  EXPECT_EQ(Run(Cmd("sell", 2)).code(), StatusCode::kRefused);
  ASSERT_TRUE(Run(Cmd("sell", 1)).ok());
  ASSERT_TRUE(Run(Cmd("sell", 4, true)).ok());
  EXPECT_EQ(Item()["on_hand"], 0);
  EXPECT_EQ(Item()["reserved"], 0);
}

TEST_F(InventoryDecider, RefusesReleaseBeyondReserved) {
  ASSERT_TRUE(Run(Cmd("receive", 5)).ok());
  ASSERT_TRUE(Run(Cmd("reserve", 2)).ok());
  EXPECT_EQ(Run(Cmd("release", 3)).code(), StatusCode::kRefused);
  ASSERT_TRUE(Run(Cmd("release", 2)).ok());
}

TEST_F(InventoryDecider, RefusesCountBelowReserved) {
  ASSERT_TRUE(Run(Cmd("receive", 5)).ok());
  ASSERT_TRUE(Run(Cmd("reserve", 3)).ok());
  EXPECT_EQ(Run(Cmd("adjust", 2)).code(), StatusCode::kRefused);
  ASSERT_TRUE(Run(Cmd("adjust", 3)).ok());
  EXPECT_EQ(Item()["on_hand"], 3);
}

TEST_F(InventoryDecider, MalformedCommandsNameTheField) {
  EXPECT_NE(Run({{"type", "sell"}, {"store", "s1"}, {"sku", "A"}}).message().find("qty: required"),
            std::string::npos);
  EXPECT_NE(Run({{"type", "sell"}, {"store", "s1"}, {"sku", "A"}, {"qty", "2"}})
                .message()
                .find("qty: expected an integer"),
            std::string::npos);
  EXPECT_NE(Run({{"type", "sell"}, {"store", "s1"}, {"sku", "A"}, {"qty", -1}}).message().find("qty"),
            std::string::npos);
  EXPECT_NE(Run({{"type", "steal"}, {"store", "s1"}, {"sku", "A"}}).message().find("unknown command type"),
            std::string::npos);
  EXPECT_NE(Run({{"type", "sell"}, {"sku", "A"}, {"qty", 1}}).message().find("store: required"),
            std::string::npos);
}

TEST_F(InventoryDecider, DroppedOverlayLeavesStateUntouched) {
  ASSERT_TRUE(Run(Cmd("receive", 5)).ok());
  auto command = InventoryDomain::ParseCommand(Cmd("sell", 5));
  ASSERT_TRUE(state_.Decide(*command).ok());
  // A second sale in the same batch sees the first one's pending effect.
  auto again = state_.Decide(*command);
  EXPECT_EQ(again.status().code(), StatusCode::kRefused);
  state_.DropPending();  // the Kafka transaction aborted
  EXPECT_EQ(Item()["on_hand"], 5);
}

// Random command sequences never reach a state that breaks an invariant,
// and a refused command changes nothing.
// A pending entity writes its committed entry through a pointer kept since
// its first change; committing thousands of new entities in the same batch
// rehashes the committed map on the way, and the pointers must still land.
TEST_F(InventoryDecider, OneCommitOfManyNewEntitiesKeepsTheChangedOldOnes) {
  for (const char* sku : {"A", "B", "C"}) {
    nlohmann::json c = Cmd("receive", 10);
    c["sku"] = sku;
    ASSERT_TRUE(Run(c).ok());
  }
  for (const char* sku : {"A", "B", "C"}) {  // changes to committed entities...
    nlohmann::json c = Cmd("sell", 3);
    c["sku"] = sku;
    ASSERT_TRUE(state_.Decide(*InventoryDomain::ParseCommand(c)).ok());
  }
  for (int i = 0; i < 5000; ++i) {  // ...and new ones, all in one batch
    nlohmann::json c = Cmd("receive", i + 1);
    c["sku"] = "new-" + std::to_string(i);
    ASSERT_TRUE(state_.Decide(*InventoryDomain::ParseCommand(c)).ok());
  }
  nlohmann::json again = Cmd("sell", 2);  // a second change to an entity pending already
  ASSERT_TRUE(state_.Decide(*InventoryDomain::ParseCommand(again)).ok());
  state_.CommitPending();

  EXPECT_EQ(state_.entity_count(), 5003u);
  EXPECT_EQ(state_.EntityJson("s1", "A")["on_hand"], 5);
  EXPECT_EQ(state_.EntityJson("s1", "B")["on_hand"], 7);
  EXPECT_EQ(state_.EntityJson("s1", "C")["on_hand"], 7);
  EXPECT_EQ(state_.EntityJson("s1", "new-0")["on_hand"], 1);
  EXPECT_EQ(state_.EntityJson("s1", "new-4999")["on_hand"], 5000);
}

TEST_F(InventoryDecider, RandomSequencesKeepInvariants) {
  std::mt19937 rng(1234);
  const char* types[] = {"receive", "reserve", "release", "sell", "adjust"};
  for (int i = 0; i < 20000; ++i) {
    std::string type = types[rng() % 5];
    nlohmann::json c =
        Cmd(type, static_cast<int64_t>(rng() % 12) + (type == "adjust" ? 0 : 1), rng() % 3 == 0);
    if (rng() % 2) c["sku"] = "B";
    nlohmann::json before_a = state_.EntityJson("s1", "A"), before_b = state_.EntityJson("s1", "B");
    Status st = Run(c);
    if (!st.ok()) {
      ASSERT_EQ(st.code(), StatusCode::kRefused) << st.message();
      EXPECT_EQ(state_.EntityJson("s1", "A"), before_a);
      EXPECT_EQ(state_.EntityJson("s1", "B"), before_b);
    }
    for (const char* sku : {"A", "B"}) {
      nlohmann::json item = state_.EntityJson("s1", sku);
      if (item.is_null()) continue;
      ASSERT_GE(item["on_hand"].get<int64_t>(), 0);
      ASSERT_GE(item["reserved"].get<int64_t>(), 0);
      ASSERT_LE(item["reserved"].get<int64_t>(), item["on_hand"].get<int64_t>());
    }
  }
}

// Replaying the events a decider emitted rebuilds the same state (recovery).
TEST_F(InventoryDecider, ReplayingEventsRebuildsState) {
  OverlayState<InventoryDomain> replica;
  std::mt19937 rng(99);
  const char* types[] = {"receive", "reserve", "release", "sell", "adjust"};
  for (int i = 0; i < 2000; ++i) {
    auto command = InventoryDomain::ParseCommand(Cmd(types[rng() % 5], static_cast<int64_t>(rng() % 9) + 1));
    ASSERT_TRUE(command.ok());
    auto events = state_.Decide(*command);
    if (!events.ok()) continue;
    state_.CommitPending();
    for (const DecidedEvent& e : *events) {
      auto decoded = DecodeEventValue(e.value);
      ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
      ASSERT_TRUE(replica.ApplyCommitted(*decoded).ok());
    }
  }
  EXPECT_EQ(replica.EntityJson("s1", "A"), state_.EntityJson("s1", "A"));
}

// Typed events reach Kafka as the same bytes as JSON events, with the
// command's id and a time.
TEST_F(InventoryDecider, TypedEventsAreWrittenAsTheJsonLibraryWritesThem) {
  ASSERT_TRUE(Run(Cmd("receive", 5)).ok());
  nlohmann::json body = Cmd("sell", 2);
  body["id"] = "req-\"7\"";
  auto command = InventoryDomain::ParseCommand(body);
  ASSERT_TRUE(command.ok());
  int64_t before = NowMillis();
  auto events = state_.Decide(*command);
  ASSERT_TRUE(events.ok()) << events.status().ToString();
  ASSERT_EQ(events->size(), 1u);
  const DecidedEvent& sold = (*events)[0];
  EXPECT_EQ(sold.type, "StockSold");
  nlohmann::json value = nlohmann::json::parse(sold.value);
  // The bytes an Event with the same fields is encoded as (held to the
  // JSON library's dump() by Envelope.EncodesExactlyAsTheJsonLibraryDumps).
  auto as_event = DecodeEventValue(sold.value);
  ASSERT_TRUE(as_event.ok());
  EXPECT_EQ(sold.value, EncodeEventValue(*as_event));
  EXPECT_EQ(value["type"], "StockSold");
  EXPECT_EQ(value["id"], "req-\"7\"");
  EXPECT_GE(value["ts"].get<int64_t>(), before);
  EXPECT_EQ(value["data"], nlohmann::json({{"store", "s1"},
                                           {"sku", "A"},
                                           {"qty", 2},
                                           {"delta", -2},
                                           {"on_hand", 3},
                                           {"reserved", 0},
                                           {"from_reservation", false}}));
}

// A command the domain's ParseCommand did not make (its fields as JSON,
// not as the domain's struct) is refused as invalid, not decided.
TEST_F(InventoryDecider, ACommandWithoutTheDomainsFieldsIsRefusedAsInvalid) {
  Command c;
  c.type = "receive";
  c.partition_key = "s1";
  c.data = {{"sku", "A"}, {"qty", 1}};
  auto events = state_.Decide(c);
  ASSERT_FALSE(events.ok());
  EXPECT_EQ(events.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(events.status().message().find("not made by this domain's ParseCommand"), std::string::npos)
      << events.status().message();
  state_.CommitPending();
  EXPECT_EQ(state_.entity_count(), 0u);
}

// An event read back that lacks what rebuilds the state is refused, named.
TEST_F(InventoryDecider, AnEventReadBackWithoutItsStateIsRefusedNamingTheField) {
  Event e;
  e.type = "StockSold";
  e.data = {{"store", "s1"}, {"sku", "A"}, {"on_hand", 3}};
  Status st = state_.ApplyCommitted(e);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("StockSold"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("data.reserved"), std::string::npos) << st.message();
  EXPECT_EQ(state_.entity_count(), 0u);
}

}  // namespace
}  // namespace freshet
