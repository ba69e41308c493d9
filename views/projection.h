// The C++ projection API: a view is a class that folds events into pending
// row changes. The engine decides when pending changes are written (the
// view's freshness settings) and writes them with the offsets they cover.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/envelope.h"
#include "core/status.h"
#include "sinks/table.h"

namespace freshet {

struct SourceRecord;  // sources/record_decoder.h

class Projection {
 public:
  virtual ~Projection() = default;
  virtual const TableSpec& table() const = 0;
  // Folds one event into the pending changes. Events a view does not care
  // about return OK and change nothing. A non-OK status marks the event bad
  // (it is skipped and reported; the view goes on).
  virtual Status Apply(const Event& event) = 0;
  // Folds one event as the topic holds it (its JSON value), read at
  // `partition`/`offset`; sets `ts_ms` to the event's timestamp (0: none).
  // A value that is not an event is a bad event, as in DecodeEventValue.
  // This default decodes into an Event; a projection may read the bytes
  // itself (the declarative one does: decoding was most of its time).
  virtual Status ApplyValue(std::string_view value, int32_t partition, int64_t offset, int64_t* ts_ms) {
    auto event = DecodeEventValue(value);
    if (!event.ok()) return event.status();
    event->partition = partition;
    event->offset = offset;
    *ts_ms = event->ts_ms;
    return Apply(*event);
  }
  // A projection that reads records of any format and envelope (a view's
  // "source") says so, and the engine decodes each record for it and calls
  // ApplyRecord instead of ApplyValue. `record.change` is never kSkip.
  virtual bool reads_records() const { return false; }
  virtual Status ApplyRecord(const SourceRecord& /*record*/) {
    return Status::Internal("this projection reads only freshet events");
  }
  // Asked once, before any event, by a store that keeps each source
  // partition's share of a row apart (views/partition_rows.h): from now on
  // coalesce per (partition, key) and name the partition in each RowWrite.
  // A projection that cannot returns false, and the engine hands over the
  // rows of one partition at a time instead (each run of a partition's
  // events coalesced on its own: slower for aggregates).
  virtual bool SeparatePartitions() { return false; }
  // Hands over the pending changes (coalesced: one row write per key) and
  // forgets them.
  virtual std::vector<RowWrite> TakePending() = 0;
  virtual size_t pending_rows() const = 0;
};

}  // namespace freshet
