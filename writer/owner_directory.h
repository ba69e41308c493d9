// OwnerDirectory: who owns which partition, as claimed in the owners topic.
// Owners claim a partition with their fencing producer right after taking
// it over, so the last committed claim per partition names the current (or
// a dead, not yet replaced) owner. Every writer instance tails the topic to
// route commands for partitions it does not own.
//
// Thread-safe.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/kafka.h"

namespace freshet {

struct OwnerClaim {
  std::string url;       // base URL of the owning instance's HTTP API
  std::string instance;  // its instance id
};

class OwnerDirectory {
 public:
  OwnerDirectory(KafkaClientOptions kafka, std::string owners_topic, std::string topic);
  ~OwnerDirectory();
  Status Start();
  void Stop();
  std::optional<OwnerClaim> Find(int32_t partition) const;

 private:
  void Run();

  KafkaClientOptions kafka_;
  std::string owners_topic_, topic_;
  std::unique_ptr<Consumer> consumer_;
  mutable std::mutex mu_;
  std::map<int32_t, OwnerClaim> claims_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace freshet
