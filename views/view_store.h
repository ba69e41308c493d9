// ViewStore: where one view's rows and offsets go, as the engine sees it.
// Both stores commit rows and the next offsets of the partitions they cover
// atomically, with the expected-offset check that keeps a second writer
// from doubling rows.
#pragma once

#include <map>
#include <vector>

#include "core/status.h"
#include "sinks/postgres_sink.h"

namespace freshet {

class ViewStore {
 public:
  virtual ~ViewStore() = default;
  virtual const char* kind() const = 0;  // "postgres", "rocksdb"
  virtual Result<std::map<int32_t, int64_t>> LoadOffsets() = 0;
  virtual Status Write(const std::vector<RowWrite>& rows, const std::vector<OffsetAdvance>& offsets) = 0;
  // A new version being built beside the live one (see PostgresSink).
  virtual bool building() const { return false; }
  virtual Status SwapIn() { return Status::Ok(); }
};

// Adapts a PostgresSink.
class PostgresViewStore final : public ViewStore {
 public:
  explicit PostgresViewStore(std::unique_ptr<PostgresSink> sink) : sink_(std::move(sink)) {}
  const char* kind() const override { return "postgres"; }
  Result<std::map<int32_t, int64_t>> LoadOffsets() override { return sink_->LoadOffsets(); }
  Status Write(const std::vector<RowWrite>& rows, const std::vector<OffsetAdvance>& offsets) override {
    return sink_->Write(rows, offsets);
  }
  bool building() const override { return sink_->building(); }
  Status SwapIn() override { return sink_->SwapIn(); }

 private:
  std::unique_ptr<PostgresSink> sink_;
};

}  // namespace freshet
