#include "core/config.h"

#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

extern char** environ;

namespace freshet {
namespace {

using json = nlohmann::json;

// Walks one JSON object of the config, remembering which keys were read so
// that anything left over can be reported as unknown.
class ConfigObject {
 public:
  ConfigObject(const json* object, std::string path, const std::map<std::string, std::string>* env)
      : object_(object), path_(std::move(path)), env_(env) {}

  Status String(const char* key, std::string* out) {
    std::string path = Join(key);
    const json* v = Find(key);
    if (auto e = Env(path)) {
      *out = *e;
      return Status::Ok();
    }
    if (!v) return Status::Ok();
    if (!v->is_string()) return TypeError(path, "a string", *v);
    *out = v->get<std::string>();
    return Status::Ok();
  }

  Status Int(const char* key, int* out, long min, long max) {
    std::string path = Join(key);
    long value;
    const json* v = Find(key);
    if (auto e = Env(path)) {
      char* end = nullptr;
      value = std::strtol(e->c_str(), &end, 10);
      if (e->empty() || *end != '\0')
        return Status::InvalidArgument(path + " (from " + EnvNameFor(path) +
                                       "): expected an integer, got \"" + *e + "\"");
    } else {
      if (!v) return Status::Ok();
      if (!v->is_number_integer()) return TypeError(path, "an integer", *v);
      value = v->get<long>();
    }
    if (value < min || value > max)
      return Status::InvalidArgument(path + ": " + std::to_string(value) + " is out of range [" +
                                     std::to_string(min) + ", " + std::to_string(max) + "]");
    *out = static_cast<int>(value);
    return Status::Ok();
  }

  // A value validated elsewhere (view definitions); only its presence is noted.
  Status Raw(const char* key, nlohmann::json* out) {
    const json* v = Find(key);
    if (v) *out = *v;
    return Status::Ok();
  }

  Status StringMap(const char* key, std::map<std::string, std::string>* out) {
    std::string path = Join(key);
    const json* v = Find(key);
    if (!v) return Status::Ok();
    if (!v->is_object()) return TypeError(path, "an object of strings", *v);
    for (auto it = v->begin(); it != v->end(); ++it) {
      if (!it.value().is_string()) return TypeError(path + "." + it.key(), "a string", it.value());
      (*out)[it.key()] = it.value().get<std::string>();
    }
    return Status::Ok();
  }

  // A nested object; absent means an empty one (all defaults).
  Result<ConfigObject> Object(const char* key) {
    std::string path = Join(key);
    const json* v = Find(key);
    if (!v) return ConfigObject(&kEmpty, path, env_);
    if (!v->is_object()) return TypeError(path, "an object", *v);
    return ConfigObject(v, path, env_);
  }

  Status CheckNoUnknownKeys() const {
    for (auto it = object_->begin(); it != object_->end(); ++it) {
      if (!seen_.count(it.key())) {
        std::string known;
        for (const auto& k : seen_) known += (known.empty() ? "" : ", ") + k;
        return Status::InvalidArgument(Join(it.key().c_str()) + ": unknown key" +
                                       (known.empty() ? "" : " (known here: " + known + ")"));
      }
    }
    return Status::Ok();
  }

 private:
  static inline const json kEmpty = json::object();

  std::string Join(const char* key) const { return path_.empty() ? key : path_ + "." + key; }

  const json* Find(const char* key) {
    seen_.insert(key);
    auto it = object_->find(key);
    return it == object_->end() ? nullptr : &*it;
  }

  std::optional<std::string> Env(const std::string& path) {
    auto it = env_->find(EnvNameFor(path));
    if (it == env_->end()) return std::nullopt;
    return it->second;
  }

  static Status TypeError(const std::string& path, const char* expected, const json& got) {
    return Status::InvalidArgument(path + ": expected " + expected + ", got " + got.type_name() + " " +
                                   got.dump());
  }

