#include "sources/decoded_records.h"

#include <algorithm>

namespace freshet {

std::shared_ptr<DecodedRecords> DecodedRecords::For(const SourceSpec& spec) {
  // Records decode the same for decoders of the same topic, formats and
  // registry (a schema id means one schema in one registry).
  const SchemaRegistryConfig& r = spec.schema_registry;
  std::string signature = spec.topic + '\n' + FormatName(spec.format) + '\n' + FormatName(spec.key_format) +
                          '\n' + r.url + '\n' + r.username + '\n' + r.token;
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<DecodedRecords>> all;
  std::lock_guard lock(mu);
  std::weak_ptr<DecodedRecords>& slot = all[signature];
  std::shared_ptr<DecodedRecords> records = slot.lock();
  if (!records) {
    records = std::make_shared<DecodedRecords>();
    slot = records;
  }
  return records;
}

DecodedRecords::Partition* DecodedRecords::partition(std::string_view topic, int32_t partition) {
  std::lock_guard lock(mu_);
  auto& p = partitions_[{std::string(topic), partition}];
  if (!p) p = std::make_unique<Partition>(*this);
  return p.get();
}

bool DecodedRecords::Partition::Find(int64_t offset, Decoded* out) {
  std::lock_guard lock(mu_);
  Slot& slot = slots_[static_cast<size_t>(offset) % slots_.size()];
  if (slot.offset != offset) return false;
  // Assigning into *out's strings reuses their capacity (and keeps the
  // padding the decoder reserved): no allocation.
  out->key_status = slot.decoded.key_status;
  out->value_status = slot.decoded.value_status;
  out->key = slot.decoded.key;
  out->value = slot.decoded.value;
  ++reused_;
  return true;
}

void DecodedRecords::Partition::Put(int64_t offset, const Decoded& decoded) {
  std::lock_guard lock(mu_);
  ++put_;
  Slot& slot = slots_[static_cast<size_t>(offset) % slots_.size()];
  // Kept already (another decoder was first), or the slot holds a newer
  // record, which the decoders ahead still may want: a decoder that far
  // behind is on its own.
  if (slot.offset >= offset) return;
  slot.offset = offset;
  slot.decoded.key_status = decoded.key_status;
  slot.decoded.value_status = decoded.value_status;
  slot.decoded.key = decoded.key;
  slot.decoded.value = decoded.value;
}

DecodedRecords::Partition::Cursor& DecodedRecords::Partition::CursorOf(int reader) {
  for (Cursor& c : cursors_)
    if (c.reader == reader) return c;
  Cursor& added = cursors_.emplace_back();
  added.reader = reader;
  return added;
}

bool DecodedRecords::Partition::SomeoneBehind(const Cursor& ahead, int64_t distance,
                                              std::chrono::steady_clock::time_point now) const {
  for (const Cursor& c : cursors_) {
    if (c.reader == ahead.reader || !c.catching_up || c.offset < 0) continue;
    int64_t behind = ahead.offset - c.offset;
    if (behind < distance || behind > kPaceHorizon) continue;
    if (now - c.moved >= records_.stall_timeout_) continue;  // stalled: not worth waiting for
    if (records_.IsWaiting(c.reader)) continue;              // held up itself, elsewhere
    return true;
  }
  return false;
}

bool DecodedRecords::Partition::Pace(int reader, int64_t offset, bool catching_up) {
  std::unique_lock lock(mu_);
  auto now = std::chrono::steady_clock::now();
  {
    Cursor& me = CursorOf(reader);
    me.offset = offset;
    me.catching_up = catching_up;
    me.moved = now;
    if (waiting_ > 0 && offset >= wake_at_) moved_.notify_all();
    if (!catching_up || !SomeoneBehind(me, kPaceDistance, now)) return false;
  }
  ++waits_;
  ++waiting_;
  records_.SetWaiting(reader, true);
  // Woken when the one behind comes within kResumeDistance (or leaves);
  // the timeout notices one that stalls, or starts waiting itself.
  wake_at_ = std::min(wake_at_, offset - kResumeDistance + 1);
  do {
    moved_.wait_for(lock, std::chrono::milliseconds(20));
    now = std::chrono::steady_clock::now();
  } while (SomeoneBehind(CursorOf(reader), kResumeDistance, now));
  records_.SetWaiting(reader, false);
  if (--waiting_ == 0) wake_at_ = INT64_MAX;
  return true;
}

void DecodedRecords::Partition::Forget(int reader) {
  std::lock_guard lock(mu_);
  std::erase_if(cursors_, [reader](const Cursor& c) { return c.reader == reader; });
  moved_.notify_all();
}

void DecodedRecords::SetWaiting(int reader, bool waiting) {
  std::lock_guard lock(waiting_mu_);
  if (waiting)
    waiting_readers_.insert(reader);
  else
    waiting_readers_.erase(reader);
}

bool DecodedRecords::IsWaiting(int reader) const {
  std::lock_guard lock(waiting_mu_);
  return waiting_readers_.count(reader) > 0;
}

uint64_t DecodedRecords::Sum(uint64_t Partition::*counter) const {
  std::lock_guard lock(mu_);
  uint64_t n = 0;
  for (const auto& [where, p] : partitions_) {
    std::lock_guard partition_lock(p->mu_);
    n += (*p).*counter;
  }
  return n;
}

uint64_t DecodedRecords::decoded() const { return Sum(&Partition::put_); }
uint64_t DecodedRecords::reused() const { return Sum(&Partition::reused_); }
uint64_t DecodedRecords::waits() const { return Sum(&Partition::waits_); }

}  // namespace freshet
