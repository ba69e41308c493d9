#include "writer/partition_snapshot.h"

#include <algorithm>
#include <charconv>

namespace freshet {
namespace {

constexpr const char* kSnapshotHeader = "freshet-snapshot";
constexpr const char* kChunkHeader = "freshet-chunk";
constexpr int kFormatVersion = 1;

struct ChunkPosition {
  int index = 0;
  int count = 0;
};

std::optional<ChunkPosition> ParseChunkPosition(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  ChunkPosition p;
  auto a = std::from_chars(text.data(), text.data() + slash, p.index);
  auto b = std::from_chars(text.data() + slash + 1, text.data() + text.size(), p.count);
  if (a.ec != std::errc() || b.ec != std::errc() || p.count <= 0 || p.index < 0 || p.index >= p.count)
    return std::nullopt;
  return p;
}

// Puts one snapshot together from consecutive chunks. A transaction's records
// of one partition are consecutive for read_committed readers (aborted ones
// are skipped), so a chunk out of order means the reader started mid-snapshot.
class SnapshotAssembly {
 public:
  // Returns true when `chunk` completed a snapshot (then take() it).
  bool Add(std::string_view id, ChunkPosition position, std::string_view value) {
    if (position.index == 0) {
      id_ = id;
      count_ = position.count;
      next_ = 0;
      bytes_.clear();
    } else if (id != id_ || position.index != next_ || position.count != count_) {
      cut_ = true;  // the rest of a snapshot whose beginning this pass did not read
      id_.clear();
      return false;
    }
    bytes_.append(value);
    ++next_;
    return next_ == count_;
  }
  std::string take() {
    id_.clear();
    return std::move(bytes_);
  }
  // True when, since the last complete snapshot, chunks of a snapshot began
  // before where this pass started reading.
  bool cut() const { return cut_; }
  void clear_cut() { cut_ = false; }

 private:
  std::string id_;
  int count_ = 0;
  int next_ = 0;
  std::string bytes_;
  bool cut_ = false;
};

}  // namespace

std::string DefaultSnapshotTopic(const std::string& event_topic) { return event_topic + ".snapshots"; }

std::vector<std::string> EncodeSnapshotChunks(const PartitionSnapshot& snapshot, size_t chunk_bytes) {
  nlohmann::json idempotency = nlohmann::json::array();
  for (const auto& [key, offset] : snapshot.idempotency) idempotency.push_back({key, offset});
  nlohmann::json doc = {{"v", kFormatVersion},
                        {"next_offset", snapshot.next_offset},
                        {"instance", snapshot.instance},
                        {"entities", snapshot.entities},
                        {"idempotency", std::move(idempotency)}};
  std::string bytes = doc.dump();
  std::vector<std::string> chunks;
  for (size_t at = 0; at < bytes.size(); at += chunk_bytes) chunks.push_back(bytes.substr(at, chunk_bytes));
  if (chunks.empty()) chunks.emplace_back();
  return chunks;
}

Result<PartitionSnapshot> DecodeSnapshot(std::string_view bytes) {
  nlohmann::json doc = nlohmann::json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return Status::InvalidArgument("snapshot is not a JSON object");
  if (doc.value("v", 0) != kFormatVersion)
    return Status::InvalidArgument("snapshot format version " + doc.value("v", nlohmann::json()).dump() +
                                   " is not " + std::to_string(kFormatVersion));
  auto next = doc.find("next_offset");
  auto entities = doc.find("entities");
  auto idempotency = doc.find("idempotency");
  if (next == doc.end() || !next->is_number_integer() || entities == doc.end() || !entities->is_array() ||
      idempotency == doc.end() || !idempotency->is_array())
    return Status::InvalidArgument("snapshot lacks next_offset, entities or idempotency");
  PartitionSnapshot s;
  s.next_offset = next->get<int64_t>();
  s.instance = doc.value("instance", "");
  s.entities = std::move(*entities);
  s.idempotency.reserve(idempotency->size());
  for (const auto& pair : *idempotency) {
    if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_number_integer())
      return Status::InvalidArgument("snapshot idempotency entry is not [key, offset]");
    s.idempotency.emplace_back(pair[0].get<std::string>(), pair[1].get<int64_t>());
  }
  return s;
}

std::vector<OutgoingMessage> SnapshotMessages(const std::string& snapshot_topic, int32_t partition,
                                              const PartitionSnapshot& snapshot) {
  std::vector<OutgoingMessage> messages;
  std::vector<std::string> chunks = EncodeSnapshotChunks(snapshot, kSnapshotChunkBytes);
  std::string id = std::to_string(snapshot.next_offset) + "@" + snapshot.instance;
  for (size_t i = 0; i < chunks.size(); ++i) {
    OutgoingMessage m;
    m.topic = snapshot_topic;
    m.partition = partition;
    m.key = std::to_string(partition);
    m.value = std::move(chunks[i]);
    m.headers = {{kSnapshotHeader, id},
                 {kChunkHeader, std::to_string(i) + "/" + std::to_string(chunks.size())}};
    messages.push_back(std::move(m));
  }
  return messages;
}

Result<std::optional<PartitionSnapshot>> LoadLatestSnapshot(const KafkaClientOptions& options,
                                                            const std::string& snapshot_topic,
                                                            int32_t partition,
                                                            std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto consumer = Consumer::Create(options, "");
  if (!consumer.ok()) return consumer.status();
  auto marks = (*consumer)->QueryWatermarks(snapshot_topic, partition, timeout);
  if (!marks.ok()) return marks.status().WithContext("snapshot topic " + snapshot_topic);
  auto [low, high] = *marks;
  if (high <= low) return std::optional<PartitionSnapshot>();

  // Read the last `window` offsets; widen until the newest snapshot is whole
  // in what was read, or the whole partition was read.
  for (int64_t window = 64;; window *= 4) {
    int64_t start = std::max(low, high - window);
    FRESHET_RETURN_IF_ERROR((*consumer)->Assign({{snapshot_topic, partition, start}}));
    SnapshotAssembly assembly;
    std::string newest;  // bytes of the newest complete snapshot in this pass
    for (;;) {
      if (std::chrono::steady_clock::now() > deadline)
        return Status::Timeout("reading snapshot topic " + snapshot_topic + " partition " +
                               std::to_string(partition));
      KafkaMessage message;
      auto outcome = (*consumer)->Poll(std::chrono::milliseconds(100), &message);
      if (!outcome.ok()) return outcome.status();
      if (*outcome == Consumer::PollOutcome::kPartitionEnd) break;
      if (*outcome != Consumer::PollOutcome::kMessage) continue;
      auto id = message.header(kSnapshotHeader);
      auto chunk = message.header(kChunkHeader);
      auto position = chunk ? ParseChunkPosition(*chunk) : std::nullopt;
      if (!id || !position) continue;  // not a snapshot chunk: someone else's record
      if (assembly.Add(*id, *position, message.value())) {
        newest = assembly.take();
        assembly.clear_cut();
      }
    }
    // A cut after the newest whole one means a newer snapshot began before
    // `start`: read further back, unless retention took its beginning (then
    // the whole one before it is still true).
    if (!newest.empty() && (!assembly.cut() || start == low)) {
      auto snapshot = DecodeSnapshot(newest);
      if (!snapshot.ok()) return snapshot.status().WithContext("snapshot topic " + snapshot_topic);
      return std::optional<PartitionSnapshot>(std::move(snapshot.value()));
    }
    if (start == low) return std::optional<PartitionSnapshot>();
  }
}

}  // namespace freshet
