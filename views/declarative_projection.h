// A Projection built from a declarative ViewSpec (latest-row or grouped
// aggregate). Within one flush window it coalesces: a latest-row view keeps
// the last write per key; an aggregate keeps one partial aggregate per group
// and writes it as deltas that the store merges (sum/count added, min/max
// combined), so many events on one key cost one row write.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "sources/source_spec.h"
#include "views/projection.h"
#include "views/view_spec.h"

namespace freshet {

class RecordDecoder;

class DeclarativeProjection final : public Projection {
 public:
  explicit DeclarativeProjection(ViewSpec spec);
  ~DeclarativeProjection() override;
  const TableSpec& table() const override { return table_; }
  // Encodes the event and applies the encoded value: one code path.
  Status Apply(const Event& event) override;
  // Decodes the value as the view's source says (simdjson: nlohmann's parse
  // cost 1.75 us of the 2.4 us a view spent per event, bench/projection_bench)
  // and applies it.
  Status ApplyValue(std::string_view value, int32_t partition, int64_t offset, int64_t* ts_ms) override;
  bool reads_records() const override { return true; }
  Status ApplyRecord(const SourceRecord& record) override;
  std::vector<RowWrite> TakePending() override;
  bool SeparatePartitions() override {
    separate_partitions_ = true;
    return true;
  }
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

  using FieldPath = FieldRef;
  using Parsed = SourceRecord;
  struct Where {  // spec_.where, with its operand read once
    FieldPath path;
    enum Op { kEq, kNe, kLt, kLe, kGt, kGe } op = kEq;
    nlohmann::json value;
    std::optional<double> number;     // when value is a number
    std::optional<std::string> text;  // when value is a string
  };
  Status ApplyParsed(const Parsed& event);
  bool Matches(const Parsed& event) const;
  // The column texts of the event's key into key_texts_, joined into joined_.
  Status KeyOf(const Parsed& event);

  ViewSpec spec_;
  TableSpec table_;
  std::vector<FieldPath> key_paths_;    // one per key column
  std::vector<FieldPath> value_paths_;  // one per value column (empty `from`: unused)
  std::optional<Where> where_;
  std::unique_ptr<RecordDecoder> decoder_;     // for ApplyValue
  std::vector<std::string> key_texts_;         // scratch, reused per event
  std::string joined_;                         // scratch: the key texts joined (and the partition, see below)
  bool separate_partitions_ = false;           // pending rows keyed by (key, partition): SeparatePartitions
  std::vector<std::optional<double>> inputs_;  // scratch: an aggregate's inputs
  // Pending changes by joined key; TakePending sorts them by key so that
  // concurrent writers lock rows in one order.
  std::unordered_map<std::string, RowWrite> kind_latest_;
  std::unordered_map<std::string, Group> aggregates_;
};

}  // namespace freshet
