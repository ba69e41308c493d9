// stock_levels(store, sku, on_hand): the walking skeleton's view. It sums the
// `delta` of every inventory event per (store, sku), so a lost or doubled
// event shows up as a wrong on_hand.
#pragma once

#include <map>
#include <memory>
#include <utility>

#include "views/projection.h"

namespace freshet {

class StockLevelsProjection final : public Projection {
 public:
  StockLevelsProjection();
  const TableSpec& table() const override { return table_; }
  Status Apply(const Event& event) override;
  std::vector<RowWrite> TakePending() override;
  size_t pending_rows() const override { return pending_.size(); }

 private:
  TableSpec table_;
  struct Pending {
    int64_t delta = 0;  // summed
    int32_t partition = -1;
    int64_t offset = -1;
  };
  std::map<std::pair<std::string, std::string>, Pending> pending_;  // (store, sku)
};

}  // namespace freshet
