#include "writer/writer.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>

#include "core/thread_name.h"
#include "writer/accounts.h"
#include "writer/inventory.h"
#include "writer/partition_snapshot.h"

namespace freshet {
namespace {

constexpr size_t kMaxCommandsPerRequest = 10000;

nlohmann::json ErrorJson(const Status& st) {
  nlohmann::json err = {{"error", st.message()}};
  if (st.code() == StatusCode::kRefused) err["refused"] = true;
  return err;
}

// An accepted command's answer as JSON text, written directly: it is the
// common answer (keys in nlohmann's order, as every other answer has them).
// Inside a batch's "results" it also carries its status.
std::string AckJson(const CommandAck& ack, bool in_batch) {
  std::string out = ack.duplicate ? "{\"duplicate\":true," : "{";
  out += "\"offset\":" + std::to_string(ack.offset) + ",\"partition\":" + std::to_string(ack.partition);
  out += in_batch ? ",\"status\":200}" : "}";
  return out;
}

// One command's answer inside a batch's "results".
std::string BatchItemJson(const Result<CommandAck>& result) {
  if (result.ok()) return AckJson(result.value(), /*in_batch=*/true);
  nlohmann::json item = ErrorJson(result.status());
  item["status"] = HttpStatusFor(result.status());
  return item.dump();
}

// Collects the answers of a batch of commands and replies once all are in.
// Each answer is written once, to its own item, by whichever slot thread
// decided it; the last one in renders the reply. No lock: the slots of a
// batch finish at different times and should not wait for each other.
struct BatchReply {
  explicit BatchReply(size_t n, HttpReply r) : items(n), remaining(n), reply(std::move(r)) {}
  std::vector<std::string> items;
  std::atomic<size_t> remaining;
  HttpReply reply;

