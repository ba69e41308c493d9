// IdempotencyIndex: which idempotency keys a partition has already accepted,
// and the offset each one's command ended at. Bounded: the oldest keys are
// forgotten first, so a retry is recognised within the last `capacity` keyed
// commands of the partition. Rebuilt from the log (the key is the event id).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace freshet {

class IdempotencyIndex {
 public:
  explicit IdempotencyIndex(size_t capacity) : capacity_(capacity) {}

  std::optional<int64_t> Find(const std::string& key) const {
    auto it = offsets_.find(key);
    if (it == offsets_.end()) return std::nullopt;
    return it->second;
  }

  // Records (or moves forward) the offset of `key`'s command.
  void Put(const std::string& key, int64_t offset) {
    if (key.empty() || capacity_ == 0) return;
    auto [it, inserted] = offsets_.insert_or_assign(key, offset);
    if (!inserted) return;
    order_.push_back(key);
    while (order_.size() > capacity_) {
      offsets_.erase(order_.front());
      order_.pop_front();
    }
  }

  size_t size() const { return offsets_.size(); }

  // Every key with its offset, oldest first: Put()ting them back in this
  // order rebuilds the same index (for snapshots).
  std::vector<std::pair<std::string, int64_t>> Entries() const {
    std::vector<std::pair<std::string, int64_t>> out;
    out.reserve(order_.size());
    for (const auto& key : order_) out.emplace_back(key, offsets_.at(key));
    return out;
  }

  void Clear() {
    offsets_.clear();
    order_.clear();
  }

 private:
  size_t capacity_;
  std::unordered_map<std::string, int64_t> offsets_;
  std::deque<std::string> order_;
};

}  // namespace freshet
