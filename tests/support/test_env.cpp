#include "tests/support/test_env.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "core/envelope.h"

extern char** environ;

namespace freshet::testing {
namespace {

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

std::string ReplaceDatabase(const std::string& url, const std::string& db) {
  auto slash = url.rfind('/');
  auto query = url.find('?', slash);
  return url.substr(0, slash + 1) + db + (query == std::string::npos ? "" : url.substr(query));
}

}  // namespace

const char* TestLogDir() { return FRESHET_TEST_LOG_DIR; }

std::string KafkaBrokers() { return EnvOr("FRESHET_KAFKA_BROKERS", "127.0.0.1:19092"); }
KafkaClientOptions KafkaOptions() { return {KafkaBrokers(), {}}; }
std::string PostgresUrl() {
  return EnvOr("FRESHET_TEST_PG_URL",
               EnvOr("FRESHET_PG_URL", "postgresql://freshet@127.0.0.1:15432/freshet"));
}

std::string UniqueName(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return prefix + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + "-" +
         std::to_string(std::chrono::system_clock::now().time_since_epoch().count() % 1000000000);
}

std::string CreateTestDatabase(const std::string& prefix) {
  std::string name = UniqueName(prefix);
  for (auto& c : name)
    if (c == '-') c = '_';
  pqxx::connection admin(PostgresUrl());
  pqxx::nontransaction tx(admin);
  tx.exec("CREATE DATABASE " + tx.quote_name(name));
  return ReplaceDatabase(PostgresUrl(), name);
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) throw std::runtime_error("bind");
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
               std::chrono::milliseconds poll_every) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(poll_every);
  }
}

FreshetProcess::FreshetProcess(std::vector<std::string> args, std::map<std::string, std::string> env,
                               const std::string& log_name) {
  log_path_ = std::string(FRESHET_TEST_LOG_DIR) + "/" + UniqueName(log_name) + ".log";
  pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    // Dies with the test: a test killed by ctest's timeout (or SIGKILL) must
    // not leave writers and view processes running against stopped brokers.
    // The signal comes when the forking *thread* ends: create processes on
    // the test's own thread.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the test died before prctl
    int fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    // Hermetic: only the FRESHET_* settings the test gives, none inherited
    // from the shell that runs the suite.
    std::vector<std::string> inherited;
    for (char** e = environ; e && *e; ++e)
      if (std::strncmp(*e, "FRESHET_", 8) == 0) inherited.emplace_back(*e, std::strchr(*e, '=') - *e);
    for (const auto& name : inherited) unsetenv(name.c_str());
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> argv;
    std::string binary = FRESHET_BINARY;
    argv.push_back(binary.data());
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
}

FreshetProcess::~FreshetProcess() {
  if (running()) {
    kill(pid_, SIGKILL);
    Wait(std::chrono::seconds(10));
  }
}

void FreshetProcess::Signal(int sig) { kill(pid_, sig); }

bool FreshetProcess::running() {
  if (exit_code_ != -1) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return false;
}

int FreshetProcess::Wait(std::chrono::milliseconds timeout) {
  WaitUntil([this] { return !running(); }, timeout, std::chrono::milliseconds(10));
  return exit_code_;
}

std::string FreshetProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

RunResult RunFreshet(std::vector<std::string> args, std::map<std::string, std::string> env,
                     std::chrono::milliseconds timeout) {
  FreshetProcess p(std::move(args), std::move(env), "run");
  RunResult r;
  r.exit_code = p.Wait(timeout);
  r.output = p.Log();
  return r;
}

