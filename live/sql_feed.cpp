#include "live/sql_feed.h"

#include <spdlog/spdlog.h>

#include <list>
#include <optional>
#include <pqxx/pqxx>

#include "core/envelope.h"
#include "core/postgres.h"
#include "live/sql_query.h"
#include "sinks/postgres_sink.h"

namespace freshet {

namespace {

constexpr const char* kLiveRole = "freshet_live";

// `url` with its user replaced: libpq URLs (postgresql://user@host/db) or
// keyword strings (host=... user=...), where a later keyword wins.
std::string WithUser(const std::string& url, const std::string& user) {
  for (const char* scheme : {"postgresql://", "postgres://"}) {
    if (url.rfind(scheme, 0) != 0) continue;
    size_t start = std::string(scheme).size();
    size_t end = url.find_first_of("/?", start);
    std::string authority = url.substr(start, end == std::string::npos ? std::string::npos : end - start);
    size_t at = authority.rfind('@');
    std::string host = at == std::string::npos ? authority : authority.substr(at + 1);
    return scheme + user + "@" + host + (end == std::string::npos ? "" : url.substr(end));
  }
  return url + " user=" + user;
}

// A result value as JSON, by the column's type OID.
nlohmann::json ValueJson(const pqxx::field& f, pqxx::oid type) {
  if (f.is_null()) return nullptr;
  switch (type) {
    case 16:
      return std::string(f.c_str()) == "t";
    case 20:
    case 21:
    case 23:
      return f.as<int64_t>();
    case 700:
    case 701:
    case 1700:
      return f.as<double>();
    case 114:
    case 3802:
      return nlohmann::json::parse(f.c_str(), nullptr, false);
    default:
      return std::string(f.c_str());
  }
}

std::shared_ptr<const std::string> ErrorMessage(const std::string& error) {
  return std::make_shared<const std::string>(nlohmann::json{{"type", "error"}, {"error", error}}.dump());
}

}  // namespace

struct LiveQueries::Shared {
  Shared(const Config& c, std::set<std::string> v, MetricsRegistry& metrics)
      : config(c),
        views(std::move(v)),
        clients(metrics.AddGauge("freshet_sql_feed_clients", "Connected live SQL clients")),
        runs(metrics.AddCounter("freshet_sql_feed_runs_total", "Live SQL query runs")),
        diffs(metrics.AddCounter("freshet_sql_feed_diffs_total", "Diffs sent to live SQL clients")),
        errors(metrics.AddCounter("freshet_sql_feed_errors_total", "Live SQL queries ended by an error")) {}

  void Notify(const std::string& view);
  // Starts a session's thread, and first joins the threads of sessions
  // that ended (they have returned: the join does not wait).
  void StartSession(const std::shared_ptr<LiveQuerySession>& session);
  // Joins every session thread; Stop closed their sessions first.
  void JoinSessions();

  const Config config;
  const std::set<std::string> views;
  std::string reader_url;
  std::string disabled;  // why live SQL is off; empty when on
  std::mutex mu;
  std::vector<std::weak_ptr<LiveQuerySession>> sessions;
  struct SessionThread {
    std::shared_ptr<LiveQuerySession> session;
    std::thread thread;
  };
  std::list<SessionThread> session_threads;  // under mu
  std::atomic<int> connected{0};
  std::atomic<bool> stop{false};
  Gauge& clients;
  Counter& runs;
  Counter& diffs;
  Counter& errors;
};

// One client: its query, its connection, its thread (which Shared owns).
class LiveQuerySession {
 public:
  LiveQuerySession(std::shared_ptr<LiveQueries::Shared> shared, std::shared_ptr<WebSocket> socket)
      : shared_(std::move(shared)), socket_(std::move(socket)) {}

  // The session's thread: returns once the session is closed or stopped.
  void Run() {
    Serve();
    ended_ = true;
  }
  bool ended() const { return ended_.load(); }

  void OnMessage(std::string message) {
    auto request = ParseLiveQueryRequest(message);
    if (!request.ok()) {
      shared_->errors.Add();
      socket_->Send(ErrorMessage(request.status().message()));
      return;  // the current query, if any, goes on
    }
    std::lock_guard lock(mu_);
    next_ = std::move(request.value());
    cv_.notify_all();
  }

  void OnFlush(const std::string& view) {
    std::lock_guard lock(mu_);
    if (!reads_.empty() && !reads_.count(view)) return;
    dirty_ = true;
    cv_.notify_all();
  }

  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }

 private:
  void Serve() {
    std::unique_lock lock(mu_);
    while (!closed_ && !shared_->stop.load()) {
      if (next_) {
        current_ = std::move(next_);
        next_.reset();
        reads_ = ReferencedViews(current_->sql, shared_->views);
        dirty_ = false;
        last_.clear();
        lock.unlock();
        RunQuery(/*first=*/true);
        lock.lock();
        continue;
      }
      if (current_ && dirty_) {
        auto due = last_run_ + std::chrono::milliseconds(current_->min_interval_ms);
        if (std::chrono::steady_clock::now() >= due) {
          dirty_ = false;
          lock.unlock();
          RunQuery(/*first=*/false);
          lock.lock();
          continue;
        }
        cv_.wait_until(lock, due);
        continue;
      }
      cv_.wait_for(lock, std::chrono::seconds(1));
    }
  }

