// `freshet rebuild VIEW`: reprocesses a view from offset zero into a new
// table beside the live one, then swaps it in atomically (the engine's
// SwapIn, once it has read to the end) and drops the old one. Progress
// (offsets done of total, rate, ETA) goes to stderr.
//
// Postgres copy (the default): built here. SIGINT or SIGTERM stops it with
// what it built kept, and running it again resumes. Running view processes
// follow the new table on their next flush.
//
// RocksDB copy (--store rocksdb): the database belongs to one process. If a
// view process holds it, the rebuild runs inside that process (POST
// /views/{name}/rebuild) and this command follows its progress; otherwise
// it is built here, and a view process started later resumes an
// unfinished one.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <pqxx/pqxx>
#include <thread>

#include "cli/commands.h"
#include "core/config.h"
#include "core/envelope.h"
#include "core/http.h"
#include "core/http_client.h"
#include "core/kafka.h"
#include "core/log.h"
#include "core/postgres.h"
#include "sinks/postgres_sink.h"
#include "sinks/rocksdb_store.h"
#include "views/declarative_projection.h"
#include "views/rocksdb_view_store.h"
#include "views/view_engine.h"
#include "views/view_runner.h"
#include "views/view_spec.h"

namespace freshet {

namespace {

// The version to build: the unfinished rebuild of this definition if the
// registry names one (resume), else a new "<hash>r<unix seconds>".
Result<std::pair<std::string, bool>> RebuildVersion(const std::string& url, const TableSpec& table) {
  auto conn = ConnectPostgres(url);
  if (!conn.ok()) return conn.status();
  try {
    Status migrated = ApplyMigrations(**conn);
    if (!migrated.ok()) return migrated;
    pqxx::nontransaction tx(**conn);
    auto row = tx.exec_params(
        "SELECT building_table FROM freshet.views WHERE name = $1 AND building_table IS NOT NULL "
        "AND to_regclass(quote_ident($2) || '.' || quote_ident(building_table)) IS NOT NULL",
        table.view_name, table.schema);
    const std::string prefix = table.view_name + "__v" + table.version + "r";
    if (!row.empty() && row[0][0].as<std::string>().rfind(prefix, 0) == 0)
      return std::pair{row[0][0].as<std::string>().substr(table.view_name.size() + 3), true};
  } catch (const std::exception& e) {
    return Status::Unavailable(std::string("reading the view registry: ") + e.what());
  }
  return std::pair{table.version + "r" + std::to_string(std::time(nullptr)), false};
}

std::string Duration(double seconds) {
  char buf[32];
  if (seconds < 0 || seconds > 1e7) return "?";
  if (seconds < 60)
    std::snprintf(buf, sizeof buf, "%.0f s", seconds);
  else
    std::snprintf(buf, sizeof buf, "%d min %02d s", static_cast<int>(seconds) / 60,
                  static_cast<int>(seconds) % 60);
  return buf;
}

std::string ProgressLine(const std::string& view_name, int64_t done, int64_t total, double rate, double eta) {
  char line[256];
  std::snprintf(line, sizeof line, "%s: %lld of %lld offsets (%.0f%%), %.0f events/s, ETA %s",
                view_name.c_str(), static_cast<long long>(std::min(done, total)),
                static_cast<long long>(total), total > 0 ? 100.0 * std::min(done, total) / total : 100.0,
                rate, Duration(eta).c_str());
  return line;
}

// The progress loops wait for SIGINT and SIGTERM (blocked with
// BlockShutdownSignals) a second at a time, so that a stop ends the rebuild
// cleanly instead of killing the process in the middle of a write.
bool WaitForStopSignal() { return WaitForShutdownSignalFor(std::chrono::seconds(1)) != 0; }

// Progress lines on stderr: one line rewritten in place on a terminal, a
// line every 5 s otherwise (a log should not get one a second).
class ProgressPrinter {
 public:
  ProgressPrinter() : terminal_(isatty(STDERR_FILENO)), last_line_(std::chrono::steady_clock::now()) {}
  void Print(const std::string& line) {
    auto now = std::chrono::steady_clock::now();
    if (terminal_) {
      std::cerr << "\r" << line << "   " << std::flush;
    } else if (now - last_line_ >= std::chrono::seconds(5)) {
      std::cerr << line << "\n";
      last_line_ = now;
    }
  }
  // Ends the line rewritten in place, before other output.
  void EndLine() {
    if (terminal_) std::cerr << "\n";
  }

