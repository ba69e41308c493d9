// NamedRegistry: factories of one kind of thing by name, for what a config
// picks by name (a writer's domain, a view's C++ projection). Asking for a
// name nobody registered is an error that lists the names that were.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/status.h"

namespace freshet {

template <typename Product>
class NamedRegistry {
 public:
  // Called each time one is needed, so it must build a fresh one each time.
  using Factory = std::function<std::unique_ptr<Product>()>;

  // `what` names the things in error messages, e.g. "domain".
  explicit NamedRegistry(std::string what) : what_(std::move(what)) {}

  // A second Add of a name replaces the first.
  void Add(const std::string& name, Factory make) { factories_[name] = std::move(make); }
  bool Has(const std::string& name) const { return factories_.count(name) > 0; }

  // kNotFound, listing the registered names, when `name` is not one.
  Result<std::unique_ptr<Product>> Make(const std::string& name) const {
    auto it = factories_.find(name);
    if (it == factories_.end())
      return Status::NotFound("no " + what_ + " named \"" + name + "\"; registered: " + Names());
    return it->second();
  }

  std::string Names() const {
    std::string out;
    for (const auto& [name, factory] : factories_) out += (out.empty() ? "" : ", ") + name;
    return out.empty() ? "(none)" : out;
  }

 private:
  std::string what_;
  std::map<std::string, Factory> factories_;
};

}  // namespace freshet
