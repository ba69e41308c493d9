// DomainRegistry: the writer's domains by name. `writer.domain` in the
// config picks one; a name nobody registered is refused at start with the
// list of those that were. The stock `freshet` binary registers its example
// domains here like any user's binary registers its own (freshet/main.h).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "writer/decider.h"

namespace freshet {

class DomainRegistry {
 public:
  using Factory = std::function<std::unique_ptr<Domain>()>;

  // Registers a decider struct (see writer/decider.h) under `name`.
  template <typename D>
  void AddDecider(const std::string& name) {
    Add(name, [name] { return std::make_unique<DomainAdapter<D>>(name); });
  }
  // Registers any Domain implementation. A second Add of a name replaces it.
  void Add(const std::string& name, Factory make) { factories_[name] = std::move(make); }

  // kNotFound, naming the registered domains, when `name` is not one.
  Result<std::unique_ptr<Domain>> Make(const std::string& name) const {
    auto it = factories_.find(name);
    if (it == factories_.end())
      return Status::NotFound("writer.domain: no domain named \"" + name + "\"; registered: " + Names());
    return it->second();
  }
  std::string Names() const {
    std::string out;
    for (const auto& [name, _] : factories_) out += (out.empty() ? "" : ", ") + name;
    return out.empty() ? "(none)" : out;
  }

 private:
  std::map<std::string, Factory> factories_;
};

// inventory and accounts: the domains of the stock `freshet` binary.
DomainRegistry StockDomains();

}  // namespace freshet