  // Runs the current query; sends the result or the diff; on an error sends
  // it and drops the query.
  void RunQuery(bool first) {
    last_run_ = std::chrono::steady_clock::now();
    LiveQueryRequest request;
    std::set<std::string> reads;
    {
      std::lock_guard lock(mu_);
      if (!current_) return;
      request = *current_;
      reads = reads_.empty() ? shared_->views : reads_;
    }
    if (!shared_->disabled.empty()) return Fail("live SQL is not available: " + shared_->disabled);
    shared_->runs.Add();
    try {
      if (!conn_ || !conn_->is_open()) conn_ = std::make_unique<pqxx::connection>(shared_->reader_url);
      pqxx::transaction<pqxx::isolation_level::repeatable_read, pqxx::readwrite_policy::read_only> tx(*conn_);
      tx.exec("SET LOCAL statement_timeout = " +
              std::to_string(shared_->config.views.sql.statement_timeout_ms));
      const int max_rows = shared_->config.views.sql.max_rows;
      // Wrapping the statement keeps it a single SELECT: Postgres refuses a
      // data-modifying statement inside a subquery.
      pqxx::result result = tx.exec("SELECT * FROM (" + request.sql + "\n) AS freshet_live_query LIMIT " +
                                    std::to_string(max_rows + 1));
      std::string names;
      for (const auto& v : reads) names += (names.empty() ? "" : ",") + v;
      pqxx::result offsets = tx.exec_params(
          "SELECT view_name, part, next_offset FROM freshet.view_offsets(string_to_array($1, ','))", names);
      tx.commit();
      if (static_cast<int>(result.size()) > max_rows)
        return Fail("the query returned more than " + std::to_string(max_rows) +
                    " rows (views.sql.max_rows); narrow it down");

      nlohmann::json columns = nlohmann::json::array();
      for (pqxx::row_size_type c = 0; c < result.columns(); ++c) columns.push_back(result.column_name(c));
      for (const auto& k : request.key) {
        bool found = false;
        for (const auto& c : columns) found |= c == k;
        if (!found)
          return Fail("key: the result has no column \"" + k + "\" (columns: " + columns.dump() + ")");
      }
      KeyedRows rows;
      nlohmann::json ordered = nlohmann::json::array();
      for (const auto& r : result) {
        nlohmann::json row = nlohmann::json::object();
        for (pqxx::row_size_type c = 0; c < result.columns(); ++c)
          row[columns[c].get<std::string>()] = ValueJson(r[c], result.column_type(c));
        nlohmann::json key = nlohmann::json::array();
        for (const auto& k : request.key) key.push_back(row[k]);
        rows[key.dump()] = row;
        ordered.push_back(std::move(row));
      }
      nlohmann::json views = nlohmann::json::object();
      for (const auto& v : reads) views[v] = nlohmann::json::object();
      for (const auto& r : offsets) views[r[0].c_str()][r[1].c_str()] = r[2].as<int64_t>();

      if (first) {
        socket_->Send(nlohmann::json{
            {"type", "result"},
            {"columns", columns},
            {"rows", ordered},
            {"views", views},
            {"ts_ms",
             NowMillis()}}.dump());
      } else {
        ResultDiff diff = DiffResults(last_, rows, request.key);
        if (!diff.empty()) {
          shared_->diffs.Add();
          socket_->Send(nlohmann::json{
              {"type", "diff"},
              {"added", diff.added},
              {"changed", diff.changed},
              {"removed", diff.removed},
              {"views", views},
              {"ts_ms",
               NowMillis()}}.dump());
        }
      }
      last_ = std::move(rows);
    } catch (const pqxx::sql_error& e) {
      if (e.sqlstate() == "57014")
        return Fail("query cancelled: it ran longer than " +
                    std::to_string(shared_->config.views.sql.statement_timeout_ms) +
                    " ms (views.sql.statement_timeout_ms)");
      std::string what = e.what();
      return Fail("query failed: " + what.substr(0, what.find('\n')));
    } catch (const pqxx::broken_connection& e) {
      conn_.reset();
      return Fail(std::string("lost the Postgres connection: ") + e.what());
    } catch (const std::exception& e) {
      conn_.reset();
      return Fail(std::string("query failed: ") + e.what());
    }
  }

  void Fail(const std::string& error) {
    shared_->errors.Add();
    socket_->Send(ErrorMessage(error));
    std::lock_guard lock(mu_);
    if (!next_) current_.reset();  // a newer query replaces it anyway
    last_.clear();
  }

  std::shared_ptr<LiveQueries::Shared> shared_;
  std::shared_ptr<WebSocket> socket_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<LiveQueryRequest> next_;     // sent by the client, not yet running
  std::optional<LiveQueryRequest> current_;  // re-run on flushes
  std::set<std::string> reads_;              // views current_ names; empty: any
  bool dirty_ = false;
  bool closed_ = false;
  std::atomic<bool> ended_{false};
  // Only the session's thread touches these.
  std::unique_ptr<pqxx::connection> conn_;
  KeyedRows last_;
  std::chrono::steady_clock::time_point last_run_{};
};

