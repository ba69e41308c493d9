// PartitionSnapshot: one partition's committed writer state at an offset,
// kept in a snapshot topic so that a new owner loads it and replays only the
// events after it, instead of the partition's whole history.
//
// Where and how (see docs/recovery.md for why this and not a changelog):
//  - the snapshot topic has as many partitions as the event topic; the
//    snapshot of event partition p goes to snapshot partition p;
//  - a snapshot is one or more chunk records (at most kSnapshotChunkBytes
//    each, so no broker or client size limit needs raising), all written in
//    ONE transaction of the partition's fencing producer. A snapshot is
//    therefore visible to read_committed readers whole or not at all: a
//    writer that crashes mid-snapshot, or was fenced meanwhile, leaves
//    chunks that are aborted and never read;
//  - a snapshot holds only committed state: the writer takes it right after
//    a commit, when no command is pending.
//
// Each chunk carries headers "freshet-snapshot" (the snapshot's id: its
// next_offset and the writing instance) and "freshet-chunk" ("i/n"). The
// reader looks backwards from the end of the partition for the newest
// snapshot whose chunks are all there.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/kafka.h"
#include "core/status.h"

namespace freshet {

inline constexpr size_t kSnapshotChunkBytes = 512 * 1024;

struct PartitionSnapshot {
  int64_t next_offset = 0;                            // the state covers every event before this offset
  std::string instance;                               // the writer instance that took it (for operators)
  nlohmann::json entities = nlohmann::json::array();  // as DomainState::SaveEntities wrote them
  std::vector<std::pair<std::string, int64_t>> idempotency;  // oldest first
};

// The snapshot topic's name when writer.snapshot_topic is not set.
std::string DefaultSnapshotTopic(const std::string& event_topic);

// The bytes of `snapshot`, cut into chunks of at most `chunk_bytes`.
std::vector<std::string> EncodeSnapshotChunks(const PartitionSnapshot& snapshot, size_t chunk_bytes);
// The snapshot from its chunks' bytes, concatenated in order.
Result<PartitionSnapshot> DecodeSnapshot(std::string_view bytes);

// The records of `snapshot` (its chunks, with their headers), to be
// produced in one transaction of the partition's fencing producer.
std::vector<OutgoingMessage> SnapshotMessages(const std::string& snapshot_topic, int32_t partition,
                                              const PartitionSnapshot& snapshot);

// The newest snapshot of `partition` that committed whole, or nullopt when
// the partition holds none. Reads only the end of the partition.
Result<std::optional<PartitionSnapshot>> LoadLatestSnapshot(const KafkaClientOptions& options,
                                                            const std::string& snapshot_topic,
                                                            int32_t partition,
                                                            std::chrono::milliseconds timeout);

}  // namespace freshet
