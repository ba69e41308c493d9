#include "seats_free.h"

namespace seat_booking {

SeatsFree::SeatsFree() {
  table_.view_name = "seats_free";
  table_.version = "1";
  table_.key_columns = {{"show", "text"}};
  // Each flush adds its deltas to the stored count, exactly once.
  table_.value_columns = {{"free", "bigint", freshet::Merge::kAdd}};
}

freshet::Status SeatsFree::Apply(const freshet::Event& event) {
  int64_t delta = event.type == "SeatAdded" ? 1 : event.type == "SeatSold" ? -1 : 0;
  if (delta == 0) return freshet::Status::Ok();
  auto show = event.data.find("show");
  if (show == event.data.end() || !show->is_string())
    return freshet::Status::InvalidArgument("data.show: missing or not a string");
  Pending& p = pending_[show->get<std::string>()];
  p.delta += delta;
  p.partition = event.partition;
  p.offset = event.offset;
  return freshet::Status::Ok();
}

std::vector<freshet::RowWrite> SeatsFree::TakePending() {
  std::vector<freshet::RowWrite> rows;
  for (const auto& [show, p] : pending_)
    rows.push_back({{show}, {std::to_string(p.delta)}, false, p.partition, p.offset});
  pending_.clear();
  return rows;
}

}  // namespace seat_booking
