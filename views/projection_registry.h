// ProjectionRegistry: C++ projections by name. A view definition picks one
// with {"name": "...", "kind": "cpp", "projection": "<registered name>"}; a
// name nobody registered is refused at start with the list of those that
// were. The stock `freshet` binary registers stock_levels here. A factory
// is called at every engine start (after errors, for rebuilds), so it must
// build a fresh projection each time.
#pragma once

#include "core/named_registry.h"
#include "views/projection.h"

namespace freshet {

class ProjectionRegistry : public NamedRegistry<Projection> {
 public:
  ProjectionRegistry() : NamedRegistry<Projection>("C++ projection") {}
};

// stock_levels: the C++ projection of the stock `freshet` binary.
ProjectionRegistry StockProjections();

}  // namespace freshet
