// The C++ projection API: a view is a class that folds events into pending
// row changes. The engine decides when pending changes are written (the
// view's freshness settings) and writes them with the offsets they cover.
#pragma once

#include <string>
#include <vector>

#include "core/envelope.h"
#include "core/status.h"
#include "sinks/postgres_sink.h"

namespace freshet {

class Projection {
 public:
  virtual ~Projection() = default;
  virtual const TableSpec& table() const = 0;
  // Folds one event into the pending changes. Events a view does not care
  // about return OK and change nothing. A non-OK status marks the event bad
  // (it is skipped and reported; the view goes on).
  virtual Status Apply(const Event& event) = 0;
  // Hands over the pending changes (coalesced: one row write per key) and
  // forgets them.
  virtual std::vector<RowWrite> TakePending() = 0;
  virtual size_t pending_rows() const = 0;
};

}  // namespace freshet
