#include "writer/writer.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>

namespace freshet {
namespace {

constexpr size_t kMaxCommandsPerRequest = 10000;

nlohmann::json AckJson(const CommandAck& ack) { return {{"partition", ack.partition}, {"offset", ack.offset}}; }

// Collects the answers of a batch of commands and replies once all are in.
struct BatchReply {
  std::mutex mu;
  nlohmann::json results;
  size_t remaining;
  HttpReply reply;
};

}  // namespace

Result<std::unique_ptr<Writer>> Writer::Start(const Config& config, std::unique_ptr<Domain> domain) {
  FRESHET_RETURN_IF_ERROR(RequireField(config.kafka.brokers, "kafka.brokers"));
  KafkaClientOptions kafka{config.kafka.brokers, config.kafka.client_properties};
  Status st = EnsureTopic(kafka, config.kafka.topic, config.kafka.partitions, config.kafka.replication_factor,
                          std::chrono::seconds(15));
  if (!st.ok()) return st.WithContext("kafka.brokers " + config.kafka.brokers);
  auto count = PartitionCount(kafka, config.kafka.topic, std::chrono::seconds(15));
  if (!count.ok()) return count.status();

  std::unique_ptr<Writer> writer(new Writer());
  writer->config_ = config;
  writer->domain_ = std::move(domain);
  WriterMetrics m;
  auto& reg = writer->metrics_;
  m.accepted = &reg.AddCounter("freshet_writer_commands_total", "Commands answered", "result=\"accepted\"");
  m.refused = &reg.AddCounter("freshet_writer_commands_total", "Commands answered", "result=\"refused\"");
  m.failed = &reg.AddCounter("freshet_writer_commands_total", "Commands answered", "result=\"failed\"");
  m.batch_size = &reg.AddHistogram("freshet_writer_batch_events", "Events per Kafka transaction",
                                   {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000});
  m.commit_seconds = &reg.AddHistogram("freshet_writer_commit_seconds",
                                       "Kafka transaction time, begin to commit", LatencyBuckets());
  for (int p = 0; p < *count; ++p) {
    PartitionOwnerOptions o;
    o.kafka = kafka;
    o.topic = config.kafka.topic;
    o.partition = p;
    o.transactional_id = config.writer.transactional_id_prefix + "-" + config.kafka.topic + "-" + std::to_string(p);
    o.linger = std::chrono::milliseconds(config.writer.linger_ms);
    o.max_batch = static_cast<size_t>(config.writer.max_batch);
    writer->owners_.push_back(std::make_unique<PartitionOwner>(o, *writer->domain_, m));
  }
  for (auto& owner : writer->owners_) owner->Start();
  spdlog::info("writer: topic {} with {} partitions, domain {}", config.kafka.topic, *count,
               writer->domain_->name());
  return writer;
}

Writer::~Writer() { Stop(); }

void Writer::Stop() {
  for (auto& owner : owners_) owner->Stop();
}

bool Writer::ready() const {
  for (const auto& owner : owners_)
    if (owner->phase() != PartitionOwner::Phase::kServing) return false;
  return !owners_.empty();
}

void Writer::Submit(Command command, CommandDone done) {
  int32_t p = PartitionForKey(command.partition_key, static_cast<int32_t>(owners_.size()));
  owners_[p]->Submit(std::move(command), std::move(done));
}

void Writer::Query(const std::string& partition_key, const std::string& entity, QueryDone done) {
  int32_t p = PartitionForKey(partition_key, static_cast<int32_t>(owners_.size()));
  owners_[p]->Query(partition_key, entity, std::move(done));
}

void Writer::HandleHttp(HttpRequest&& request, HttpReply reply) {
  const std::string& path = request.path;
  if (path == "/commands") {
    if (request.method != "POST") return reply(ErrorResponse(405, "use POST /commands"));
    return HandleCommands(std::move(request), std::move(reply));
  }
  if (path.rfind("/state/", 0) == 0) {
    if (request.method != "GET") return reply(ErrorResponse(405, "use GET /state/{partition-key}/{entity}"));
    return HandleState(request, std::move(reply));
  }
  if (path == "/healthz") return reply(JsonResponse(200, {{"status", "ok"}}));
  if (path == "/readyz") {
    nlohmann::json partitions = nlohmann::json::array();
    for (const auto& o : owners_)
      partitions.push_back({{"partition", o->partition()},
                            {"phase", PartitionOwner::PhaseName(o->phase())},
                            {"offset", o->last_offset()}});
    bool is_ready = ready();
    return reply(JsonResponse(is_ready ? 200 : 503, {{"ready", is_ready}, {"partitions", partitions}}));
  }
  if (path == "/metrics") {
    return reply(HttpResponse{200, "text/plain; version=0.0.4", metrics_.RenderPrometheus(), {}});
  }
  reply(ErrorResponse(404, "no such endpoint: " + path));
}

void Writer::HandleCommands(HttpRequest&& request, HttpReply reply) {
  nlohmann::json body = nlohmann::json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return reply(ErrorResponse(400, "body is not valid JSON"));
  bool single = !body.is_array();
  if (single) body = nlohmann::json::array({body});
  if (body.empty()) return reply(ErrorResponse(400, "empty batch"));
  if (body.size() > kMaxCommandsPerRequest)
    return reply(ErrorResponse(413, "at most " + std::to_string(kMaxCommandsPerRequest) + " commands per request"));

  // Validate everything before submitting anything: a bad batch publishes nothing.
  std::vector<Command> commands;
  commands.reserve(body.size());
  std::string header_key = request.Header("idempotency-key");
  for (size_t i = 0; i < body.size(); ++i) {
    auto command = domain_->ParseCommand(body[i]);
    if (!command.ok()) {
      std::string where = single ? "" : "commands[" + std::to_string(i) + "].";
      return reply(ErrorResponse(400, where + command.status().message()));
    }
    if (single && !header_key.empty()) command->id = header_key;
    commands.push_back(std::move(command.value()));
  }

  if (single) {
    Submit(std::move(commands[0]), [reply](Result<CommandAck> result) {
      if (result.ok()) return reply(JsonResponse(200, AckJson(*result)));
      const Status& st = result.status();
      nlohmann::json err = {{"error", st.message()}};
      if (st.code() == StatusCode::kRefused) err["refused"] = true;
      reply(JsonResponse(HttpStatusFor(st), err));
    });
    return;
  }
  auto batch = std::make_shared<BatchReply>();
  batch->results = nlohmann::json::array();
  for (size_t i = 0; i < commands.size(); ++i) batch->results.push_back(nullptr);
  batch->remaining = commands.size();
  batch->reply = std::move(reply);
  for (size_t i = 0; i < commands.size(); ++i) {
    Submit(std::move(commands[i]), [batch, i](Result<CommandAck> result) {
      nlohmann::json item;
      if (result.ok()) {
        item = AckJson(*result);
        item["status"] = 200;
      } else {
        item = {{"status", HttpStatusFor(result.status())}, {"error", result.status().message()}};
        if (result.status().code() == StatusCode::kRefused) item["refused"] = true;
      }
      std::lock_guard lock(batch->mu);
      batch->results[i] = std::move(item);
      if (--batch->remaining == 0) batch->reply(JsonResponse(200, {{"results", batch->results}}));
    });
  }
}

void Writer::HandleState(const HttpRequest& request, HttpReply reply) {
  std::string rest = request.path.substr(std::string("/state/").size());
  auto slash = rest.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 >= rest.size())
    return reply(ErrorResponse(400, "expected /state/{partition-key}/{entity}"));
  std::string key = rest.substr(0, slash);
  std::string entity = rest.substr(slash + 1);
  int64_t min_offset = -1;
  if (auto it = request.query.find("min_offset"); it != request.query.end()) {
    char* end = nullptr;
    min_offset = std::strtoll(it->second.c_str(), &end, 10);
    if (it->second.empty() || *end != '\0' || min_offset < 0)
      return reply(ErrorResponse(400, "min_offset: expected a non-negative integer"));
  }
  Query(key, entity, [reply, min_offset](Result<EntityReading> reading) {
    if (!reading.ok()) return reply(ErrorResponse(HttpStatusFor(reading.status()), reading.status().message()));
    // The owner's state is the newest there is: an offset it has not reached
    // was never produced by this partition.
    if (min_offset >= 0 && reading->offset < min_offset)
      return reply(ErrorResponse(409, "min_offset " + std::to_string(min_offset) + " is beyond partition " +
                                          std::to_string(reading->partition) + "'s last offset " +
                                          std::to_string(reading->offset)));
    nlohmann::json out = {{"partition", reading->partition}, {"offset", reading->offset}, {"entity", reading->entity}};
    reply(JsonResponse(reading->entity.is_null() ? 404 : 200, out));
  });
}

}  // namespace freshet
