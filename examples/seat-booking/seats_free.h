// seats_free(show, free): seats of each show not sold yet, as a C++
// projection with its own Postgres table. Holds expire without an event, so
// a held seat still counts as free here; sold is final.
#pragma once

#include <freshet/main.h>

#include <map>
#include <string>

namespace seat_booking {

class SeatsFree final : public freshet::Projection {
 public:
  SeatsFree();
  const freshet::TableSpec& table() const override { return table_; }
  freshet::Status Apply(const freshet::Event& event) override;
  std::vector<freshet::RowWrite> TakePending() override;
  size_t pending_rows() const override { return pending_.size(); }

 private:
  struct Pending {
    int64_t delta = 0;
    int32_t partition = -1;
    int64_t offset = -1;
  };
  freshet::TableSpec table_;
  std::map<std::string, Pending> pending_;  // by show
};

}  // namespace seat_booking
