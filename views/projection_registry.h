// ProjectionRegistry: C++ projections by name. A view definition picks one
// with {"name": "...", "kind": "cpp", "projection": "<registered name>"}; a
// name nobody registered is refused at start with the list of those that
// were. The stock `freshet` binary registers stock_levels here.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/status.h"
#include "views/projection.h"

namespace freshet {

class ProjectionRegistry {
 public:
  // Called once per engine start (a view restarts its engine after errors
  // and for rebuilds), so it must build a fresh projection each time.
  using Factory = std::function<std::unique_ptr<Projection>()>;

  void Add(const std::string& name, Factory make) { factories_[name] = std::move(make); }
  bool Has(const std::string& name) const { return factories_.count(name) > 0; }

  Result<std::unique_ptr<Projection>> Make(const std::string& name) const {
    auto it = factories_.find(name);
    if (it == factories_.end())
      return Status::NotFound("no C++ projection named \"" + name + "\"; registered: " + Names());
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

// stock_levels: the C++ projection of the stock `freshet` binary.
ProjectionRegistry StockProjections();

}  // namespace freshet