  void Set(size_t i, std::string item) {
    items[i] = std::move(item);
    if (remaining.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    std::string body = "{\"results\":[";
    for (size_t k = 0; k < items.size(); ++k) {
      if (k) body += ',';
      body += items[k];
    }
    body += "]}\n";
    reply(HttpResponse{200, "application/json", std::move(body), {}});
  }
};

std::string DefaultInstanceId() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return std::string(host) + "-" + std::to_string(getpid());
}

// Test-only fault injection (see WriterFault).
Result<WriterFault> FaultFromEnvironment() {
  const char* value = std::getenv("FRESHET_WRITER_FAULT");
  std::string fault = value ? value : "";
  if (fault.empty()) return WriterFault::kNone;
  if (fault == "crash-in-snapshot") return WriterFault::kCrashInSnapshot;
  if (fault == "stop-before-snapshot") return WriterFault::kStopBeforeSnapshot;
  return Status::InvalidArgument(
      "FRESHET_WRITER_FAULT: expected crash-in-snapshot or stop-before-snapshot, got \"" + fault + "\"");
}

}  // namespace

DomainRegistry StockDomains() {
  DomainRegistry domains;
  domains.AddDecider<InventoryDomain>("inventory");
  domains.AddDecider<AccountsDomain>("accounts");
  return domains;
}

Result<std::unique_ptr<Writer>> Writer::Start(const Config& config, std::unique_ptr<Domain> domain) {
  FRESHET_RETURN_IF_ERROR(RequireField(config.kafka.brokers, "kafka.brokers"));
  KafkaClientOptions kafka{config.kafka.brokers, config.kafka.client_properties};
  // The event topic is the writer's only copy of history: created to keep
  // every record, and checked, since someone else may have created it.
  Status st = EnsureTopic(kafka, config.kafka.topic, config.kafka.partitions, config.kafka.replication_factor,
                          std::chrono::seconds(15), KeepForeverTopicConfig());
  if (!st.ok()) return st.WithContext("kafka.brokers " + config.kafka.brokers);
  auto topic_config = DescribeTopicConfig(kafka, config.kafka.topic, std::chrono::seconds(15));
  if (!topic_config.ok()) return topic_config.status().WithContext("kafka.topic " + config.kafka.topic);
  std::string retention_problem = RetentionProblem(*topic_config);
  if (!retention_problem.empty())
    spdlog::error(
        "kafka.topic {}: the broker may delete events the writer rebuilds its state from: {}. Set "
        "retention.ms=-1 and retention.bytes=-1 (cleanup.policy=delete) on the topic, e.g. kafka-configs.sh "
        "--alter --entity-type topics --entity-name {} --add-config retention.ms=-1,retention.bytes=-1",
        config.kafka.topic, retention_problem, config.kafka.topic);
  auto count = PartitionCount(kafka, config.kafka.topic, std::chrono::seconds(15));
  if (!count.ok()) return count.status();
  std::string snapshot_topic;
  if (config.writer.snapshot_every_events > 0) {
    snapshot_topic = config.writer.snapshot_topic.empty() ? DefaultSnapshotTopic(config.kafka.topic)
                                                          : config.writer.snapshot_topic;
    // Partition p's snapshots go to partition p. Only the newest snapshot
    // matters; older segments go after a week (without any snapshot a
    // writer replays the whole log, which is kept whole).
    st =
        EnsureTopic(kafka, snapshot_topic, *count, config.kafka.replication_factor, std::chrono::seconds(15),
                    {{"cleanup.policy", "delete"}, {"retention.ms", "604800000"}, {"segment.ms", "3600000"}});
    if (!st.ok()) return st.WithContext("writer.snapshot_topic " + snapshot_topic);
    auto snapshot_partitions = PartitionCount(kafka, snapshot_topic, std::chrono::seconds(15));
    if (!snapshot_partitions.ok()) return snapshot_partitions.status().WithContext("writer.snapshot_topic");
    if (*snapshot_partitions < *count)
      return Status::InvalidArgument(
          "writer.snapshot_topic " + snapshot_topic + " has " + std::to_string(*snapshot_partitions) +
          " partitions; it needs as many as " + config.kafka.topic + " (" + std::to_string(*count) + ")");
  }
  st = EnsureTopic(kafka, config.writer.owners_topic, 1, config.kafka.replication_factor,
                   std::chrono::seconds(15), {{"cleanup.policy", "compact"}});
  if (!st.ok()) return st.WithContext("writer.owners_topic " + config.writer.owners_topic);

  std::unique_ptr<Writer> w(new Writer());
  w->config_ = config;
  w->domain_ = std::move(domain);
  w->instance_id_ = config.writer.instance_id.empty() ? DefaultInstanceId() : config.writer.instance_id;
  w->retention_problem_ = retention_problem;
  w->advertise_url_ =
      config.writer.advertise_url.empty() ? "http://" + config.writer.listen : config.writer.advertise_url;

  WriterMetrics m;
  auto& reg = w->metrics_;
  m.accepted = &reg.AddCounter("freshet_writer_commands_total", "Commands answered", "result=\"accepted\"");
  m.refused = &reg.AddCounter("freshet_writer_commands_total", "Commands answered", "result=\"refused\"");
  m.failed = &reg.AddCounter("freshet_writer_commands_total", "Commands answered", "result=\"failed\"");
  m.duplicates =
      &reg.AddCounter("freshet_writer_commands_total", "Commands answered", "result=\"duplicate\"");
  m.fenced =
      &reg.AddCounter("freshet_writer_fenced_total", "Times an owned partition was fenced by a newer owner");
  m.log_incomplete =
      &reg.AddCounter("freshet_writer_log_incomplete_total",
                      "Partitions refused because their log no longer starts where recovery needs it");
  reg.AddGauge(
         "freshet_writer_topic_retention_finite",
         "1 when the event topic's configuration lets the broker delete events (retention or compaction)")
      .Set(retention_problem.empty() ? 0 : 1);
  m.batch_size = &reg.AddHistogram("freshet_writer_batch_events", "Events per Kafka transaction",
                                   {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000});
  m.commit_seconds = &reg.AddHistogram("freshet_writer_commit_seconds",
                                       "Kafka transaction time, begin to commit", LatencyBuckets());
  m.takeover_seconds = &reg.AddHistogram(
      "freshet_writer_takeover_seconds",
      "From being assigned a partition to serving it (fence + catch-up + claim)", LatencyBuckets());
  m.snapshots =
      &reg.AddCounter("freshet_writer_snapshots_total", "Partition snapshots", "result=\"committed\"");
  m.snapshot_failures =
      &reg.AddCounter("freshet_writer_snapshots_total", "Partition snapshots", "result=\"failed\"");
  m.snapshot_seconds =
      &reg.AddHistogram("freshet_writer_snapshot_seconds",
                        "Writing one partition snapshot, serializing to commit", LatencyBuckets());
  m.recovery_seconds =
      &reg.AddHistogram("freshet_writer_recovery_seconds",
                        "From a partition slot's start to its state reaching the end of the log "
                        "(snapshot load + replay)",
                        LatencyBuckets());
  // Fine buckets: most phases take microseconds, a transaction's milliseconds.
  std::vector<double> phase_buckets = {0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002,
                                       0.005,   0.01,    0.02,    0.05,   0.1,    0.5,    1};
  for (size_t i = 0; i < m.phase_seconds.size(); ++i) {
    std::string phase = WriterPhaseName(static_cast<WriterPhase>(i));
    m.phase_seconds[i] =
        &reg.AddHistogram("freshet_writer_phase_seconds",
                          "Where a command's time goes in the writer, by phase (see partition_slot.h)",
                          phase_buckets, "phase=\"" + phase + "\"");
  }
  w->writer_metrics_ = m;
  w->owned_gauge_ = &reg.AddGauge("freshet_writer_owned_partitions", "Partitions this instance serves");

  nlohmann::json claim = {{"url", w->advertise_url_}, {"instance", w->instance_id_}};
  auto fault = FaultFromEnvironment();
  if (!fault.ok()) return fault.status();
  for (int p = 0; p < *count; ++p) {
    PartitionSlotOptions o;
    o.kafka = kafka;
    o.topic = config.kafka.topic;
    o.partition = p;
    o.transactional_id =
        config.writer.transactional_id_prefix + "-" + config.kafka.topic + "-" + std::to_string(p);
    o.linger = std::chrono::milliseconds(config.writer.linger_ms);
    o.max_batch = static_cast<size_t>(config.writer.max_batch);
    o.idempotency_keys = static_cast<size_t>(config.writer.idempotency_keys);
    o.owners_topic = config.writer.owners_topic;
    o.claim = claim.dump();
    o.snapshot_topic = snapshot_topic;
    o.snapshot_every_events = config.writer.snapshot_every_events;
    o.instance = w->instance_id_;
    o.fault = *fault;
    w->slots_.push_back(std::make_unique<PartitionSlot>(o, *w->domain_, m));
  }
  for (auto& slot : w->slots_) slot->Start();

  w->directory_ = std::make_unique<OwnerDirectory>(kafka, config.writer.owners_topic, config.kafka.topic);
  FRESHET_RETURN_IF_ERROR(w->directory_->Start());

  KafkaClientOptions group = kafka;
  group.properties["partition.assignment.strategy"] = "cooperative-sticky";
  group.properties["session.timeout.ms"] = std::to_string(config.writer.session_timeout_ms);
  group.properties["heartbeat.interval.ms"] =
      std::to_string(std::max(100, config.writer.session_timeout_ms / 5));
  group.properties["enable.partition.eof"] = "false";
  std::string group_id =
      config.writer.group_id.empty() ? "freshet-writers-" + config.kafka.topic : config.writer.group_id;
  auto membership = Consumer::Create(group, group_id);
  if (!membership.ok()) return membership.status();
  w->membership_ = std::move(membership.value());
  Writer* self = w.get();
  FRESHET_RETURN_IF_ERROR(w->membership_->Subscribe(
      {config.kafka.topic},
      [self](std::vector<TopicPartitionOffset>& assigned) {
        for (const auto& tp : assigned) {
          spdlog::info("writer {}: assigned partition {}", self->instance_id_, tp.partition);
          self->slots_[tp.partition]->RequestOwnership();
        }
        self->joined_ = true;
        return Status::Ok();
      },
      [self](const std::vector<TopicPartitionOffset>& revoked) {
        bool lost = self->membership_->AssignmentLost();
        for (const auto& tp : revoked) {
          spdlog::info("writer {}: partition {} {}", self->instance_id_, tp.partition,
                       lost ? "lost" : "revoked");
          self->slots_[tp.partition]->ReleaseOwnership();
        }
      }));
  w->membership_thread_ = std::thread([self] {
    SetThreadName("writer-group");
    self->RunMembership();
  });
  spdlog::info("writer {}: topic {} with {} partitions, domain {}, group {}", w->instance_id_,
               config.kafka.topic, *count, w->domain_->name(), group_id);
  return w;
}

Writer::~Writer() { Stop(); }

void Writer::RunMembership() {
  // The group consumer exists for its assignments; its messages are never
  // read (the partitions are paused as soon as they are assigned).
  size_t paused = 0;
  while (!stopping_) {
    KafkaMessage message;
    auto outcome = membership_->Poll(std::chrono::milliseconds(100), &message);
    if (!outcome.ok()) spdlog::debug("writer membership: {}", outcome.status().message());
    auto assignment = membership_->Assignment();
    if (assignment.size() != paused || (outcome.ok() && *outcome == Consumer::PollOutcome::kMessage)) {
      (void)membership_->Pause(assignment);
      paused = assignment.size();
    }
    int owned = 0;
    for (const auto& slot : slots_) owned += slot->role() == PartitionSlot::Role::kOwner;
    owned_gauge_->Set(owned);
  }
}

void Writer::Stop() {
  if (stopping_.exchange(true)) return;
  if (membership_thread_.joinable()) membership_thread_.join();
  // Leave the group first so another instance can take the partitions over.
  if (membership_) (void)membership_->Close();
  for (auto& slot : slots_) slot->Stop();
  if (directory_) directory_->Stop();
}

bool Writer::ready() const {
  if (!joined_) return false;
  for (const auto& slot : slots_)
    if (slot->wants_ownership() && slot->role() != PartitionSlot::Role::kOwner) return false;
  return true;
}

bool Writer::owns_all() const {
  for (const auto& slot : slots_)
    if (slot->role() != PartitionSlot::Role::kOwner) return false;
  return !slots_.empty();
}

int32_t Writer::PartitionOf(const std::string& partition_key) const {
  return PartitionForKey(partition_key, static_cast<int32_t>(slots_.size()));
}

void Writer::Submit(Command command, CommandDone done) {
  int32_t p = PartitionOf(command.partition_key);
  slots_[p]->Submit(std::move(command), std::move(done));
}

void Writer::Query(const std::string& partition_key, const std::string& entity, QueryDone done) {
  slots_[PartitionOf(partition_key)]->Query(partition_key, entity, std::move(done));
}

HttpResponse Writer::NotOwnedResponse(int32_t partition, const std::string& target) const {
  if (std::string why = slots_[partition]->refusal(); !why.empty()) {
    // Not a takeover that ends by itself: no Retry-After.
    return JsonResponse(503, {{"error", why}, {"partition", partition}, {"log_incomplete", true}});
  }
  auto claim = directory_->Find(partition);
  if (claim && claim->instance != instance_id_ && !claim->url.empty()) {
    HttpResponse r = JsonResponse(
        307, {{"error", "partition " + std::to_string(partition) + " is owned by " + claim->instance},
              {"partition", partition},
              {"owner", claim->url}});
    r.headers.emplace_back("Location", claim->url + target);
    return r;
  }
  HttpResponse r =
      JsonResponse(503, {{"error", "partition " + std::to_string(partition) +
                                       " has no owner right now (a takeover is in progress); retry"},
                         {"partition", partition}});
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

void Writer::HandleHttp(HttpRequest&& request, HttpReply reply) {
  const std::string& path = request.path;
  // Commands and state are the business's; health and metrics stay open
  // for probes and scrapers.
  if (path == "/commands" || path.rfind("/state/", 0) == 0) {
    if (auto refusal = CheckBearerToken(request, config_.writer.token)) return reply(std::move(*refusal));
  }
  if (path == "/commands") {
    if (request.method != "POST") return reply(ErrorResponse(405, "use POST /commands"));
    return HandleCommands(std::move(request), std::move(reply));
  }
  if (path.rfind("/state/", 0) == 0) {
    if (request.method != "GET") return reply(ErrorResponse(405, "use GET /state/{partition-key}/{entity}"));
    return HandleState(request, std::move(reply));
  }
  if (path == "/healthz") return reply(JsonResponse(200, {{"status", "ok"}, {"instance", instance_id_}}));
  if (path == "/readyz") {
    nlohmann::json partitions = nlohmann::json::array();
    for (const auto& s : slots_) {
      // "assigned": the writers' group gave this instance the partition. An
      // assigned partition that stays a standby is one nobody serves.
      nlohmann::json p = {{"partition", s->partition()},      {"role", PartitionSlot::RoleName(s->role())},
                          {"assigned", s->wants_ownership()}, {"offset", s->applied_offset()},
                          {"entities", s->entity_count()},    {"snapshot_offset", s->snapshot_offset()}};
      if (std::string why = s->refusal(); !why.empty()) p["error"] = why;
      partitions.push_back(std::move(p));
    }
    bool is_ready = ready();
    nlohmann::json body = {{"ready", is_ready}, {"instance", instance_id_}, {"partitions", partitions}};
    if (!retention_problem_.empty()) body["topic_retention_warning"] = retention_problem_;
    return reply(JsonResponse(is_ready ? 200 : 503, body));
  }
  if (path == "/metrics") {
    return reply(HttpResponse{200, "text/plain; version=0.0.4", metrics_.RenderPrometheus(), {}});
  }
  reply(ErrorResponse(404, "no such endpoint: " + path));
}

void Writer::HandleCommands(HttpRequest&& request, HttpReply reply) {
  auto parse_started = std::chrono::steady_clock::now();
  // JSON (or an untyped body); a form-encoded one is a client's mistake.
  if (auto refusal = CheckJsonContentType(request)) return reply(std::move(*refusal));
  nlohmann::json body = nlohmann::json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return reply(ErrorResponse(400, "body is not valid JSON"));
  bool single = !body.is_array();
  if (single) body = nlohmann::json::array({body});
  if (body.empty()) return reply(ErrorResponse(400, "empty batch"));
  if (body.size() > kMaxCommandsPerRequest)
    return reply(
        ErrorResponse(413, "at most " + std::to_string(kMaxCommandsPerRequest) + " commands per request"));

  // Validate everything before submitting anything: a bad batch publishes nothing.
  std::vector<Command> commands;
  commands.reserve(body.size());
  std::string header_key = request.Header("idempotency-key");
  if (!single && !header_key.empty())
    return reply(ErrorResponse(400,
                               "Idempotency-Key header: only for a single command; give each command of a "
                               "batch its own \"id\""));
  for (size_t i = 0; i < body.size(); ++i) {
    auto command = domain_->ParseCommand(body[i]);
    if (!command.ok()) {
      std::string where = single ? "" : "commands[" + std::to_string(i) + "].";
      return reply(ErrorResponse(400, where + command.status().message()));
    }
    if (single && !header_key.empty()) {
      if (header_key.size() > 200)
        return reply(ErrorResponse(400, "Idempotency-Key header: at most 200 characters"));
      command->id = header_key;
    }
    commands.push_back(std::move(command.value()));
  }
  writer_metrics_.ObservePhase(
      WriterPhase::kParse,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - parse_started).count());

  if (single) {
    int32_t p = PartitionOf(commands[0].partition_key);
    if (slots_[p]->role() != PartitionSlot::Role::kOwner) return reply(NotOwnedResponse(p, request.target));
    slots_[p]->Submit(std::move(commands[0]), [reply](Result<CommandAck> result) {
      if (result.ok())
        return reply(HttpResponse{200, "application/json", AckJson(*result, false) + "\n", {}});
      reply(JsonResponse(HttpStatusFor(result.status()), ErrorJson(result.status())));
    });
    return;
  }
  auto batch = std::make_shared<BatchReply>(commands.size(), std::move(reply));
  for (size_t i = 0; i < commands.size(); ++i) {
    int32_t p = PartitionOf(commands[i].partition_key);
    if (slots_[p]->role() != PartitionSlot::Role::kOwner) {
      HttpResponse r = NotOwnedResponse(p, request.target);
      nlohmann::json item = nlohmann::json::parse(r.body);
      item["status"] = r.status;
      batch->Set(i, item.dump());
      continue;
    }
    slots_[p]->Submit(std::move(commands[i]),
                      [batch, i](Result<CommandAck> result) { batch->Set(i, BatchItemJson(result)); });
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
  int32_t p = PartitionOf(key);
  if (slots_[p]->role() != PartitionSlot::Role::kOwner) return reply(NotOwnedResponse(p, request.target));
  slots_[p]->Query(key, entity, [reply, min_offset](Result<EntityReading> reading) {
    if (!reading.ok())
      return reply(ErrorResponse(HttpStatusFor(reading.status()), reading.status().message()));
    // The owner's state is the newest there is: an offset it has not reached
    // was never produced by this partition.
    if (min_offset >= 0 && reading->offset < min_offset)
      return reply(ErrorResponse(409, "min_offset " + std::to_string(min_offset) + " is beyond partition " +
                                          std::to_string(reading->partition) + "'s last offset " +
                                          std::to_string(reading->offset)));
    nlohmann::json out = {
        {"partition", reading->partition}, {"offset", reading->offset}, {"entity", reading->entity}};
    reply(JsonResponse(reading->entity.is_null() ? 404 : 200, out));
  });
}

}  // namespace freshet
