#include "views/stock_levels.h"

namespace freshet {

StockLevelsProjection::StockLevelsProjection() {
  table_.view_name = "stock_levels";
  table_.version = "1";
  table_.key_columns = {{"store", "text"}, {"sku", "text"}};
  table_.value_columns = {{"on_hand", "bigint", Merge::kAdd}};
}

Status StockLevelsProjection::Apply(const Event& event) {
  auto store = event.data.find("store");
  auto sku = event.data.find("sku");
  auto delta = event.data.find("delta");
  if (store == event.data.end() || !store->is_string())
    return Status::InvalidArgument("data.store: missing or not a string");
  if (sku == event.data.end() || !sku->is_string())
    return Status::InvalidArgument("data.sku: missing or not a string");
  if (delta == event.data.end() || !delta->is_number_integer())
    return Status::InvalidArgument("data.delta: missing or not an integer");
  Pending& p = pending_[{store->get<std::string>(), sku->get<std::string>()}];
  p.delta += delta->get<int64_t>();
  p.partition = event.partition;
  p.offset = event.offset;
  return Status::Ok();
}

std::vector<RowWrite> StockLevelsProjection::TakePending() {
  std::vector<RowWrite> rows;
  rows.reserve(pending_.size());
  for (const auto& [key, p] : pending_)
    rows.push_back({{key.first, key.second}, {std::to_string(p.delta)}, false, p.partition, p.offset});
  pending_.clear();
  return rows;
}

}  // namespace freshet
