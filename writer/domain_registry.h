// DomainRegistry: the writer's domains by name. `writer.domain` in the
// config picks one; a name nobody registered is refused at start with the
// list of those that were. The stock `freshet` binary registers its example
// domains here like any user's binary registers its own (freshet/main.h).
#pragma once

#include <memory>
#include <string>

#include "core/named_registry.h"
#include "writer/decider.h"

namespace freshet {

class DomainRegistry : public NamedRegistry<Domain> {
 public:
  DomainRegistry() : NamedRegistry<Domain>("domain") {}

  // Registers a decider struct (see writer/decider.h) under `name`.
  template <typename D>
  void AddDecider(const std::string& name) {
    Add(name, [name] { return std::make_unique<DomainAdapter<D>>(name); });
  }
};

// inventory and accounts: the domains of the stock `freshet` binary.
DomainRegistry StockDomains();

}  // namespace freshet