 private:
  const bool terminal_;
  std::chrono::steady_clock::time_point last_line_;
};

int64_t OffsetsDone(const std::map<int32_t, int64_t>& next_offsets) {
  int64_t done = 0;
  for (const auto& [p, next] : next_offsets) done += std::max<int64_t>(next, 0);
  return done;
}

// The new version is live: swapped in, or, when no version was live,
// caught up with the topic in place.
bool RebuildIsLive(const ViewStatus& status, bool building) {
  if (status.state != "running") return false;
  if (building) return !status.building;
  bool caught_up = !status.lag.empty();
  for (const auto& [p, lag] : status.lag) caught_up &= lag == 0;
  return caught_up;
}

// Runs `engine` until the new version is live (or, when nothing was live,
// until it has caught up), printing progress; 0, 1 (failed) or 130
// (interrupted).
int DriveRebuild(ViewEngine& engine, const std::string& view_name, const std::string& table_name,
                 bool building, int64_t total, const std::function<void(const std::string&)>& report) {
  BlockShutdownSignals();  // before the engine's threads start
  std::atomic<bool> stop{false};
  Status result;
  std::atomic<bool> finished{false};
  std::thread runner([&] {
    result = engine.Run(stop);
    finished = true;
  });

  auto started = std::chrono::steady_clock::now();
  ProgressPrinter printer;
  int64_t first_done = -1;
  bool interrupted = false;
  for (;;) {
    if (WaitForStopSignal()) {
      interrupted = true;
      break;
    }
    ViewStatus status = engine.Snapshot();
    int64_t done = OffsetsDone(status.next_offsets);
    if (first_done < 0 && status.state == "running") first_done = done;
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    double rate = elapsed > 0 && first_done >= 0 ? (done - first_done) / elapsed : 0;
    double eta = rate > 0 ? (total - done) / rate : -1;
    printer.Print(ProgressLine(view_name, done, total, rate, eta));
    report(nlohmann::json{
        {"state", "running"},
        {"table", table_name},
        {"done", std::min(done, total)},
        {"total", total},
        {"events_per_s", rate},
        {"eta_s",
         eta}}.dump());
    if (finished || RebuildIsLive(status, building)) break;
  }
  stop = true;
  runner.join();
  printer.EndLine();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!result.ok()) {
    report(nlohmann::json{{"state", "failed"}, {"table", table_name}, {"error", result.message()}}.dump());
    std::cerr << "freshet: rebuild of " << view_name << " failed: " << result.message()
              << "\nwhat was built is kept; run the same command again to resume\n";
    return 1;
  }
  if (interrupted) {
    report(nlohmann::json{{"state", "interrupted"}, {"table", table_name}}.dump());
    std::cerr << "interrupted after " << Duration(seconds) << "; what was built is kept in " << table_name
              << ": run the same command again to resume\n";
    return 130;
  }
  std::cerr << view_name << ": " << table_name << " is live after " << Duration(seconds)
            << "; the previous table was dropped\n";
  return 0;
}

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// The table the view process serves `view_name` from, "" if it does not say.
std::string LiveTable(HttpClient& http, const HttpHeaders& auth, const std::string& view_name) {
  auto r = http.Request("GET", "/views/" + view_name + "/rows?prefix=&limit=1", "", auth);
  if (!r.ok() || r->status != 200) return "";
  return nlohmann::json::parse(r->body, nullptr, false).value("table", "");
}

// Asks the view process to rebuild its RocksDB copy: 0 once it rebuilds
// (one already running counts), else the exit code after saying why not.
int AskViewProcessToRebuild(HttpClient& http, const HttpHeaders& auth, const Config& config,
                            const std::string& view_name) {
  auto asked = http.Request("POST", "/views/" + view_name + "/rebuild?store=rocksdb", "", auth);
  if (!asked.ok()) {
    std::cerr << "freshet: rebuild: the view process holding " << config.views.rocksdb_path
              << " does not answer at " << config.views.listen << ": " << asked.status().message() << "\n";
    return 1;
  }
  if (asked->status == 409) {
    std::cerr << "a rebuild of " << view_name << " is already running in the view process; following it\n";
  } else if (asked->status != 202) {
    std::cerr << "freshet: rebuild: the view process refused (HTTP " << asked->status << "): " << asked->body
              << "\n";
    return 1;
  }
  return 0;
}

// Follows the view process's status until a table other than `before` is
// live; 0, 1 (the rebuild stopped) or 130 (interrupted: the rebuild goes
// on without us).
int FollowRemoteRebuild(HttpClient& http, const HttpHeaders& auth, const std::string& view_name,
                        const std::string& before, int64_t total) {
  BlockShutdownSignals();
  auto started = std::chrono::steady_clock::now();
  ProgressPrinter printer;
  for (;;) {
    if (WaitForStopSignal()) {
      printer.EndLine();
      std::cerr << "stopped following; the rebuild goes on in the view process (see /views/" << view_name
                << "/status)\n";
      return 130;
    }
    auto r = http.Request("GET", "/views/" + view_name + "/status", "", auth);
    if (!r.ok() || r->status != 200) continue;  // restarting: ask again
    auto status = nlohmann::json::parse(r->body, nullptr, false);
    if (status.contains("stores")) status = status["stores"]["rocksdb"];
    int64_t done = 0;
    for (const auto& [p, next] : status["next_offsets"].items())
      done += std::max<int64_t>(next.get<int64_t>(), 0);
    std::string now_live = LiveTable(http, auth, view_name);
    bool swapped = status.value("state", "") == "running" && !now_live.empty() && now_live != before;
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    double rate = elapsed > 0 ? done / elapsed : 0;
    double eta = rate > 0 ? (total - done) / rate : -1;
    printer.Print(ProgressLine(view_name, done, total, rate, eta));
    if (swapped) {
      printer.EndLine();
      std::cerr << view_name << ": " << now_live << " is live after " << Duration(elapsed)
                << "; the previous table was dropped\n";
      return 0;
    }
    if (status.value("state", "") == "stopped") {
      std::cerr << "freshet: rebuild of " << view_name << " stopped: " << status.value("error", "") << "\n";
      return 1;
    }
  }
}

// The RocksDB copy is held by a running view process: ask it to rebuild and
// follow the progress it reports.
int RemoteRocksDbRebuild(const Config& config, const std::string& view_name, int64_t total) {
  auto address = ParseHostPort(config.views.listen, "views.listen");
  if (!address.ok()) {
    std::cerr << "freshet: config error: " << address.status().message() << "\n";
    return 2;
  }
  HttpClient http(address->first, address->second, std::chrono::seconds(10));
  HttpHeaders auth;
  if (!config.views.feed.token.empty())
    auth.push_back({"Authorization", "Bearer " + config.views.feed.token});
  std::string before = LiveTable(http, auth, view_name);
  if (int refused = AskViewProcessToRebuild(http, auth, config, view_name)) return refused;
  std::cerr << "rebuilding " << view_name << " (rocksdb) inside the view process at " << config.views.listen
            << " from offset zero: " << total << " offsets; readers keep the live table until the swap\n";
  return FollowRemoteRebuild(http, auth, view_name, before, total);
}

// The config, the view and the copy of it that the command line names.
struct RebuildTarget {
  Config config;
  ViewSpec spec;
  std::string store;  // "postgres" or "rocksdb"
};

// nullopt (exit code 2) after saying what is wrong with the config or the
// command line.
std::optional<RebuildTarget> ResolveRebuildTarget(const std::string& config_path,
                                                  const std::string& view_name,
                                                  const std::string& store_arg) {
  auto config = LoadConfig(config_path);
  if (!config.ok()) {
    std::cerr << "freshet: config error: " << config.status().message() << "\n";
    return std::nullopt;
  }
  if (Status st = RequireField(config->kafka.brokers, "kafka.brokers"); !st.ok()) {
    std::cerr << "freshet: config error: " << st.message() << "\n";
    return std::nullopt;
  }
  auto specs = ParseViewSpecs(config->views.definitions, "views.definitions");
  if (!specs.ok()) {
    std::cerr << "freshet: config error: " << specs.status().message() << "\n";
    return std::nullopt;
  }
  const ViewSpec* spec = nullptr;
  std::string known;
  for (const ViewSpec& s : *specs) {
    known += (known.empty() ? "" : ", ") + s.name;
    if (s.name == view_name) spec = &s;
  }
  if (!spec) {
    std::cerr << "freshet: rebuild: no view named \"" << view_name << "\" in views.definitions"
              << (known.empty() ? "" : " (known: " + known + ")") << "\n";
    return std::nullopt;
  }
  bool has_postgres = false, has_rocksdb = false;
  for (const auto& s : spec->stores) {
    has_postgres |= s == "postgres";
    has_rocksdb |= s == "rocksdb";
  }
  std::string store = store_arg.empty() ? (has_postgres ? "postgres" : "rocksdb") : store_arg;
  if ((store == "postgres" && !has_postgres) || (store == "rocksdb" && !has_rocksdb)) {
    std::cerr << "freshet: rebuild: --store: view " << view_name << " has no " << store
              << " copy (its stores: " << (has_postgres ? "postgres" : "")
              << (has_postgres && has_rocksdb ? ", " : "") << (has_rocksdb ? "rocksdb" : "") << ")\n";
    return std::nullopt;
  }
  if (store == "postgres") {
    if (Status st = RequireField(config->postgres.url, "postgres.url"); !st.ok()) {
      std::cerr << "freshet: config error: " << st.message() << "\n";
      return std::nullopt;
    }
  }
  return RebuildTarget{std::move(config.value()), *spec, store};
}

// The offsets a rebuild replays: every partition's high watermark, summed.
// A rebuild replays the topic from offset zero: one that has lost its
// beginning would silently give other rows than the live version has, so
// that is refused unless the view allows it. -1 (exit code 1) after saying
// why.
int64_t OffsetsToReplay(Consumer& consumer, const std::string& topic, int32_t partitions,
                        const ViewSpec& spec) {
  int64_t total = 0;
  std::string lost;
  for (int32_t p = 0; p < partitions; ++p) {
    auto marks = consumer.QueryWatermarks(topic, p, std::chrono::seconds(10));
    if (!marks.ok()) {
      std::cerr << "freshet: rebuild: kafka: topic " << topic << " partition " << p << ": "
                << marks.status().message() << "\n";
      return -1;
    }
    total += marks->second;
    if (marks->first > 0)
      lost += (lost.empty() ? "" : ", ") + std::string("partition ") + std::to_string(p) +
              " starts at offset " + std::to_string(marks->first);
  }
  if (!lost.empty()) {
    if (!spec.source.allow_incomplete_log) {
      std::cerr
          << "freshet: rebuild: view " << spec.name << ": topic " << topic << " has lost its beginning ("
          << lost
          << "); a rebuild from what is left would silently differ from the live view. Restore the "
             "records, or set \"source\": {\"allow_incomplete_log\": true} on the view to rebuild from the "
             "earliest records left.\n";
      return -1;
    }
    std::cerr << "rebuild: topic " << topic << " has lost its beginning (" << lost
              << "); rebuilding from the earliest records left (source.allow_incomplete_log)\n";
  }
  return total;
}

// Everything both copies' rebuilds need, settled before either starts.
struct RebuildJob {
  const RebuildTarget& target;
  const ProjectionRegistry& projections;
  std::string topic;
  int32_t partitions;
  int64_t total;    // offsets to replay
  TableSpec table;  // as the view's projection declares it
  ViewEngineOptions options;
};

ViewEngineOptions RebuildEngineOptions(const RebuildTarget& target, const KafkaClientOptions& kafka,
                                       const std::string& topic, DeadLetterSink* dead_letters) {
  const Config& config = target.config;
  const ViewSpec& spec = target.spec;
  ViewEngineOptions options;
  options.kafka = kafka;
  options.topic = topic;
  options.source = spec.source;
  options.parse_key = ReadsKeyJson(spec);
  // At-least-once: the same group base as the view processes (the engine
  // adds the table), so a process that follows the rebuilt table continues
  // from the builder's commits.
  options.group_id = config.views.group_id + "." + spec.name + (target.store == "rocksdb" ? ".rocksdb" : "") +
                     (spec.exactly_once ? ".rebuild" : "");
  options.at_least_once = !spec.exactly_once;
  options.session_timeout_ms = config.views.session_timeout_ms;
  options.flush_interval = std::chrono::milliseconds(1000);  // throughput over freshness: nobody reads it yet
  options.max_batch_events = 100000;
  options.stop_on_error = spec.stop_on_error;
  options.dead_letter_topic = config.kafka.dead_letter_topic;
  options.dead_letters = dead_letters;
  return options;
}

// Builds the RocksDB copy here, or in the view process that holds the
// database.
int RebuildRocksDb(const RebuildJob& job, ViewMetrics& metrics) {
  const Config& config = job.target.config;
  const std::string& view_name = job.target.spec.name;
  auto db = RocksDbStore::Open(config.views.rocksdb_path, {});
  if (!db.ok()) {
    if (db.status().code() == StatusCode::kUnavailable)
      return RemoteRocksDbRebuild(config, view_name, job.total);
    std::cerr << "freshet: rebuild: views.rocksdb_path: " << db.status().message() << "\n";
    return 1;
  }
  auto view_store = RocksDbViewStore::Open(**db, job.topic, job.table, /*rebuild=*/true);
  if (!view_store.ok()) {
    std::cerr << "freshet: rebuild: " << view_store.status().message() << "\n";
    return 1;
  }
  std::string table_name = (*view_store)->table_name();
  bool building = (*view_store)->building();
  std::cerr << "rebuilding " << view_name << " (rocksdb) into " << table_name
            << " from offset zero: " << job.total << " offsets in " << job.partitions
            << " partitions; no view process holds " << config.views.rocksdb_path
            << ", so it is built here\n";
  ViewEngine engine(job.options, std::move(MakeViewProjection(job.target.spec, job.projections).value()),
                    std::move(view_store.value()), metrics);
  return DriveRebuild(engine, view_name, table_name, building, job.total, [](const std::string&) {});
}

// Builds a new version of the Postgres copy beside the live one (or resumes
// the unfinished one), reporting progress to the view registry.
int RebuildPostgres(const RebuildJob& job, ViewMetrics& metrics) {
  const std::string& url = job.target.config.postgres.url;
  const std::string& view_name = job.target.spec.name;
  TableSpec table = job.table;
  auto version = RebuildVersion(url, table);
  if (!version.ok()) {
    std::cerr << "freshet: rebuild: " << version.status().message() << "\n";
    return 1;
  }
  table.version = version->first;
  auto sink = PostgresSink::Open(url, job.topic, table);
  if (!sink.ok()) {
    std::cerr << "freshet: rebuild: " << sink.status().message() << "\n";
    return 1;
  }
  std::cerr << (version->second ? "resuming the rebuild of " : "rebuilding ") << view_name << " into "
            << table.table_name() << " from offset zero: " << job.total << " offsets in " << job.partitions
            << " partitions; readers keep the live table until the swap\n";
  bool building = (*sink)->building();
  ViewEngine engine(job.options, std::move(MakeViewProjection(job.target.spec, job.projections).value()),
                    std::make_unique<PostgresViewStore>(std::move(sink.value()), table), metrics);
  // Progress also goes to the registry, where view processes show it in
  // their status endpoint.
  auto registry_conn = ConnectPostgres(url);
  auto report = [&](const std::string& progress) {
    if (!registry_conn.ok()) return;
    try {
      pqxx::nontransaction tx(**registry_conn);
      tx.exec_params(
          "UPDATE freshet.views SET build_progress = $2::jsonb WHERE name = $1 AND building_table = $3",
          view_name, progress, table.table_name());
    } catch (const std::exception& e) {
      spdlog::warn("rebuild: reporting progress: {}", e.what());
    }
  };
  return DriveRebuild(engine, view_name, table.table_name(), building, job.total, report);
}

}  // namespace

