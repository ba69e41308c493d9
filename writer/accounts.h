// A second example domain, to keep the decider API honest: account balances
// with an overdraft limit, partitioned by account.
//
// Commands: {"type": "open", "account": "a1", "overdraft_limit": 100}
//           {"type": "deposit" | "withdraw", "account": "a1", "amount": 25}
// Invariant: balance >= -overdraft_limit. Events: AccountOpened,
// MoneyDeposited, MoneyWithdrawn, each with {account, amount, balance}.
// GET /state/{account}/balance reads an account.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "writer/decider.h"

namespace freshet {

struct Account {
  bool opened = false;
  int64_t balance = 0;
  int64_t overdraft_limit = 0;
};

struct AccountsDomain {
  using Entity = Account;
  static Result<Command> ParseCommand(const nlohmann::json& body);
  static Result<std::vector<Event>> Decide(const StateView<Account>& state, const Command& command);
  static std::string EntityKeyOf(const Event& event);
  static Account Evolve(const Account& before, const Event& event);
  static nlohmann::json EntityToJson(const Account& account);
  static std::string EntityKeyFromPath(const std::string& account, const std::string& entity);
  static nlohmann::json EntityToSnapshot(const Account& account);
  static Result<Account> EntityFromSnapshot(const nlohmann::json& j);
};

std::unique_ptr<Domain> MakeAccountsDomain();

}  // namespace freshet
