// DecodedRecords: what the records of a topic in a registry format (Avro,
// Protobuf, JSON Schema) decoded to, kept for a short while and shared by
// every RecordDecoder of the process that reads the same topic the same
// way, so that when several views read one topic each record is decoded
// once: the first decoder to reach it decodes it, the others take the
// JSON it made.
//
// What is kept: per (topic, partition) the last kSlotsPerPartition records
// by offset (a ring: a record's slot is its offset modulo the size), each
// with the key's and the value's JSON or the reason it is bad. A decoder
// that comes to an offset whose slot holds another offset (it is further
// behind than the ring is long, or ahead of everyone) decodes it itself.
// So memory stays bounded (the ring's slots keep their strings' capacity:
// about kSlotsPerPartition times a record's JSON per partition), and views
// that read near each other, as live views at the head of a topic do,
// share every decode. "The registry cannot be asked" is never kept: the
// next decoder asks again.
//
// Nothing is kept while only one decoder reads: a decoder joins on its
// first record and leaves when destroyed, and records are put and looked
// up only while two or more have joined.
//
// Thread-safe: decoders on different threads share one DecodedRecords; a
// lock per partition.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "sources/source_spec.h"

namespace freshet {

class DecodedRecords {
 public:
  static constexpr size_t kSlotsPerPartition = 4096;

  // One record's decoded key and value (or why not).
  struct Decoded {
    Status key_status, value_status;
    std::string key, value;  // JSON; empty when not decoded (no key, a tombstone, ...)
  };

  // The process's DecodedRecords for decoders of `spec` (its topic, its
  // formats and its registry).
  static std::shared_ptr<DecodedRecords> For(const SourceSpec& spec);

  void Join() { readers_.fetch_add(1); }
  void Leave() { readers_.fetch_sub(1); }
  // Whether records are being shared (two or more decoders have joined).
  bool shared() const { return readers_.load(std::memory_order_relaxed) >= 2; }

  // One (topic, partition)'s ring: what a decoder keeps a pointer to.
  class Partition {
   public:
    Partition() : slots_(kSlotsPerPartition) {}
    // Copies the record at `offset` into *out if it is kept.
    bool Find(int64_t offset, Decoded* out);
    // A record decoded (counted), kept unless its slot holds a newer one.
    void Put(int64_t offset, const Decoded& decoded);

   private:
    friend class DecodedRecords;
    struct Slot {
      int64_t offset = -1;
      Decoded decoded;
    };
    std::mutex mu_;
    std::vector<Slot> slots_;
    uint64_t put_ = 0, reused_ = 0;
  };
  // Valid for the life of this DecodedRecords.
  Partition* partition(std::string_view topic, int32_t partition);

  // Records decoded by the decoders while they shared, and records they
  // took from here instead of decoding them again, over every partition.
  uint64_t decoded() const;
  uint64_t reused() const;

 private:
  uint64_t Sum(uint64_t Partition::*counter) const;

  std::atomic<int> readers_{0};
  mutable std::mutex mu_;  // guards partitions_ (not what is in them)
  std::map<std::pair<std::string, int32_t>, std::unique_ptr<Partition>> partitions_;
};

}  // namespace freshet
