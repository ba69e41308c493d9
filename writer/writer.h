// Writer: one writer instance. It keeps a PartitionSlot for every partition
// of the topic (standby replicas, kept warm by tailing), takes ownership of
// the partitions the writers' consumer group assigns to it (cooperative, so
// only partitions that move change hands), and serves the HTTP command API.
// A command for a partition owned elsewhere is redirected (307) to the owner
// named in the owners topic.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/config.h"
#include "core/http.h"
#include "core/metrics.h"
#include "writer/decider.h"
#include "writer/domain_registry.h"
#include "writer/owner_directory.h"
#include "writer/partition_slot.h"

namespace freshet {

class Writer {
 public:
  // Creates the topics if missing, starts the slots (standby), the owners
  // directory and the group membership. Returns before it owns anything.
  static Result<std::unique_ptr<Writer>> Start(const Config& config, std::unique_ptr<Domain> domain);
  ~Writer();

  // In-process API. Routes by the command's partition key (murmur2, as
  // Kafka's producers do); kUnavailable if this instance does not own it.
  void Submit(Command command, CommandDone done);
  void Query(const std::string& partition_key, const std::string& entity, QueryDone done);
  int32_t PartitionOf(const std::string& partition_key) const;

  // POST /commands, GET /state/{key}/{entity}, /healthz, /readyz, /metrics.
  void HandleHttp(HttpRequest&& request, HttpReply reply);

  // Joined the group and serving every partition assigned to it.
  bool ready() const;
  // Ready and owning every partition (a single-instance deployment).
  bool owns_all() const;
  int partition_count() const { return static_cast<int>(slots_.size()); }
  const std::string& instance_id() const { return instance_id_; }
  const Domain& domain() const { return *domain_; }
  MetricsRegistry& metrics() { return metrics_; }
  // Leaves the group, answers what is queued, stops every slot. Idempotent.
  void Stop();

 private:
  Writer() = default;
  void RunMembership();
  void HandleCommands(HttpRequest&& request, HttpReply reply);
  void HandleState(const HttpRequest& request, HttpReply reply);
  // The answer for a partition this instance does not own: 307 to the owner
  // or 503 while nobody owns it.
  HttpResponse NotOwnedResponse(int32_t partition, const std::string& target) const;

  Config config_;
  std::unique_ptr<Domain> domain_;
  std::string instance_id_;
  std::string advertise_url_;
  std::string retention_problem_;  // why the event topic may lose events, or ""
  MetricsRegistry metrics_;
  WriterMetrics writer_metrics_;  // the slots' metrics, registered in metrics_
  Gauge* owned_gauge_ = nullptr;
  std::vector<std::unique_ptr<PartitionSlot>> slots_;
  std::unique_ptr<OwnerDirectory> directory_;
  std::unique_ptr<Consumer> membership_;
  std::atomic<bool> joined_{false};
  std::atomic<bool> stopping_{false};
  std::thread membership_thread_;
};

}  // namespace freshet