int RunRebuildCommand(const std::string& config_path, const std::string& view_name,
                      const std::string& store_arg, const ProjectionRegistry& projections) {
  auto target = ResolveRebuildTarget(config_path, view_name, store_arg);
  if (!target) return 2;
  const Config& config = target->config;
  InitLogging(config.log_level == "info" ? "warn" : config.log_level, "rebuild");

  KafkaClientOptions kafka{config.kafka.brokers, config.kafka.client_properties};
  const std::string topic = SourceTopic(target->spec, config.kafka.topic);
  auto dead_letters = Producer::Create(kafka);
  auto consumer = Consumer::Create(kafka, "");
  auto partitions = PartitionCount(kafka, topic, std::chrono::seconds(15));
  if (!dead_letters.ok() || !consumer.ok() || !partitions.ok()) {
    std::cerr << "freshet: rebuild: kafka: "
              << (!partitions.ok() ? partitions.status().message() : "cannot create clients") << "\n";
    return 1;
  }
  std::unique_ptr<DeadLetterSink> dead_letter_sink = KafkaDeadLetters(std::move(dead_letters.value()));
  int64_t total = OffsetsToReplay(**consumer, topic, *partitions, target->spec);
  if (total < 0) return 1;

  // One projection to learn the table from; each rebuild makes a fresh one
  // for its engine.
  auto probe = MakeViewProjection(target->spec, projections);
  if (!probe.ok()) {
    std::cerr << "freshet: rebuild: " << probe.status().message() << "\n";
    return 2;
  }
  RebuildJob job{*target,
                 projections,
                 topic,
                 *partitions,
                 total,
                 (*probe)->table(),
                 RebuildEngineOptions(*target, kafka, topic, dead_letter_sink.get())};
  MetricsRegistry registry;
  ViewMetrics metrics(registry, "view=\"" + view_name + "\",store=\"" + target->store + "\"");
  if (target->store == "rocksdb") return RebuildRocksDb(job, metrics);
  return RebuildPostgres(job, metrics);
}

}  // namespace freshet