int ProduceWithKcat(const std::string& topic, const std::vector<std::string>& lines) {
  std::string command = "kcat -P -q -b " + KafkaBrokers() + " -t " + topic + " -K '\t' -Z -H source=crm";
  FILE* pipe = popen(command.c_str(), "w");
  if (!pipe) return -1;
  for (const auto& line : lines) std::fprintf(pipe, "%s\n", line.c_str());
  int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::vector<DeadLetter> ReadDeadLetters(const std::string& topic, size_t count,
                                        std::chrono::milliseconds timeout) {
  std::vector<DeadLetter> out;
  auto consumer = Consumer::Create(KafkaOptions(), "");
  if (!consumer.ok() || !(*consumer)->Assign({{topic, 0, kOffsetBeginning}}).ok()) return out;
  auto header = [](const KafkaMessage& m, const char* name) {
    auto h = m.header(name);
    return h ? std::string(*h) : std::string();
  };
  WaitUntil(
      [&] {
        KafkaMessage m;
        auto outcome = (*consumer)->Poll(std::chrono::milliseconds(100), &m);
        if (outcome.ok() && *outcome == Consumer::PollOutcome::kMessage) {
          DeadLetter d;
          d.view = header(m, "freshet.view");
          d.error = header(m, "freshet.error");
          d.source_topic = header(m, "freshet.source.topic");
          d.source_partition = std::atoi(header(m, "freshet.source.partition").c_str());
          d.source_offset = std::atoll(header(m, "freshet.source.offset").c_str());
          d.null_key = !m.has_key();
          out.push_back(std::move(d));
        }
        return out.size() >= count;
      },
      timeout, std::chrono::milliseconds(1));
  return out;
}

nlohmann::ordered_json InspectTopic(const std::string& topic, const std::string& view_name,
                                    std::string* output) {
  RunResult r =
      RunFreshet({"inspect", topic, "--name", view_name}, {{"FRESHET_KAFKA_BROKERS", KafkaBrokers()}});
  *output = r.output;
  const std::string marker = "review the guesses before using it):\n";
  auto at = r.output.find(marker);
  if (r.exit_code != 0 || at == std::string::npos) return nullptr;
  // stdout (the definition) and stderr share the log: the definition is
  // the JSON object that follows the marker line.
  std::string rest = r.output.substr(at + marker.size());
  auto end = rest.find("\n}\n");
  if (end == std::string::npos) return nullptr;
  return nlohmann::ordered_json::parse(rest.substr(0, end + 2), nullptr, false);
}

std::vector<ReadRecord> ReadAll(const std::string& topic, int partitions, std::chrono::milliseconds timeout) {
  auto consumer = Consumer::Create(KafkaOptions(), "");
  if (!consumer.ok()) throw std::runtime_error(consumer.status().ToString());
  std::vector<TopicPartitionOffset> assign;
  for (int p = 0; p < partitions; ++p) assign.push_back({topic, p, kOffsetBeginning});
  if (Status st = (*consumer)->Assign(assign); !st.ok()) throw std::runtime_error(st.ToString());
  std::vector<ReadRecord> out;
  std::set<int32_t> ended;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (static_cast<int>(ended.size()) < partitions) {
    if (std::chrono::steady_clock::now() > deadline)
      throw std::runtime_error("ReadAll: timed out on " + topic);
    KafkaMessage m;
    int32_t eof = -1;
    auto outcome = (*consumer)->Poll(std::chrono::milliseconds(100), &m, &eof);
    if (!outcome.ok()) continue;
    if (*outcome == Consumer::PollOutcome::kPartitionEnd) ended.insert(eof);
    if (*outcome == Consumer::PollOutcome::kMessage)
      out.push_back({m.partition(), m.offset(), std::string(m.key()), std::string(m.value())});
  }
  return out;
}

int64_t DeltaStream::final_progress() const {
  int64_t total = 0;
  for (const auto& [p, last] : last_offset) total += last + 1;
  return total;
}

DeltaStream ProduceDeltaStream(const std::string& topic, int partitions, int events, int per_transaction,
                               unsigned seed) {
  auto producer = TransactionalProducer::Create(KafkaOptions(), UniqueName("delta-producer"));
  if (!producer.ok()) throw std::runtime_error(producer.status().ToString());
  if (Status st = (*producer)->InitTransactions(std::chrono::seconds(30)); !st.ok())
    throw std::runtime_error(st.ToString());
  DeltaStream out;
  std::mt19937 rng(seed);
  for (int txn = 0; txn * per_transaction < events; ++txn) {
    bool abort = txn % 7 == 3;
    std::vector<DeliveryReport> reports(per_transaction);
    std::vector<std::pair<std::string, std::string>> keys;
    std::vector<int64_t> deltas;
    if (Status st = (*producer)->Begin(); !st.ok()) throw std::runtime_error(st.ToString());
    for (int i = 0; i < per_transaction; ++i) {
      std::string store = "store-" + std::to_string(rng() % 8);
      std::string sku = "sku-" + std::to_string(rng() % 60);
      int64_t delta = static_cast<int64_t>(rng() % 16) - 5;
      Event e{"StockAdjusted", "", NowMillis(), {{"store", store}, {"sku", sku}, {"delta", delta}}};
      OutgoingMessage m{topic, PartitionForKey(store, partitions), store, EncodeEventValue(e), {}};
      if (Status st = (*producer)->Produce(m, &reports[i]); !st.ok()) throw std::runtime_error(st.ToString());
      keys.emplace_back(store, sku);
      deltas.push_back(delta);
    }
    Status end =
        abort ? (*producer)->Abort(std::chrono::seconds(30)) : (*producer)->Commit(std::chrono::seconds(30));
    if (!end.ok()) throw std::runtime_error(end.ToString());
    if (abort) continue;
    for (int i = 0; i < per_transaction; ++i) {
      out.reference[keys[i]] += deltas[i];
      out.last_offset[reports[i].partition] =
          std::max(out.last_offset[reports[i].partition], reports[i].offset);
    }
  }
  return out;
}

int64_t StoredProgress(const std::string& db_url) {
  try {
    pqxx::connection conn(db_url);
    pqxx::nontransaction tx(conn);
    if (!tx.exec("SELECT to_regclass('freshet.offsets') IS NOT NULL")[0][0].as<bool>()) return 0;
    return tx.exec("SELECT COALESCE(sum(next_offset), 0) FROM freshet.offsets")[0][0].as<int64_t>();
  } catch (const std::exception&) {
    return 0;  // Postgres may be restarting
  }
}

std::map<std::pair<std::string, std::string>, int64_t> StockLevels(const std::string& db_url,
                                                                   const std::string& table) {
  pqxx::connection conn(db_url);
  pqxx::nontransaction tx(conn);
  std::map<std::pair<std::string, std::string>, int64_t> rows;
  for (const auto& row : tx.exec("SELECT store, sku, on_hand FROM " + table))
    rows[{row[0].as<std::string>(), row[1].as<std::string>()}] = row[2].as<int64_t>();
  return rows;
}

bool RunServicesScript(const std::string& args) {
  std::string command = std::string(FRESHET_SOURCE_DIR) + "/scripts/services " + args + " > " +
                        std::string(FRESHET_TEST_LOG_DIR) + "/services-" + UniqueName("run") + ".log 2>&1";
  return std::system(command.c_str()) == 0;
}

int RunProjectScript(const std::string& script_and_args, std::string* output) {
  std::string command = std::string(FRESHET_SOURCE_DIR) + "/scripts/" + script_and_args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return -1;
  output->clear();
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), pipe)) > 0;) output->append(buf, n);
  int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace freshet::testing
