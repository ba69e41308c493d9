// ViewOwners: which view process serves which partition of each view's
// RocksDB copy, when several processes share the views (views.advertise_url
// set; docs/scale-out.md).
//
// Each process claims, in the owners topic (views.owners_topic: one
// partition, compacted), every partition its consumer group hands it:
// "loading" on assignment, "serving" once its copy of the partition has
// caught up (read to the end and written), "released" on revocation. Every
// process tails the topic, so each knows where to send a read of a
// partition it does not serve. Claims are in the order the topic holds them:
// a new owner's claim, made after the rebalance, comes after the old owner's
// release; a release only takes back a claim of the same instance; and a
// process killed without releasing is replaced by its successor's claim.
//
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/kafka.h"
#include "core/status.h"

namespace freshet {

enum class PartitionState { kLoading, kServing, kReleased };
const char* PartitionStateName(PartitionState state);

struct OwnerOfPartition {
  std::string url;       // the owner's views.advertise_url
  std::string instance;  // its instance id (one per process start)
  PartitionState state = PartitionState::kLoading;
};

class ViewOwners {
 public:
  // `group` (views.group_id) scopes the claims: deployments that share a
  // broker and an owners topic do not see each other's processes.
  ViewOwners(KafkaClientOptions kafka, std::string owners_topic, std::string group, std::string url);
  ~ViewOwners();
  ViewOwners(const ViewOwners&) = delete;
  ViewOwners& operator=(const ViewOwners&) = delete;

  // Creates the owners topic if missing and starts tailing it.
  Status Start(int replication_factor);
  void Stop();

  // Publishes this process's claim on `view`'s `partition` and waits until
  // the broker has it (up to 5 s).
  Status Claim(const std::string& view, int32_t partition, PartitionState state);
  // The latest claim on `view`'s `partition`; nullopt when none (or the
  // last owner released it).
  std::optional<OwnerOfPartition> Find(const std::string& view, int32_t partition) const;
  // True when the latest claim is this process's, serving.
  bool ServedHere(const std::string& view, int32_t partition) const;
  const std::string& url() const { return url_; }
  const std::string& instance() const { return instance_; }

 private:
  void Run();
  std::string KeyPrefix(const std::string& view) const { return group_ + "/" + view + "/"; }

  KafkaClientOptions kafka_;
  std::string topic_, group_, url_, instance_;
  std::unique_ptr<Producer> producer_;
  std::unique_ptr<Consumer> consumer_;
  mutable std::mutex mu_;
  std::map<std::string, std::map<int32_t, OwnerOfPartition>> claims_;  // view -> partition -> claim
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace freshet
