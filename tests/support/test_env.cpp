#include "tests/support/test_env.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

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

std::string KafkaBrokers() { return EnvOr("FRESHET_KAFKA_BROKERS", "127.0.0.1:19092"); }
KafkaClientOptions KafkaOptions() { return {KafkaBrokers(), {}}; }
std::string PostgresUrl() {
  return EnvOr("FRESHET_TEST_PG_URL", EnvOr("FRESHET_PG_URL", "postgresql://freshet@127.0.0.1:15432/freshet"));
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
  pid_ = fork();
  if (pid_ == 0) {
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
    if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("ReadAll: timed out on " + topic);
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

}  // namespace freshet::testing
