#include <gtest/gtest.h>

#include <random>

#include "writer/accounts.h"

namespace freshet {
namespace {

nlohmann::json Cmd(const std::string& type, int64_t amount, const std::string& account = "a1") {
  nlohmann::json c = {{"type", type}, {"account", account}};
  c[type == "open" ? "overdraft_limit" : "amount"] = amount;
  return c;
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class AccountsDecider : public ::testing::Test {
 protected:
  // Decides and, when accepted, commits; returns the events or the refusal.
  Result<std::vector<Event>> Run(const nlohmann::json& body) {
    auto command = AccountsDomain::ParseCommand(body);
    if (!command.ok()) return command.status();
    auto decided = state_.Decide(*command);
    if (!decided.ok()) return decided.status();
    state_.CommitPending();
    // As a view reads them from the topic.
    std::vector<Event> events;
    for (const DecidedEvent& e : *decided) {
      auto event = DecodeEventValue(e.value);
      if (!event.ok()) return event.status();
      EXPECT_EQ(event->type, e.type);
      events.push_back(std::move(*event));
    }
    return events;
  }
  nlohmann::json AccountJson(const std::string& account = "a1") {
    return state_.EntityJson(account, "balance");
  }
  OverlayState<AccountsDomain> state_;
};

TEST_F(AccountsDecider, OpensDepositsAndWithdrawsWithTheBalanceInEachEvent) {
  auto opened = Run(Cmd("open", 50));
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  ASSERT_EQ(opened->size(), 1u);
  EXPECT_EQ((*opened)[0].type, "AccountOpened");
  EXPECT_EQ((*opened)[0].data["overdraft_limit"], 50);
  EXPECT_EQ((*opened)[0].data["balance"], 0);

  auto deposited = Run(Cmd("deposit", 30));
  ASSERT_TRUE(deposited.ok());
  EXPECT_EQ((*deposited)[0].type, "MoneyDeposited");
  EXPECT_EQ((*deposited)[0].data["amount"], 30);
  EXPECT_EQ((*deposited)[0].data["balance"], 30);

  auto withdrawn = Run(Cmd("withdraw", 70));
  ASSERT_TRUE(withdrawn.ok());
  EXPECT_EQ((*withdrawn)[0].type, "MoneyWithdrawn");
  EXPECT_EQ((*withdrawn)[0].data["account"], "a1");
  EXPECT_EQ((*withdrawn)[0].data["balance"], -40);

  EXPECT_EQ(AccountJson(), (nlohmann::json{{"balance", -40}, {"overdraft_limit", 50}}));
}

TEST_F(AccountsDecider, CommandIdBecomesTheEventId) {
  nlohmann::json open = Cmd("open", 0);
  open["id"] = "req-7";
  auto events = Run(open);
  ASSERT_TRUE(events.ok());
  EXPECT_EQ((*events)[0].id, "req-7");
}

TEST_F(AccountsDecider, RefusesOpeningAnOpenAccount) {
  ASSERT_TRUE(Run(Cmd("open", 10)).ok());
  auto again = Run(Cmd("open", 99));
  EXPECT_EQ(again.status().code(), StatusCode::kRefused);
  EXPECT_TRUE(Contains(again.status().message(), "account a1 is already open")) << again.status().message();
  EXPECT_EQ(AccountJson()["overdraft_limit"], 10);
}

TEST_F(AccountsDecider, RefusesMoneyOnAnAccountThatIsNotOpen) {
  for (const char* type : {"deposit", "withdraw"}) {
    auto refused = Run(Cmd(type, 5));
    EXPECT_EQ(refused.status().code(), StatusCode::kRefused) << type;
    EXPECT_TRUE(Contains(refused.status().message(), "account a1 is not open")) << refused.status().message();
  }
  EXPECT_TRUE(AccountJson().is_null());
}

TEST_F(AccountsDecider, RefusesWithdrawalBeyondTheOverdraftLimit) {
  ASSERT_TRUE(Run(Cmd("open", 100)).ok());
  ASSERT_TRUE(Run(Cmd("deposit", 20)).ok());
  auto refused = Run(Cmd("withdraw", 121));
  EXPECT_EQ(refused.status().code(), StatusCode::kRefused);
  EXPECT_TRUE(Contains(refused.status().message(),
                       "would take account a1 to -101, beyond its overdraft limit of 100"))
      << refused.status().message();
  EXPECT_EQ(AccountJson()["balance"], 20);
  ASSERT_TRUE(Run(Cmd("withdraw", 120)).ok());  // exactly at the limit is allowed
  EXPECT_EQ(AccountJson()["balance"], -100);
}

TEST_F(AccountsDecider, RefusesDepositBeyondTheMaximumBalance) {
  constexpr int64_t kMax = 1'000'000'000'000;
  ASSERT_TRUE(Run(Cmd("open", 0)).ok());
  ASSERT_TRUE(Run(Cmd("deposit", kMax)).ok());
  auto refused = Run(Cmd("deposit", 1));
  EXPECT_EQ(refused.status().code(), StatusCode::kRefused);
  EXPECT_TRUE(Contains(refused.status().message(), "balance would exceed 1000000000000"))
      << refused.status().message();
  EXPECT_EQ(AccountJson()["balance"], kMax);
}

TEST_F(AccountsDecider, MalformedCommandsNameTheField) {
  auto message = [&](const nlohmann::json& body) {
    auto r = Run(body);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << body.dump();
    return r.status().message();
  };
  EXPECT_TRUE(Contains(message(nlohmann::json::array()), "expected a JSON object"));
  EXPECT_TRUE(Contains(message({{"account", "a1"}}), "type: required"));
  EXPECT_TRUE(Contains(message({{"type", "deposit"}, {"amount", 1}}), "account: required"));
  EXPECT_TRUE(Contains(message({{"type", "deposit"}, {"account", ""}, {"amount", 1}}), "account: required"));
  EXPECT_TRUE(Contains(message({{"type", "deposit"}, {"account", "a1"}}), "amount: required"));
  EXPECT_TRUE(Contains(message({{"type", "deposit"}, {"account", "a1"}, {"amount", "5"}}),
                       "amount: expected an integer"));
  EXPECT_TRUE(Contains(message(Cmd("deposit", 0)), "amount: must be between 1 and"));
  EXPECT_TRUE(Contains(message(Cmd("open", -1)), "overdraft_limit: must be between 0 and"));
  EXPECT_TRUE(Contains(message({{"type", "close"}, {"account", "a1"}}), "unknown command type \"close\""));
  nlohmann::json bad_id = Cmd("open", 0);
  bad_id["id"] = 42;
  EXPECT_TRUE(Contains(message(bad_id), "id: expected a string"));
}

TEST_F(AccountsDecider, AccountsAreIndependent) {
  ASSERT_TRUE(Run(Cmd("open", 0, "a1")).ok());
  EXPECT_EQ(Run(Cmd("withdraw", 1, "a1")).status().code(), StatusCode::kRefused);
  ASSERT_TRUE(Run(Cmd("open", 5, "a2")).ok());
  ASSERT_TRUE(Run(Cmd("withdraw", 5, "a2")).ok());
  EXPECT_EQ(AccountJson("a1")["balance"], 0);
  EXPECT_EQ(AccountJson("a2")["balance"], -5);
}

TEST_F(AccountsDecider, DroppedOverlayLeavesStateUntouched) {
  ASSERT_TRUE(Run(Cmd("open", 0)).ok());
  ASSERT_TRUE(Run(Cmd("deposit", 10)).ok());
  auto withdraw = AccountsDomain::ParseCommand(Cmd("withdraw", 10));
  ASSERT_TRUE(state_.Decide(*withdraw).ok());
  // A second withdrawal in the same batch sees the first one's pending effect.
  EXPECT_EQ(state_.Decide(*withdraw).status().code(), StatusCode::kRefused);
  state_.DropPending();  // the Kafka transaction aborted
  EXPECT_EQ(AccountJson()["balance"], 10);
}

TEST_F(AccountsDecider, EvolveTakesTheBalanceFromTheEvent) {
  Event e{
      "MoneyDeposited", "", 0, {{"account", "a1"}, {"amount", 5}, {"balance", 12}, {"overdraft_limit", 3}}};
  EXPECT_EQ(AccountsDomain::EntityKeyOf(e), "a1");
  ::freshet::Account after = AccountsDomain::Evolve({}, e);
  EXPECT_TRUE(after.opened);
  EXPECT_EQ(after.balance, 12);
  EXPECT_EQ(after.overdraft_limit, 3);
  EXPECT_EQ(AccountsDomain::EntityKeyOf(Event{"Other", "", 0, {{"x", 1}}}), "");
}

TEST_F(AccountsDecider, SnapshotRoundTripsAndRejectsOtherShapes) {
  ::freshet::Account a{true, -7, 10};
  auto back = AccountsDomain::EntityFromSnapshot(AccountsDomain::EntityToSnapshot(a));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->opened, true);
  EXPECT_EQ(back->balance, -7);
  EXPECT_EQ(back->overdraft_limit, 10);
  EXPECT_FALSE(AccountsDomain::EntityFromSnapshot(nlohmann::json{true, 1}).ok());
  EXPECT_FALSE(AccountsDomain::EntityFromSnapshot(nlohmann::json{1, 1, 1}).ok());
}

// Random command sequences never take a balance beyond its overdraft limit,
// a refused command changes nothing, and replaying the accepted events
// rebuilds the same state (recovery).
TEST_F(AccountsDecider, RandomSequencesKeepTheInvariantAndReplay) {
  OverlayState<AccountsDomain> replica;
  std::mt19937 rng(4321);
  const char* types[] = {"open", "deposit", "withdraw", "withdraw"};
  for (int i = 0; i < 20000; ++i) {
    std::string account = rng() % 2 ? "a1" : "a2";
    std::string type = types[rng() % 4];
    nlohmann::json before = AccountJson(account);
    auto events = Run(Cmd(type, static_cast<int64_t>(rng() % 50) + 1, account));
    if (!events.ok()) {
      ASSERT_EQ(events.status().code(), StatusCode::kRefused) << events.status().message();
      EXPECT_EQ(AccountJson(account), before);
      continue;
    }
    for (const Event& e : *events) {
      auto decoded = DecodeEventValue(EncodeEventValue(e));
      ASSERT_TRUE(decoded.ok());
      ASSERT_TRUE(replica.ApplyCommitted(*decoded).ok());
    }
    nlohmann::json after = AccountJson(account);
    ASSERT_GE(after["balance"].get<int64_t>(), -after["overdraft_limit"].get<int64_t>());
  }
  for (const char* account : {"a1", "a2"})
    EXPECT_EQ(replica.EntityJson(account, "balance"), AccountJson(account));
}

}  // namespace
}  // namespace freshet
