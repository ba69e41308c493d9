// Writer: routes commands to the PartitionOwner of their partition and
// serves the HTTP command API.
//
// In this version one writer process owns every partition of the topic;
// starting a second writer fences the first partition by partition.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/http.h"
#include "core/metrics.h"
#include "writer/decider.h"
#include "writer/partition_owner.h"

namespace freshet {

class Writer {
 public:
  // Creates the topic if missing, then starts one owner per partition
  // (fencing, recovery). Returns once the owners are started, not ready.
  static Result<std::unique_ptr<Writer>> Start(const Config& config, std::unique_ptr<Domain> domain);
  ~Writer();

  // Routes by the command's partition key (murmur2, as Kafka's producers do).
  void Submit(Command command, CommandDone done);
  void Query(const std::string& partition_key, const std::string& entity, QueryDone done);

  // The HTTP API: POST /commands, GET /state/{key}/{entity}, /healthz, /readyz, /metrics.
  void HandleHttp(HttpRequest&& request, HttpReply reply);

  bool ready() const;           // every partition is serving
  int partition_count() const { return static_cast<int>(owners_.size()); }
  const Domain& domain() const { return *domain_; }
  MetricsRegistry& metrics() { return metrics_; }
  void Stop();

 private:
  Writer() = default;
  void HandleCommands(HttpRequest&& request, HttpReply reply);
  void HandleState(const HttpRequest& request, HttpReply reply);

  Config config_;
  std::unique_ptr<Domain> domain_;
  MetricsRegistry metrics_;
  std::vector<std::unique_ptr<PartitionOwner>> owners_;
};

}  // namespace freshet