  const json* object_;
  std::string path_;
  const std::map<std::string, std::string>* env_;
  std::set<std::string> seen_;
};

Status BindKafka(ConfigObject& o, KafkaConfig* c) {
  FRESHET_RETURN_IF_ERROR(o.String("brokers", &c->brokers));
  FRESHET_RETURN_IF_ERROR(o.String("topic", &c->topic));
  FRESHET_RETURN_IF_ERROR(o.Int("partitions", &c->partitions, 1, 10000));
  FRESHET_RETURN_IF_ERROR(o.Int("replication_factor", &c->replication_factor, 1, 100));
  FRESHET_RETURN_IF_ERROR(o.String("dead_letter_topic", &c->dead_letter_topic));
  FRESHET_RETURN_IF_ERROR(o.StringMap("client_properties", &c->client_properties));
  return o.CheckNoUnknownKeys();
}

Status BindPostgres(ConfigObject& o, PostgresConfig* c) {
  FRESHET_RETURN_IF_ERROR(o.String("url", &c->url));
  return o.CheckNoUnknownKeys();
}

Status BindWriter(ConfigObject& o, WriterConfig* c) {
  FRESHET_RETURN_IF_ERROR(o.String("listen", &c->listen));
  FRESHET_RETURN_IF_ERROR(o.Int("linger_ms", &c->linger_ms, 0, 10000));
  FRESHET_RETURN_IF_ERROR(o.Int("max_batch", &c->max_batch, 1, 1000000));
  FRESHET_RETURN_IF_ERROR(o.Int("max_body_bytes", &c->max_body_bytes, 64, 1 << 30));
  FRESHET_RETURN_IF_ERROR(o.String("transactional_id_prefix", &c->transactional_id_prefix));
  FRESHET_RETURN_IF_ERROR(o.Int("io_threads", &c->io_threads, 1, 64));
  FRESHET_RETURN_IF_ERROR(o.String("domain", &c->domain));
  FRESHET_RETURN_IF_ERROR(o.String("token", &c->token));
  FRESHET_RETURN_IF_ERROR(o.String("group_id", &c->group_id));
  FRESHET_RETURN_IF_ERROR(o.String("owners_topic", &c->owners_topic));
  FRESHET_RETURN_IF_ERROR(o.String("instance_id", &c->instance_id));
  FRESHET_RETURN_IF_ERROR(o.String("advertise_url", &c->advertise_url));
  FRESHET_RETURN_IF_ERROR(o.Int("session_timeout_ms", &c->session_timeout_ms, 1000, 3600 * 1000));
  FRESHET_RETURN_IF_ERROR(o.Int("idempotency_keys", &c->idempotency_keys, 0, 100000000));
  FRESHET_RETURN_IF_ERROR(o.String("snapshot_topic", &c->snapshot_topic));
  FRESHET_RETURN_IF_ERROR(o.Int("snapshot_every_events", &c->snapshot_every_events, 0, 1000000000));
  return o.CheckNoUnknownKeys();
}

Status BindViews(ConfigObject& o, ViewsConfig* c) {
  FRESHET_RETURN_IF_ERROR(o.String("listen", &c->listen));
  FRESHET_RETURN_IF_ERROR(o.String("group_id", &c->group_id));
  FRESHET_RETURN_IF_ERROR(o.Int("flush_interval_ms", &c->flush_interval_ms, 1, 3600 * 1000));
  FRESHET_RETURN_IF_ERROR(o.Int("max_batch_rows", &c->max_batch_rows, 1, 10000000));
  FRESHET_RETURN_IF_ERROR(o.Int("session_timeout_ms", &c->session_timeout_ms, 1000, 3600 * 1000));
  FRESHET_RETURN_IF_ERROR(o.String("rocksdb_path", &c->rocksdb_path));
  FRESHET_RETURN_IF_ERROR(o.String("advertise_url", &c->advertise_url));
  FRESHET_RETURN_IF_ERROR(o.String("owners_topic", &c->owners_topic));
  nlohmann::json ignored;  // read in order by ParseConfig; here only marked as known
  FRESHET_RETURN_IF_ERROR(o.Raw("definitions", &ignored));
  auto feed = o.Object("feed");
  if (!feed.ok()) return feed.status();
  FRESHET_RETURN_IF_ERROR(feed->String("token", &c->feed.token));
  FRESHET_RETURN_IF_ERROR(feed->Int("max_clients", &c->feed.max_clients, 0, 1000000));
  FRESHET_RETURN_IF_ERROR(feed->Int("max_pending", &c->feed.max_pending, 1, 10000000));
  FRESHET_RETURN_IF_ERROR(feed->Int("history_changes", &c->feed.history_changes, 0, 100000000));
  FRESHET_RETURN_IF_ERROR(feed->Int("batch_window_ms", &c->feed.batch_window_ms, 0, 10000));
  FRESHET_RETURN_IF_ERROR(feed->Int("max_snapshot_rows", &c->feed.max_snapshot_rows, 1, 100000000));
  FRESHET_RETURN_IF_ERROR(feed->CheckNoUnknownKeys());
  auto sql = o.Object("sql");
  if (!sql.ok()) return sql.status();
  FRESHET_RETURN_IF_ERROR(sql->String("url", &c->sql.url));
  FRESHET_RETURN_IF_ERROR(sql->Int("statement_timeout_ms", &c->sql.statement_timeout_ms, 1, 3600 * 1000));
  FRESHET_RETURN_IF_ERROR(sql->Int("max_rows", &c->sql.max_rows, 1, 10000000));
  FRESHET_RETURN_IF_ERROR(sql->Int("max_clients", &c->sql.max_clients, 0, 10000));
  FRESHET_RETURN_IF_ERROR(sql->CheckNoUnknownKeys());
  return o.CheckNoUnknownKeys();
}

template <typename Section, typename Bind>
Status BindSection(ConfigObject& root, const char* key, Section* section, Bind bind) {
  auto o = root.Object(key);
  if (!o.ok()) return o.status();
  return bind(*o, section);
}

}  // namespace

std::string EnvNameFor(const std::string& path) {
  std::string name = "FRESHET_";
  for (char ch : path) name += ch == '.' ? '_' : static_cast<char>(std::toupper(ch));
  return name;
}

std::map<std::string, std::string> FreshetEnvironment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string entry(*e);
    auto eq = entry.find('=');
    if (eq != std::string::npos && entry.rfind("FRESHET_", 0) == 0)
      env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  return env;
}

