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
// next decoder asks again. The ring is longer than what one fetch brings
// of a partition (librdkafka's max.partition.fetch.bytes, 1 MB, is ~14,000
// records of 60 bytes): a consumer reads a partition in such runs, so two
// views reading the same records are that far apart now and then.
//
// Nothing is kept while only one decoder reads: a decoder joins when its
// view starts (RecordDecoder::ShareDecodes) or else on its first record,
// and leaves when destroyed; records are put and looked up only while two
// or more have joined.
//
// Pacing: decoders that are catching up (reading far behind a partition's
// end, as views do that rebuild or start from offset zero) would drift
// apart by far more than the ring, at the pace of their stores, and each
// would decode every record. So they keep together: before it decodes a
// record, a catching-up decoder waits while another catching-up decoder of
// the partition is between kPaceDistance and kPaceHorizon records behind it
// and has moved within the stall timeout; it goes on once that one is
// within kResumeDistance. The one ahead then goes at the pace of the one
// behind (which sets when both have caught up anyway), and the one behind
// finds every record decoded. A decoder at the head (live views) is never
// held up, nor waited for; nor is one that stalls (its store is down),
// that started further behind than kPaceHorizon, or that is waiting itself
// (in another partition: two decoders each ahead in one partition must not
// wait for each other).
//
// Thread-safe: decoders on different threads share one DecodedRecords; a
// lock per partition.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "sources/source_spec.h"

namespace freshet {

class DecodedRecords {
 public:
  static constexpr size_t kSlotsPerPartition = 16384;
  // Pacing (above), in records of one partition.
  static constexpr int64_t kPaceDistance = 3 * kSlotsPerPartition / 4;
  static constexpr int64_t kResumeDistance = kSlotsPerPartition / 4;
  static constexpr int64_t kPaceHorizon = 4 * kSlotsPerPartition;
  // A decoder is catching up while it is more than this far behind the
  // partition's end. Once the one ahead is this close to the end it goes on
  // without waiting (it is at the head now); the one behind, at most
  // kPaceDistance further back, still finds every record in the ring.
  static constexpr int64_t kCatchingUpDistance = kSlotsPerPartition / 4;
  static_assert(kCatchingUpDistance + kPaceDistance <= static_cast<int64_t>(kSlotsPerPartition));

  explicit DecodedRecords(std::chrono::milliseconds stall_timeout = std::chrono::seconds(1))
      : stall_timeout_(stall_timeout) {}

  // One record's decoded key and value (or why not).
  struct Decoded {
    Status key_status, value_status;
    std::string key, value;  // JSON; empty when not decoded (no key, a tombstone, ...)
  };

  // The process's DecodedRecords for decoders of `spec` (its topic, its
  // formats and its registry).
  static std::shared_ptr<DecodedRecords> For(const SourceSpec& spec);

  // Join returns the decoder's number, for Pace.
  int Join() {
    readers_.fetch_add(1);
    return next_reader_.fetch_add(1);
  }
  void Leave() { readers_.fetch_sub(1); }
  // Whether records are being shared (two or more decoders have joined).
  bool shared() const { return readers_.load(std::memory_order_relaxed) >= 2; }

  // One (topic, partition)'s ring: what a decoder keeps a pointer to.
  class Partition {
   public:
    explicit Partition(DecodedRecords& records) : records_(records), slots_(kSlotsPerPartition) {}
    // Decoder `reader` is at `offset` (about to find or decode it). Waits
    // first while it must let a slower catching-up decoder come closer
    // (pacing, above). True when it waited.
    bool Pace(int reader, int64_t offset, bool catching_up);
    // Decoder `reader` reads this partition no more.
    void Forget(int reader);
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
    // Where a decoder is in the partition, for pacing.
    struct Cursor {
      int reader = -1;
      int64_t offset = -1;
      bool catching_up = false;
      std::chrono::steady_clock::time_point moved;
    };
    Cursor& CursorOf(int reader);
    // A catching-up decoder `distance` or more records behind `ahead`, that
    // has moved lately.
    bool SomeoneBehind(const Cursor& ahead, int64_t distance,
                       std::chrono::steady_clock::time_point now) const;

    DecodedRecords& records_;
    std::mutex mu_;
    std::condition_variable moved_;
    std::vector<Slot> slots_;
    std::vector<Cursor> cursors_;
    int waiting_ = 0;
    // The lowest offset a waiting decoder needs a slower one to reach.
    int64_t wake_at_ = INT64_MAX;
    uint64_t put_ = 0, reused_ = 0, waits_ = 0;
  };
  // Valid for the life of this DecodedRecords.
  Partition* partition(std::string_view topic, int32_t partition);

  // Records decoded by the decoders while they shared, and records they
  // took from here instead of decoding them again, over every partition.
  uint64_t decoded() const;
  uint64_t reused() const;
  // Times a decoder waited for a slower one (pacing).
  uint64_t waits() const;

 private:
  uint64_t Sum(uint64_t Partition::*counter) const;
  void SetWaiting(int reader, bool waiting);
  bool IsWaiting(int reader) const;

  const std::chrono::milliseconds stall_timeout_;
  std::atomic<int> readers_{0};
  std::atomic<int> next_reader_{0};
  mutable std::mutex waiting_mu_;
  std::set<int> waiting_readers_;  // decoders waiting in some partition
  mutable std::mutex mu_;          // guards partitions_ (not what is in them)
  std::map<std::pair<std::string, int32_t>, std::unique_ptr<Partition>> partitions_;
};

}  // namespace freshet
