// The subcommands of the `freshet` binary. Each returns the process exit
// code: 0 success, 1 runtime failure, 2 bad usage or configuration.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "views/projection_registry.h"
#include "writer/domain_registry.h"

namespace freshet {

struct DemoLoadOptions {
  std::string writer_url = "http://127.0.0.1:8080";
  int stores = 4;
  int skus = 300;
  int commands = 5000;
  int clients = 4;
  unsigned seed = 42;
  std::string wait_views_url;  // when set: wait until this view process has applied every event
  // How long a command is retried (same idempotency key) while the writer
  // is unreachable, restarting or handing partitions over; 0: no retries.
  double retry_seconds = 60;
};

struct InspectOptions {
  std::string topic;
  std::string config_path;  // for kafka.brokers, unless `brokers` is given
  std::string brokers;
  int64_t records = 200;
  bool from_end = false;
  int timeout_s = 15;
  std::string view_name;        // default: the topic's last dot-separated part
  std::string schema_registry;  // default: FRESHET_SCHEMA_REGISTRY_URL
};

int RunWriterCommand(const std::string& config_path, const DomainRegistry& domains);
int RunViewsCommand(const std::string& config_path, const ProjectionRegistry& projections);
int RunCheckConfigCommand(const std::string& config_path);
int RunDemoLoadCommand(const DemoLoadOptions& options);
int RunInspectCommand(const InspectOptions& options);
// `store`: "postgres", "rocksdb", or "" (postgres if the view has it).
int RunRebuildCommand(const std::string& config_path, const std::string& view_name, const std::string& store,
                      const ProjectionRegistry& projections);

// Blocks SIGINT and SIGTERM in the calling thread (call before starting
// threads so they inherit the mask), and waits for one of them.
void BlockShutdownSignals();
int WaitForShutdownSignal();
// Waits at most `timeout`: the signal, or 0 if none came.
int WaitForShutdownSignalFor(std::chrono::milliseconds timeout);

}  // namespace freshet
