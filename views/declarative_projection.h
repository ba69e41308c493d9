// A Projection built from a declarative ViewSpec (latest-row or grouped
// aggregate). Within one flush window it coalesces: a latest-row view keeps
// the last write per key; an aggregate keeps one partial aggregate per group
// and writes it as deltas that the store merges (sum/count added, min/max
// combined), so many events on one key cost one row write.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "views/projection.h"
#include "views/view_spec.h"

namespace freshet {

class DeclarativeProjection final : public Projection {
 public:
  explicit DeclarativeProjection(ViewSpec spec);
  const TableSpec& table() const override { return table_; }
  Status Apply(const Event& event) override;
  std::vector<RowWrite> TakePending() override;
  size_t pending_rows() const override { return kind_latest_.size() + aggregates_.size(); }
  const ViewSpec& spec() const { return spec_; }

 private:
  struct Partial {  // one aggregate column's partial value within a window
    double sum = 0;
    int64_t count = 0;
    std::optional<double> min, max;
  };
  struct Group {
    std::vector<std::string> key;
    std::vector<Partial> partials;  // one per value column
    int32_t partition = -1;         // the last event folded in
    int64_t offset = -1;
  };

  // Where a column reads its value: a synthesized field or a JSON pointer
  // into the event's data, split into its (unescaped) tokens.
  struct FieldPath {
    enum Kind { kData, kTs, kType, kId } kind = kData;
    std::vector<std::string> segments;
  };
  static FieldPath ParsePath(const std::string& from);
  // The value a column reads (null: absent); `storage` holds synthesized ones.
  const nlohmann::json* Source(const Event& e, const std::string& from, nlohmann::json* storage) const;
  bool Matches(const Predicate& p, const Event& e) const;
  Result<std::vector<std::string>> KeyOf(const Event& e, std::string* joined) const;

  ViewSpec spec_;
  TableSpec table_;
  std::map<std::string, FieldPath> paths_;  // by the spec's "from" text
  std::map<std::string, RowWrite> kind_latest_;  // joined key -> last write
  std::map<std::string, Group> aggregates_;      // joined key -> partials
};

// The text form of `value` for a column of `sql_type` (what COPY expects),
// or an error naming the column when the event's field has the wrong type.
Result<std::optional<std::string>> ColumnText(const nlohmann::json* value, const std::string& sql_type,
                                              const std::string& column);

}  // namespace freshet