Result<Config> ParseConfig(const std::string& text, const std::string& source_name,
                           const std::map<std::string, std::string>& env) {
  nlohmann::json doc;
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    doc = nlohmann::json::object();
  } else {
    try {
      doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/true, /*ignore_comments=*/true);
    } catch (const nlohmann::json::parse_error& e) {
      return Status::InvalidArgument(source_name + ": not valid JSON: " + e.what());
    }
  }
  if (!doc.is_object()) return Status::InvalidArgument(source_name + ": the top level must be a JSON object");

  Config config;
  ConfigObject root(&doc, "", &env);
  Status st = BindSection(root, "kafka", &config.kafka, BindKafka);
  if (st.ok()) st = BindSection(root, "postgres", &config.postgres, BindPostgres);
  if (st.ok()) st = BindSection(root, "writer", &config.writer, BindWriter);
  if (st.ok()) st = BindSection(root, "views", &config.views, BindViews);
  if (st.ok()) st = root.String("log_level", &config.log_level);
  if (st.ok()) st = root.CheckNoUnknownKeys();
  if (!st.ok()) return st.WithContext(source_name);

  // View definitions keep the order of their columns: read them again,
  // from an order-preserving parse.
  if (doc.contains("views") && doc["views"].contains("definitions")) {
    auto ordered =
        nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
    config.views.definitions = ordered["views"]["definitions"];
  }

  static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error", "off"};
  if (!kLevels.count(config.log_level))
    return Status::InvalidArgument(source_name +
                                   ": log_level: expected one of trace, debug, info, "
                                   "warn, error, off; got \"" +
                                   config.log_level + "\"");
  return config;
}

Result<Config> LoadConfig(const std::string& path) {
  std::string text;
  std::string source = path.empty() ? "config (defaults + environment)" : path;
  if (!path.empty()) {
    std::ifstream in(path);
    if (!in) return Status::InvalidArgument("--config " + path + ": cannot read the file");
    std::stringstream buffer;
    buffer << in.rdbuf();
    text = buffer.str();
  }
  return ParseConfig(text, source, FreshetEnvironment());
}

Status RequireField(const std::string& value, const std::string& path) {
  if (!value.empty()) return Status::Ok();
  return Status::InvalidArgument(path + ": required (set it in the config file or in " + EnvNameFor(path) +
                                 ")");
}

}  // namespace freshet
