#include "writer/accounts.h"

namespace freshet {
namespace {

constexpr int64_t kMaxAmount = 1'000'000'000'000;

Status RequireAmount(const nlohmann::json& body, const char* field, int64_t min, int64_t* out) {
  auto it = body.find(field);
  if (it == body.end()) return Status::InvalidArgument(std::string(field) + ": required");
  if (!it->is_number_integer()) return Status::InvalidArgument(std::string(field) + ": expected an integer");
  *out = it->get<int64_t>();
  if (*out < min || *out > kMaxAmount)
    return Status::InvalidArgument(std::string(field) + ": must be between " + std::to_string(min) + " and " +
                                   std::to_string(kMaxAmount));
  return Status::Ok();
}

Event MakeEvent(const char* type, const Command& c, int64_t amount, const Account& after) {
  Event e{type,
          c.id,
          NowMillis(),
          {{"account", c.partition_key},
           {"amount", amount},
           {"balance", after.balance},
           {"overdraft_limit", after.overdraft_limit}}};
  return e;
}

}  // namespace

Result<Command> AccountsDomain::ParseCommand(const nlohmann::json& body) {
  if (!body.is_object()) return Status::InvalidArgument("command: expected a JSON object");
  Command c;
  auto type = body.find("type");
  if (type == body.end() || !type->is_string()) return Status::InvalidArgument("type: required string");
  c.type = type->get<std::string>();
  auto account = body.find("account");
  if (account == body.end() || !account->is_string() || account->get<std::string>().empty())
    return Status::InvalidArgument("account: required non-empty string");
  c.partition_key = account->get<std::string>();
  if (auto id = body.find("id"); id != body.end()) {
    if (!id->is_string() || id->get<std::string>().empty())
      return Status::InvalidArgument("id: expected a string");
    c.id = id->get<std::string>();
  }
  int64_t n = 0;
  if (c.type == "open") {
    FRESHET_RETURN_IF_ERROR(RequireAmount(body, "overdraft_limit", 0, &n));
    c.data = {{"overdraft_limit", n}};
  } else if (c.type == "deposit" || c.type == "withdraw") {
    FRESHET_RETURN_IF_ERROR(RequireAmount(body, "amount", 1, &n));
    c.data = {{"amount", n}};
  } else {
    return Status::InvalidArgument("type: unknown command type \"" + c.type +
                                   "\" (expected open, deposit or withdraw)");
  }
  return c;
}

Result<std::vector<Event>> AccountsDomain::Decide(const StateView<Account>& state, const Command& c) {
  const Account* found = state.Find(c.partition_key);
  Account a = found ? *found : Account{};
  if (c.type == "open") {
    if (a.opened) return Status::Refused("account " + c.partition_key + " is already open");
    a.opened = true;
    a.overdraft_limit = c.data["overdraft_limit"].get<int64_t>();
    return OneEvent(MakeEvent("AccountOpened", c, 0, a));
  }
  if (!a.opened) return Status::Refused("account " + c.partition_key + " is not open");
  int64_t amount = c.data["amount"].get<int64_t>();
  if (c.type == "deposit") {
    if (a.balance + amount > kMaxAmount)
      return Status::Refused("balance would exceed " + std::to_string(kMaxAmount));
    a.balance += amount;
    return OneEvent(MakeEvent("MoneyDeposited", c, amount, a));
  }
  if (a.balance - amount < -a.overdraft_limit)
    return Status::Refused("withdrawing " + std::to_string(amount) + " would take account " +
                           c.partition_key + " to " + std::to_string(a.balance - amount) +
                           ", beyond its overdraft limit of " + std::to_string(a.overdraft_limit));
  a.balance -= amount;
  return OneEvent(MakeEvent("MoneyWithdrawn", c, amount, a));
}

std::string AccountsDomain::EntityKeyOf(const Event& e) {
  auto account = e.data.find("account");
  return account != e.data.end() && account->is_string() ? account->get<std::string>() : "";
}

Account AccountsDomain::Evolve(const Account& before, const Event& e) {
  Account after = before;
  after.opened = true;
  if (auto it = e.data.find("balance"); it != e.data.end() && it->is_number_integer()) after.balance = *it;
  if (auto it = e.data.find("overdraft_limit"); it != e.data.end() && it->is_number_integer())
    after.overdraft_limit = *it;
  return after;
}

nlohmann::json AccountsDomain::EntityToJson(const Account& a) {
  return {{"balance", a.balance}, {"overdraft_limit", a.overdraft_limit}};
}

std::string AccountsDomain::EntityKeyFromPath(const std::string& account, const std::string&) {
  return account;
}

nlohmann::json AccountsDomain::EntityToSnapshot(const Account& a) {
  return {a.opened, a.balance, a.overdraft_limit};
}

Result<Account> AccountsDomain::EntityFromSnapshot(const nlohmann::json& j) {
  if (!j.is_array() || j.size() != 3 || !j[0].is_boolean() || !j[1].is_number_integer() ||
      !j[2].is_number_integer())
    return Status::InvalidArgument("account snapshot is not [opened, balance, overdraft_limit]");
  return Account{j[0].get<bool>(), j[1].get<int64_t>(), j[2].get<int64_t>()};
}

std::unique_ptr<Domain> MakeAccountsDomain() {
  return std::make_unique<DomainAdapter<AccountsDomain>>("accounts");
}

}  // namespace freshet
