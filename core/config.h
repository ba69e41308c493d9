// freshet's configuration: one JSON file (comments allowed) plus environment
// overrides, validated against a fixed schema.
//
// Every field has a dotted path ("kafka.brokers"). An environment variable
// named FRESHET_ + the path in upper case with dots as underscores
// (FRESHET_KAFKA_BROKERS) overrides the file. Unknown keys, wrong types and
// missing required fields are errors whose message names the field.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"

namespace freshet {

struct KafkaConfig {
  std::string brokers;              // required: "host:port[,host:port]"
  std::string topic = "inventory";  // the event topic
  int partitions = 4;               // used when the writer creates the topic
  int replication_factor = 1;
  std::string dead_letter_topic = "freshet-dlq";
  // Extra librdkafka properties passed to every client, e.g. {"debug": "eos"}.
  std::map<std::string, std::string> client_properties;
};

struct PostgresConfig {
  std::string url;  // libpq URL; required by `views`
};

struct WriterConfig {
  std::string listen = "127.0.0.1:8080";
  int linger_ms = 5;             // group commit: how long a batch may wait to fill (under load)
  int max_batch = 1024;          // group commit: commands per Kafka transaction
  int max_body_bytes = 1 << 20;  // larger HTTP bodies get 413
  std::string transactional_id_prefix = "freshet-writer";
  int io_threads = 1;
  std::string domain = "inventory";  // a registered domain: inventory | accounts in the stock binary
  // Writer instances share the partitions through this consumer group
  // (default: "freshet-writers-<topic>").
  std::string group_id;
  std::string owners_topic = "freshet-writer-owners";  // who owns which partition (compacted)
  std::string instance_id;                             // default: hostname-pid
  std::string advertise_url;       // how other instances reach this one; default http://<listen>
  int session_timeout_ms = 10000;  // how soon a dead owner's partitions move
  int idempotency_keys = 100000;   // per partition: how many recent keys are remembered
  // Snapshots of each partition's state, so that recovery reads a snapshot
  // and the events after it, not the whole history. Topic default:
  // "<kafka.topic>.snapshots"; 0 events turns snapshots off.
  std::string snapshot_topic;
  int snapshot_every_events = 100000;
  std::string token;  // when set, /commands and /state require it (Bearer)
};

// WebSocket change feeds (GET /views/{name}/feed) and live SQL (GET /sql/feed).
struct FeedConfig {
  std::string token;             // when set, feeds and live SQL require it (Bearer or ?token=)
  int max_clients = 2000;        // feed connections per process
  int max_pending = 10000;       // keys a client may fall behind before it gets a fresh snapshot
  int history_changes = 100000;  // recent changes kept so that a reconnecting client can resume
  int batch_window_ms = 20;      // batch=1 clients get at most one frame per window
  int max_snapshot_rows = 100000;
};

struct SqlConfig {
  // How live queries connect: a URL for a login role that holds
  // freshet_reader. Empty: postgres.url with role freshet_live, which the
  // view process creates (it needs the right to create roles for that).
  std::string url;
  int statement_timeout_ms = 5000;
  int max_rows = 10000;
  int max_clients = 32;  // one Postgres connection each
};

struct ViewsConfig {
  std::string listen = "127.0.0.1:8081";
  std::string group_id = "freshet-views";
  int flush_interval_ms = 100;  // freshness: longest a change waits to be written
  int max_batch_rows = 50000;   // freshness: flush when this many events are pending
  // How soon the group notices a crashed view process and hands its
  // partitions to the others (the broker's minimum is 6000 by default).
  int session_timeout_ms = 10000;
  // The RocksDB database of views with "stores": ["rocksdb"] (one per process).
  std::string rocksdb_path = "freshet-views.rocksdb";
  // Scale-out of the RocksDB copies (docs/scale-out.md): how the other view
  // processes reach this one. Set, the process claims the partitions it
  // serves in owners_topic and answers reads of the others' partitions by
  // asking them; empty, it answers from its own copy alone (one process).
  std::string advertise_url;
  std::string owners_topic = "freshet-view-owners";  // compacted, one partition
  // Declarative view definitions (see views/view_spec.h), validated by the
  // views component. Empty: the built-in stock_levels view only.
  nlohmann::ordered_json definitions = nlohmann::ordered_json::array();
  FeedConfig feed;
  SqlConfig sql;
};

struct Config {
  KafkaConfig kafka;
  PostgresConfig postgres;
  WriterConfig writer;
  ViewsConfig views;
  std::string log_level = "info";
};

// Reads `path` (empty: no file, only defaults and environment) and validates.
Result<Config> LoadConfig(const std::string& path);

// Same, from text already in memory; `env` stands in for the process
// environment so that tests can pass their own.
Result<Config> ParseConfig(const std::string& text, const std::string& source_name,
                           const std::map<std::string, std::string>& env);

// The process environment entries starting with FRESHET_.
std::map<std::string, std::string> FreshetEnvironment();

// Checks that the fields a subcommand needs are present ("kafka.brokers: required").
Status RequireField(const std::string& value, const std::string& path);

// The environment variable that overrides `path`: "kafka.brokers" -> "FRESHET_KAFKA_BROKERS".
std::string EnvNameFor(const std::string& path);

}  // namespace freshet
