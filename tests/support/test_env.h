// What integration tests share: where the suite's Kafka and Postgres are,
// unique names so tests never see each other's data, child processes of the
// real `freshet` binary, and waiting on conditions instead of sleeping.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "core/kafka.h"

namespace freshet::testing {

// Where tests write their logs, configs and RocksDB directories
// (<build>/test-logs). The integration tests' FRESHET_TEST_LOG_DIR.
const char* TestLogDir();

// FRESHET_KAFKA_BROKERS or the services script's default.
std::string KafkaBrokers();
KafkaClientOptions KafkaOptions();
// Admin URL of the suite's Postgres (FRESHET_TEST_PG_URL or the default).
std::string PostgresUrl();

// "prefix-<pid>-<counter>-<time>": unique across runs and tests.
std::string UniqueName(const std::string& prefix);

// Creates a fresh database for one test and returns its URL.
std::string CreateTestDatabase(const std::string& prefix);

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();

// Polls `condition` until it holds or `timeout` passes; true if it held.
bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
               std::chrono::milliseconds poll_every = std::chrono::milliseconds(20));

// A child process running the real freshet binary. Killed (SIGKILL) on
// destruction if still running, and when the test process dies (create it
// on the test's own thread: the kernel signals when the forking thread ends). stdout+stderr go to a log file.
// Its FRESHET_* environment is exactly `env`: nothing is inherited from the suite's shell.
class FreshetProcess {
 public:
  FreshetProcess(std::vector<std::string> args, std::map<std::string, std::string> env,
                 const std::string& log_name);
  ~FreshetProcess();
  FreshetProcess(const FreshetProcess&) = delete;
  FreshetProcess& operator=(const FreshetProcess&) = delete;

  pid_t pid() const { return pid_; }
  void Signal(int sig);
  // Waits for exit; returns the exit code (128+signal if killed), -1 on timeout.
  int Wait(std::chrono::milliseconds timeout);
  bool running();
  std::string Log() const;  // everything the process printed so far

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
  std::string log_path_;
};

// `freshet inspect TOPIC --name VIEW` on the suite's broker: the definition
// it printed (null if none), and everything it said in `output`.
nlohmann::ordered_json InspectTopic(const std::string& topic, const std::string& view_name,
                                    std::string* output);

// Produces `lines` ("key<TAB>value"; an empty key or value is sent as
// null) with kcat, a client freshet did not write, each with the header
// source=crm. Returns kcat's exit code.
int ProduceWithKcat(const std::string& topic, const std::vector<std::string>& lines);

// One record of a dead-letter topic, as its headers describe it.
struct DeadLetter {
  std::string view, error, source_topic;
  int32_t source_partition = -1;
  int64_t source_offset = -1;
  bool null_key = false;
};
// Reads `topic` (one partition) from the start until `count` dead letters
// arrived or `timeout` passed; returns those read.
std::vector<DeadLetter> ReadDeadLetters(const std::string& topic, size_t count,
                                        std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Runs the freshet binary to completion; returns exit code and output.
struct RunResult {
  int exit_code = -1;
  std::string output;
};
RunResult RunFreshet(std::vector<std::string> args, std::map<std::string, std::string> env,
                     std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Reads a partition to its end (read_committed); returns the values in order.
struct ReadRecord {
  int32_t partition;
  int64_t offset;
  std::string key;
  std::string value;
};
std::vector<ReadRecord> ReadAll(const std::string& topic, int partitions,
                                std::chrono::milliseconds timeout = std::chrono::seconds(30));

// A stream of inventory-like delta events produced straight into `topic`
// in transactions (every seventh one aborted, so it must never count), with
// the reference a correct stock_levels view must reach.
struct DeltaStream {
  std::map<std::pair<std::string, std::string>, int64_t> reference;  // (store, sku) -> sum of deltas
  std::map<int32_t, int64_t> last_offset;                            // last committed data offset
  int64_t final_progress() const;                                    // sum over partitions of last offset + 1
};
DeltaStream ProduceDeltaStream(const std::string& topic, int partitions, int events,
                               int per_transaction = 500, unsigned seed = 2024);

// Sum of the next offsets stored in freshet.offsets (0 while there are none).
int64_t StoredProgress(const std::string& db_url);

// Rows of public.stock_levels as (store, sku) -> on_hand.
std::map<std::pair<std::string, std::string>, int64_t> StockLevels(
    const std::string& db_url, const std::string& table = "public.stock_levels");

// Runs scripts/services with `args` (e.g. "pg-restart --hard"); true on success.
bool RunServicesScript(const std::string& args);
// Runs scripts/<script_and_args>; returns its exit code, and what it
// printed (stdout and stderr) in `output`.
int RunProjectScript(const std::string& script_and_args, std::string* output);

}  // namespace freshet::testing