void LiveQueries::Shared::Notify(const std::string& view) {
  std::lock_guard lock(mu);
  for (auto it = sessions.begin(); it != sessions.end();) {
    if (auto s = it->lock()) {
      s->OnFlush(view);
      ++it;
    } else {
      it = sessions.erase(it);
    }
  }
}

void LiveQueries::Shared::StartSession(const std::shared_ptr<LiveQuerySession>& session) {
  std::lock_guard lock(mu);
  if (stop.load()) return;  // Stop closed every session: its socket is closing
  for (auto it = session_threads.begin(); it != session_threads.end();) {
    if (!it->session->ended()) {
      ++it;
      continue;
    }
    it->thread.join();
    it = session_threads.erase(it);
  }
  session_threads.push_back({session, std::thread([session] { session->Run(); })});
}

void LiveQueries::Shared::JoinSessions() {
  std::list<SessionThread> joining;
  {
    std::lock_guard lock(mu);
    joining.swap(session_threads);
  }
  // Each ends after its current statement, bounded by the statement timeout.
  for (auto& s : joining) s.thread.join();
}

LiveQueries::LiveQueries(const Config& config, std::set<std::string> view_names, MetricsRegistry& metrics)
    : shared_(std::make_shared<Shared>(config, std::move(view_names), metrics)) {}

LiveQueries::~LiveQueries() { Stop(); }

void LiveQueries::Start() {
  const auto& sql = shared_->config.views.sql;
  shared_->reader_url = sql.url;
  if (sql.url.empty()) {
    shared_->reader_url = WithUser(shared_->config.postgres.url, kLiveRole);
    try {
      auto admin = ConnectPostgres(shared_->config.postgres.url);
      if (!admin.ok()) throw std::runtime_error(admin.status().message());
      Status migrated = ApplyMigrations(**admin);
      if (!migrated.ok()) throw std::runtime_error(migrated.message());
      pqxx::nontransaction tx(**admin);
      tx.exec(std::string("DO $$ BEGIN CREATE ROLE ") + kLiveRole +
              " LOGIN IN ROLE freshet_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
    } catch (const std::exception& e) {
      shared_->disabled = std::string("could not create the login role ") + kLiveRole + " (" + e.what() +
                          "); set views.sql.url to a role that holds freshet_reader";
      spdlog::warn("live SQL: {}", shared_->disabled);
    }
  }
  listener_ = std::thread([this] { Listen(); });
}

void LiveQueries::Listen() {
  class Receiver final : public pqxx::notification_receiver {
   public:
    Receiver(pqxx::connection_base& c, Shared& shared)
        : pqxx::notification_receiver(c, "freshet_flush"), shared_(shared) {}
    void operator()(const std::string& payload, int) override {
      auto j = nlohmann::json::parse(payload, nullptr, false);
      if (j.is_object() && j.contains("view") && j["view"].is_string())
        shared_.Notify(j["view"].get<std::string>());
    }

   private:
    Shared& shared_;
  };
  while (!shared_->stop.load()) {
    try {
      pqxx::connection conn(shared_->config.postgres.url);
      Receiver receiver(conn, *shared_);
      while (!shared_->stop.load()) conn.await_notification(0, 200 * 1000);
    } catch (const std::exception& e) {
      spdlog::warn("live SQL: listening for flushes: {}; retrying", e.what());
      for (int i = 0; i < 10 && !shared_->stop.load(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

void LiveQueries::Stop() {
  if (shared_->stop.exchange(true)) return;
  {
    std::lock_guard lock(shared_->mu);
    for (auto& weak : shared_->sessions)
      if (auto s = weak.lock()) s->Close();
  }
  if (listener_.joinable()) listener_.join();
  shared_->JoinSessions();
}

WebSocketAccept LiveQueries::Attach(std::shared_ptr<WebSocket> socket) {
  const int max_clients = shared_->config.views.sql.max_clients;
  if (shared_->connected.load() >= max_clients) {
    HttpResponse busy = ErrorResponse(
        503, "too many live SQL clients (views.sql.max_clients = " + std::to_string(max_clients) + ")");
    busy.headers.push_back({"Retry-After", "5"});
    return WebSocketAccept::Refuse(busy);
  }
  auto session = std::make_shared<LiveQuerySession>(shared_, socket);
  shared_->clients.Set(++shared_->connected);
  {
    std::lock_guard lock(shared_->mu);
    shared_->sessions.push_back(session);
  }
  WebSocketAccept accept;
  accept.callbacks.on_open = [session, shared = shared_] { shared->StartSession(session); };
  accept.callbacks.on_message = [session](std::string message) { session->OnMessage(std::move(message)); };
  accept.callbacks.on_close = [session, shared = shared_] {
    session->Close();
    shared->clients.Set(--shared->connected);
  };
  return accept;
}

}  // namespace freshet
