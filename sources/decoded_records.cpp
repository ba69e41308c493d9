#include "sources/decoded_records.h"

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
  if (!p) p = std::make_unique<Partition>();
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

}  // namespace freshet
