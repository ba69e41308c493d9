#include "core/kafka.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cstdint>
#include <thread>

namespace freshet {
namespace {

using ConfPtr = std::unique_ptr<rd_kafka_conf_t, decltype(&rd_kafka_conf_destroy)>;

Status SetProperty(rd_kafka_conf_t* conf, const std::string& name, const std::string& value) {
  char err[512];
  if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK)
    return Status::InvalidArgument("kafka property " + name + "=" + value + ": " + err);
  return Status::Ok();
}

Result<ConfPtr> MakeConf(const KafkaClientOptions& options,
                         const std::map<std::string, std::string>& defaults) {
  if (options.brokers.empty()) return Status::InvalidArgument("kafka.brokers: required");
  ConfPtr conf(rd_kafka_conf_new(), &rd_kafka_conf_destroy);
  FRESHET_RETURN_IF_ERROR(SetProperty(conf.get(), "bootstrap.servers", options.brokers));
  for (const auto& [k, v] : defaults) FRESHET_RETURN_IF_ERROR(SetProperty(conf.get(), k, v));
  for (const auto& [k, v] : options.properties) FRESHET_RETURN_IF_ERROR(SetProperty(conf.get(), k, v));
  return conf;
}

Result<KafkaHandle> NewHandle(rd_kafka_type_t type, ConfPtr conf) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), err, sizeof(err));
  if (!rk) return Status::InvalidArgument(std::string("kafka client: ") + err);
  conf.release();  // rd_kafka_new took ownership
  return KafkaHandle(rk);
}

void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  auto* report = static_cast<DeliveryReport*>(m->_private);
  if (!report) return;
  report->partition = m->partition;
  report->offset = m->err ? -1 : m->offset;
  report->error = m->err;
}

bool IsFencedCode(rd_kafka_resp_err_t code) {
  return code == RD_KAFKA_RESP_ERR__FENCED || code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
         code == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

std::vector<TopicPartitionOffset> ToVector(const rd_kafka_topic_partition_list_t* list) {
  std::vector<TopicPartitionOffset> out;
  if (!list) return out;
  for (int i = 0; i < list->cnt; ++i) {
    const auto& e = list->elems[i];
    out.push_back({e.topic, e.partition, e.offset});
  }
  return out;
}

using PartitionListPtr =
    std::unique_ptr<rd_kafka_topic_partition_list_t, decltype(&rd_kafka_topic_partition_list_destroy)>;

PartitionListPtr ToList(const std::vector<TopicPartitionOffset>& v) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(v.size())),
                        &rd_kafka_topic_partition_list_destroy);
  for (const auto& tp : v)
    rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition)->offset = tp.offset;
  return list;
}

// Queues one message, waiting for room while librdkafka's local queue is
// full. On success the headers belong to librdkafka.
rd_kafka_resp_err_t ProduceOne(rd_kafka_t* rk, const OutgoingMessage& message, void* opaque) {
  rd_kafka_headers_t* headers = nullptr;
  if (!message.headers.empty()) {
    headers = rd_kafka_headers_new(message.headers.size());
    for (const auto& h : message.headers)
      rd_kafka_header_add(headers, h.name.data(), static_cast<ssize_t>(h.name.size()), h.value.data(),
                          static_cast<ssize_t>(h.value.size()));
  }
  rd_kafka_resp_err_t err;
  for (;;) {
    err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(message.topic.c_str()),
                            RD_KAFKA_V_PARTITION(message.partition < 0 ? RD_KAFKA_PARTITION_UA : message.partition),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_KEY(message.null_key ? nullptr : message.key.data(),
                                           message.null_key ? 0 : message.key.size()),
                            RD_KAFKA_V_VALUE(message.null_value ? nullptr : const_cast<char*>(message.value.data()),
                                             message.null_value ? 0 : message.value.size()),
                            RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
    rd_kafka_poll(rk, 10);  // deliveries make room
  }
  if (err && headers) rd_kafka_headers_destroy(headers);  // not taken over on failure
  return err;
}

}  // namespace

std::string KafkaLibraryVersion() { return rd_kafka_version_str(); }

void KafkaHandleDeleter::operator()(rd_kafka_s* rk) const {
  if (rk) rd_kafka_destroy(rk);
}

// ---- TransactionalProducer -------------------------------------------------

Result<std::unique_ptr<TransactionalProducer>> TransactionalProducer::Create(
    const KafkaClientOptions& options, const std::string& transactional_id) {
  auto conf = MakeConf(options, {{"transactional.id", transactional_id},
                                 {"enable.idempotence", "true"},
                                 {"acks", "all"},
                                 {"linger.ms", "1"}});
  if (!conf.ok()) return conf.status();
  rd_kafka_conf_set_dr_msg_cb(conf->get(), &OnDelivery);
  auto handle = NewHandle(RD_KAFKA_PRODUCER, std::move(conf.value()));
  if (!handle.ok()) return handle.status();
  return std::unique_ptr<TransactionalProducer>(
      new TransactionalProducer(std::move(handle.value()), transactional_id));
}

TransactionalProducer::~TransactionalProducer() = default;

Status TransactionalProducer::TxnCall(const char* what, rd_kafka_error_t* error) {
  if (!error) return Status::Ok();
  std::string msg = std::string(what) + " (transactional.id " + transactional_id_ +
                    "): " + rd_kafka_error_string(error);
  rd_kafka_resp_err_t code = rd_kafka_error_code(error);
  bool fatal = rd_kafka_error_is_fatal(error);
  bool requires_abort = rd_kafka_error_txn_requires_abort(error);
  bool retriable = rd_kafka_error_is_retriable(error);
  rd_kafka_error_destroy(error);
  if (fatal || IsFencedCode(code)) {
    // Fatal errors other than fencing also end this producer's life; the
    // caller treats them alike: destroy it and stop serving.
    return Status::Fenced(msg);
  }
  if (requires_abort) return Status::Conflict(msg + " (transaction must be aborted)");
  if (retriable || code == RD_KAFKA_RESP_ERR__TIMED_OUT) return Status::Unavailable(msg);
  return Status::Internal(msg);
}

Status TransactionalProducer::InitTransactions(std::chrono::milliseconds timeout) {
  return TxnCall("init_transactions",
                 rd_kafka_init_transactions(handle_.get(), static_cast<int>(timeout.count())));
}

Status TransactionalProducer::Begin() {
  return TxnCall("begin_transaction", rd_kafka_begin_transaction(handle_.get()));
}

Status TransactionalProducer::Produce(const OutgoingMessage& message, DeliveryReport* report) {
  rd_kafka_resp_err_t err = ProduceOne(handle_.get(), message, report);
  if (!err) return Status::Ok();
  std::string msg = "produce to " + message.topic + ": " + rd_kafka_err2str(err);
  if (IsFencedCode(err) || err == RD_KAFKA_RESP_ERR__FATAL) return Status::Fenced(msg);
  return Status::Internal(msg);
}

Status TransactionalProducer::Flush(std::chrono::milliseconds timeout) {
  rd_kafka_resp_err_t err = rd_kafka_flush(handle_.get(), static_cast<int>(timeout.count()));
  if (!err) return Status::Ok();
  return Status::Unavailable(std::string("flush (transactional.id ") + transactional_id_ + "): " + rd_kafka_err2str(err));
}

Status TransactionalProducer::Commit(std::chrono::milliseconds timeout) {
  Status st = TxnCall("commit_transaction",
                      rd_kafka_commit_transaction(handle_.get(), static_cast<int>(timeout.count())));
  rd_kafka_poll(handle_.get(), 0);  // serve any delivery report not yet served
  return st;
}

Status TransactionalProducer::Abort(std::chrono::milliseconds timeout) {
  // librdkafka#4849: EndTxn(abort) may overtake the AddPartitionsToTxn of a
  // produce still in flight and fail fatally with INVALID_TXN_STATE. A
  // delivered message proves its partition is registered, so flush first;
  // the flushed messages are aborted with the rest.
  rd_kafka_flush(handle_.get(), static_cast<int>(timeout.count()));
  Status st = TxnCall("abort_transaction",
                      rd_kafka_abort_transaction(handle_.get(), static_cast<int>(timeout.count())));
  rd_kafka_poll(handle_.get(), 0);
  return st;
}

// ---- Producer ---------------------------------------------------------------------

Result<std::unique_ptr<Producer>> Producer::Create(const KafkaClientOptions& options) {
  auto conf = MakeConf(options, {{"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "5"}});
  if (!conf.ok()) return conf.status();
  auto handle = NewHandle(RD_KAFKA_PRODUCER, std::move(conf.value()));
  if (!handle.ok()) return handle.status();
  return std::unique_ptr<Producer>(new Producer(std::move(handle.value())));
}

Producer::~Producer() {
  if (handle_) rd_kafka_flush(handle_.get(), 10000);
}

Status Producer::Produce(const OutgoingMessage& message) {
  rd_kafka_resp_err_t err = ProduceOne(handle_.get(), message, nullptr);
  if (err) return Status::Unavailable("produce to " + message.topic + ": " + rd_kafka_err2str(err));
  rd_kafka_poll(handle_.get(), 0);  // serve delivery reports
  return Status::Ok();
}

Status Producer::Flush(std::chrono::milliseconds timeout) {
  rd_kafka_resp_err_t err = rd_kafka_flush(handle_.get(), static_cast<int>(timeout.count()));
  if (err) return Status::Unavailable(std::string("flush: ") + rd_kafka_err2str(err));
  return Status::Ok();
}

// ---- KafkaMessage ------------------------------------------------------------

KafkaMessage::KafkaMessage(rd_kafka_message_s* m) : m_(m) {}
KafkaMessage::~KafkaMessage() {
  if (m_) rd_kafka_message_destroy(m_);
}
KafkaMessage& KafkaMessage::operator=(KafkaMessage&& other) noexcept {
  if (this != &other) {
    if (m_) rd_kafka_message_destroy(m_);
    m_ = other.m_;
    other.m_ = nullptr;
  }
  return *this;
}
std::string_view KafkaMessage::topic() const { return rd_kafka_topic_name(m_->rkt); }
int32_t KafkaMessage::partition() const { return m_->partition; }
int64_t KafkaMessage::offset() const { return m_->offset; }
std::string_view KafkaMessage::key() const {
  return m_->key ? std::string_view(static_cast<const char*>(m_->key), m_->key_len) : std::string_view();
}
std::string_view KafkaMessage::value() const {
  return m_->payload ? std::string_view(static_cast<const char*>(m_->payload), m_->len) : std::string_view();
}
bool KafkaMessage::has_key() const { return m_->key != nullptr; }
bool KafkaMessage::has_value() const { return m_->payload != nullptr; }
int64_t KafkaMessage::timestamp_ms() const { return rd_kafka_message_timestamp(m_, nullptr); }
std::optional<std::string_view> KafkaMessage::header(const char* name) const {
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(m_, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
  const void* value = nullptr;
  size_t size = 0;
  if (rd_kafka_header_get_last(headers, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return std::nullopt;
  return std::string_view(static_cast<const char*>(value), size);
}

// ---- Consumer ------------------------------------------------------------------

struct ConsumerRebalance {
  static bool Cooperative(rd_kafka_t* rk) {
    const char* protocol = rd_kafka_rebalance_protocol(rk);
    return protocol && std::string(protocol) == "COOPERATIVE";
  }

  static void Callback(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                       rd_kafka_topic_partition_list_t* partitions, void* opaque) {
    auto* consumer = static_cast<Consumer*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      std::vector<TopicPartitionOffset> assigned = ToVector(partitions);
      for (auto& tp : assigned) tp.offset = kOffsetBeginning;
      Status st = consumer->on_assign_ ? consumer->on_assign_(assigned) : Status::Ok();
      if (!st.ok()) {
        // Without the stored offsets we must not read: surface the error from Poll.
        consumer->rebalance_error_ = st.WithContext("assigning partitions");
        consumer->assignment_failed_ = true;
        if (!Cooperative(rk)) rd_kafka_assign(rk, nullptr);
        return;
      }
      auto list = ToList(assigned);
      if (Cooperative(rk)) {
        if (rd_kafka_error_t* e = rd_kafka_incremental_assign(rk, list.get())) rd_kafka_error_destroy(e);
      } else {
        rd_kafka_assign(rk, list.get());
      }
    } else {
      if (consumer->on_revoke_) consumer->on_revoke_(ToVector(partitions));
      if (Cooperative(rk)) {
        if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk, partitions)) rd_kafka_error_destroy(e);
      } else {
        rd_kafka_assign(rk, nullptr);
      }
    }
  }
};

Result<std::unique_ptr<Consumer>> Consumer::Create(const KafkaClientOptions& options,
                                                   const std::string& group_id) {
  std::map<std::string, std::string> defaults = {
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"isolation.level", "read_committed"},
      {"auto.offset.reset", "earliest"},
      {"enable.partition.eof", "true"},
      // Measured on librdkafka 2.0.2 (bench/README.md, views): with the
      // default 100,000 the prefetcher stopped at that many queued messages
      // and resumed only ~400 ms after the queue ran dry, a stall every
      // ~100k events during catch-up. queued.max.messages.kbytes (64 MB)
      // still bounds the memory.
      {"queued.min.messages", "1000000"},
      // A fetch that errs (a leader not known yet at start-up) is retried
      // after 20 ms, not 500; an idle fetch is re-issued every 50 ms.
      {"fetch.error.backoff.ms", "20"},
      {"fetch.wait.max.ms", "50"},
  };
  // librdkafka 2.0.2 refuses assign() without a group.id ("Unknown group"),
  // even though an assign-only consumer never joins or commits to it.
  defaults["group.id"] = group_id.empty() ? "freshet-assign-only" : group_id;
  auto conf = MakeConf(options, defaults);
  if (!conf.ok()) return conf.status();
  // The Consumer object is the rebalance callback's opaque; it is created
  // before the handle so the pointer is stable.
  std::unique_ptr<Consumer> consumer(new Consumer(nullptr));
  rd_kafka_conf_set_opaque(conf->get(), consumer.get());
  rd_kafka_conf_set_rebalance_cb(conf->get(), &ConsumerRebalance::Callback);
  auto handle = NewHandle(RD_KAFKA_CONSUMER, std::move(conf.value()));
  if (!handle.ok()) return handle.status();
  consumer->handle_ = std::move(handle.value());
  rd_kafka_poll_set_consumer(consumer->handle_.get());
  return consumer;
}

Consumer::~Consumer() {
  if (handle_ && !closed_) (void)Close();
}

Status Consumer::Subscribe(const std::vector<std::string>& topics, AssignHook on_assign,
                           RevokeHook on_revoke) {
  on_assign_ = std::move(on_assign);
  on_revoke_ = std::move(on_revoke);
  PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(topics.size())),
                        &rd_kafka_topic_partition_list_destroy);
  for (const auto& t : topics) rd_kafka_topic_partition_list_add(list.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t err = rd_kafka_subscribe(handle_.get(), list.get());
  if (err) return Status::Internal(std::string("subscribe: ") + rd_kafka_err2str(err));
  return Status::Ok();
}

Status Consumer::Assign(const std::vector<TopicPartitionOffset>& partitions) {
  auto list = ToList(partitions);
  rd_kafka_resp_err_t err = rd_kafka_assign(handle_.get(), list.get());
  if (err) return Status::Internal(std::string("assign: ") + rd_kafka_err2str(err));
  return Status::Ok();
}

Result<Consumer::PollOutcome> Consumer::Poll(std::chrono::milliseconds timeout, KafkaMessage* message,
                                             int32_t* eof_partition) {
  rd_kafka_message_t* m = rd_kafka_consumer_poll(handle_.get(), static_cast<int>(timeout.count()));
  if (!rebalance_error_.ok()) {
    if (m) rd_kafka_message_destroy(m);
    Status st = rebalance_error_;
    rebalance_error_ = Status::Ok();
    return st;
  }
  if (!m) return PollOutcome::kTimeout;
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    if (eof_partition) *eof_partition = m->partition;
    rd_kafka_message_destroy(m);
    return PollOutcome::kPartitionEnd;
  }
  if (m->err) {
    std::string msg = std::string("consume: ") + rd_kafka_message_errstr(m);
    rd_kafka_resp_err_t err = m->err;
    rd_kafka_message_destroy(m);
    if (err == RD_KAFKA_RESP_ERR__FATAL) return Status::Internal(msg);
    return Status::Unavailable(msg);
  }
  *message = KafkaMessage(m);
  return PollOutcome::kMessage;
}

Status Consumer::Pause(const std::vector<TopicPartitionOffset>& partitions) {
  auto list = ToList(partitions);
  rd_kafka_resp_err_t err = rd_kafka_pause_partitions(handle_.get(), list.get());
  if (err) return Status::Internal(std::string("pause: ") + rd_kafka_err2str(err));
  return Status::Ok();
}

Status Consumer::Resume(const std::vector<TopicPartitionOffset>& partitions) {
  auto list = ToList(partitions);
  rd_kafka_resp_err_t err = rd_kafka_resume_partitions(handle_.get(), list.get());
  if (err) return Status::Internal(std::string("resume: ") + rd_kafka_err2str(err));
  return Status::Ok();
}

bool Consumer::AssignmentLost() { return rd_kafka_assignment_lost(handle_.get()) == 1; }

Status Consumer::Seek(const std::string& topic, int32_t partition, int64_t offset) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(1), &rd_kafka_topic_partition_list_destroy);
  rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition)->offset = offset;
  rd_kafka_error_t* error = rd_kafka_seek_partitions(handle_.get(), list.get(), 10000);
  if (error) {
    std::string msg = std::string("seek: ") + rd_kafka_error_string(error);
    rd_kafka_error_destroy(error);
    return Status::Internal(msg);
  }
  if (list->elems[0].err)
    return Status::Internal(std::string("seek: ") + rd_kafka_err2str(list->elems[0].err));
  return Status::Ok();
}

Status Consumer::CommitOffsets(const std::string& topic, const std::map<int32_t, int64_t>& next_offsets) {
  if (next_offsets.empty()) return Status::Ok();
  PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(next_offsets.size())),
                        &rd_kafka_topic_partition_list_destroy);
  for (const auto& [partition, next] : next_offsets)
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition)->offset = next;
  rd_kafka_resp_err_t err = rd_kafka_commit(handle_.get(), list.get(), /*async=*/0);
  if (err) return Status::Unavailable(std::string("commit offsets: ") + rd_kafka_err2str(err));
  for (int i = 0; i < list->cnt; ++i)
    if (list->elems[i].err)
      return Status::Unavailable(std::string("commit offsets: ") + rd_kafka_err2str(list->elems[i].err));
  return Status::Ok();
}

Result<std::map<int32_t, int64_t>> Consumer::CommittedOffsets(const std::string& topic,
                                                              const std::vector<int32_t>& partitions,
                                                              std::chrono::milliseconds timeout) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())),
                        &rd_kafka_topic_partition_list_destroy);
  for (int32_t p : partitions) rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p);
  rd_kafka_resp_err_t err = rd_kafka_committed(handle_.get(), list.get(), static_cast<int>(timeout.count()));
  if (err) return Status::Unavailable(std::string("committed offsets: ") + rd_kafka_err2str(err));
  std::map<int32_t, int64_t> out;
  for (int i = 0; i < list->cnt; ++i) {
    if (list->elems[i].err)
      return Status::Unavailable(std::string("committed offsets: ") + rd_kafka_err2str(list->elems[i].err));
    if (list->elems[i].offset >= 0) out[list->elems[i].partition] = list->elems[i].offset;
  }
  return out;
}

Result<int64_t> Consumer::Position(const std::string& topic, int32_t partition) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(1), &rd_kafka_topic_partition_list_destroy);
  rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition);
  rd_kafka_resp_err_t err = rd_kafka_position(handle_.get(), list.get());
  if (err) return Status::Internal(std::string("position: ") + rd_kafka_err2str(err));
  return list->elems[0].offset;
}

Result<std::pair<int64_t, int64_t>> Consumer::QueryWatermarks(const std::string& topic, int32_t partition,
                                                              std::chrono::milliseconds timeout) {
  int64_t low = 0, high = 0;
  rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
      handle_.get(), topic.c_str(), partition, &low, &high, static_cast<int>(timeout.count()));
  if (err)
    return Status::Unavailable("watermarks of " + topic + "[" + std::to_string(partition) +
                               "]: " + rd_kafka_err2str(err));
  return std::make_pair(low, high);
}

int64_t Consumer::CachedHighWatermark(const std::string& topic, int32_t partition) {
  int64_t low = -1, high = -1;
  if (rd_kafka_get_watermark_offsets(handle_.get(), topic.c_str(), partition, &low, &high) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return -1;
  return high;
}

std::vector<TopicPartitionOffset> Consumer::Assignment() {
  rd_kafka_topic_partition_list_t* list = nullptr;
  if (rd_kafka_assignment(handle_.get(), &list) != RD_KAFKA_RESP_ERR_NO_ERROR) return {};
  auto v = ToVector(list);
  rd_kafka_topic_partition_list_destroy(list);
  return v;
}

Status Consumer::Close() {
  if (closed_) return Status::Ok();
  closed_ = true;
  rd_kafka_resp_err_t err = rd_kafka_consumer_close(handle_.get());
  if (err) return Status::Internal(std::string("consumer close: ") + rd_kafka_err2str(err));
  return Status::Ok();
}

// ---- Admin ---------------------------------------------------------------------------

Result<int> PartitionCount(const KafkaClientOptions& options, const std::string& topic,
                           std::chrono::milliseconds timeout) {
  auto conf = MakeConf(options, {});
  if (!conf.ok()) return conf.status();
  auto handle = NewHandle(RD_KAFKA_PRODUCER, std::move(conf.value()));
  if (!handle.ok()) return handle.status();
  const rd_kafka_metadata_t* md = nullptr;
  // All topics, so that asking never auto-creates the topic.
  rd_kafka_resp_err_t err =
      rd_kafka_metadata(handle->get(), 1, nullptr, &md, static_cast<int>(timeout.count()));
  if (err)
    return Status::Unavailable("kafka.brokers " + options.brokers +
                               ": metadata request failed: " + rd_kafka_err2str(err));
  std::unique_ptr<const rd_kafka_metadata_t, decltype(&rd_kafka_metadata_destroy)> guard(
      md, &rd_kafka_metadata_destroy);
  for (int i = 0; i < md->topic_cnt; ++i) {
    if (topic == md->topics[i].topic && !md->topics[i].err) return md->topics[i].partition_cnt;
  }
  return Status::NotFound("topic " + topic + " does not exist");
}

Status DeleteTopics(const KafkaClientOptions& options, const std::vector<std::string>& topics,
                    std::chrono::milliseconds timeout) {
  if (topics.empty()) return Status::Ok();
  auto conf = MakeConf(options, {});
  if (!conf.ok()) return conf.status();
  auto handle = NewHandle(RD_KAFKA_PRODUCER, std::move(conf.value()));
  if (!handle.ok()) return handle.status();
  std::vector<rd_kafka_DeleteTopic_t*> requests;
  for (const auto& topic : topics) requests.push_back(rd_kafka_DeleteTopic_new(topic.c_str()));
  rd_kafka_queue_t* queue = rd_kafka_queue_new(handle->get());
  rd_kafka_DeleteTopics(handle->get(), requests.data(), requests.size(), nullptr, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, static_cast<int>(timeout.count()));
  Status st = Status::Ok();
  if (!event) {
    st = Status::Timeout("deleting topics: no answer from " + options.brokers);
  } else if (rd_kafka_event_error(event)) {
    st = Status::Unavailable(std::string("deleting topics: ") + rd_kafka_event_error_string(event));
  } else {
    size_t count = 0;
    const rd_kafka_DeleteTopics_result_t* result = rd_kafka_event_DeleteTopics_result(event);
    const rd_kafka_topic_result_t** results = result ? rd_kafka_DeleteTopics_result_topics(result, &count) : nullptr;
    for (size_t i = 0; i < count && st.ok(); ++i) {
      rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
      if (err && err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        st = Status::Internal(std::string("deleting topic ") + rd_kafka_topic_result_name(results[i]) + ": " +
                              rd_kafka_topic_result_error_string(results[i]));
    }
  }
  if (event) rd_kafka_event_destroy(event);
  rd_kafka_queue_destroy(queue);
  rd_kafka_DeleteTopic_destroy_array(requests.data(), requests.size());
  return st;
}

Status EnsureTopic(const KafkaClientOptions& options, const std::string& topic, int partitions,
                   int replication_factor, std::chrono::milliseconds timeout,
                   const std::map<std::string, std::string>& topic_config) {
  auto existing = PartitionCount(options, topic, timeout);
  if (existing.ok()) return Status::Ok();
  if (existing.status().code() != StatusCode::kNotFound) return existing.status();

  auto conf = MakeConf(options, {});
  if (!conf.ok()) return conf.status();
  auto handle = NewHandle(RD_KAFKA_PRODUCER, std::move(conf.value()));
  if (!handle.ok()) return handle.status();
  char err[512];
  rd_kafka_NewTopic_t* new_topic =
      rd_kafka_NewTopic_new(topic.c_str(), partitions, replication_factor, err, sizeof(err));
  if (!new_topic) return Status::InvalidArgument("topic " + topic + ": " + err);
  for (const auto& [name, value] : topic_config) rd_kafka_NewTopic_set_config(new_topic, name.c_str(), value.c_str());
  rd_kafka_queue_t* queue = rd_kafka_queue_new(handle->get());
  rd_kafka_CreateTopics(handle->get(), &new_topic, 1, nullptr, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, static_cast<int>(timeout.count()));
  Status st = Status::Ok();
  if (!event) {
    st = Status::Timeout("creating topic " + topic + ": no answer from " + options.brokers);
  } else {
    const rd_kafka_CreateTopics_result_t* result = rd_kafka_event_CreateTopics_result(event);
    size_t count = 0;
    const rd_kafka_topic_result_t** results = result ? rd_kafka_CreateTopics_result_topics(result, &count) : nullptr;
    if (rd_kafka_event_error(event)) {
      st = Status::Unavailable("creating topic " + topic + ": " + rd_kafka_event_error_string(event));
    } else if (count == 1 && rd_kafka_topic_result_error(results[0]) &&
               rd_kafka_topic_result_error(results[0]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      st = Status::Internal("creating topic " + topic + ": " +
                            rd_kafka_topic_result_error_string(results[0]));
    }
    rd_kafka_event_destroy(event);
  }
  rd_kafka_queue_destroy(queue);
  rd_kafka_NewTopic_destroy(new_topic);
  if (!st.ok()) return st;
  // Each broker learns of the topic from the cluster's metadata log on its
  // own schedule, and a client's metadata or config request goes to
  // whichever broker it picks: on three brokers, the writer's next request
  // right after creating its topic met a broker that did not know it yet
  // ("does not exist") and the writer refused to start. So wait until every
  // broker answers with the topic. A fresh client asks its only bootstrap
  // server first.
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<std::string> brokers;
  {
    const rd_kafka_metadata_t* md = nullptr;
    if (rd_kafka_metadata(handle->get(), 0, nullptr, &md, static_cast<int>(timeout.count())) ==
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      for (int i = 0; i < md->broker_cnt; ++i)
        brokers.push_back(std::string(md->brokers[i].host) + ":" + std::to_string(md->brokers[i].port));
      rd_kafka_metadata_destroy(md);
    }
  }
  if (brokers.empty()) brokers.push_back(options.brokers);
  for (const auto& broker : brokers) {
    KafkaClientOptions one = options;
    one.brokers = broker;
    while (!PartitionCount(one, topic, timeout).ok()) {
      if (std::chrono::steady_clock::now() >= deadline)
        return Status::Timeout("topic " + topic + " created but broker " + broker + " does not show it in metadata");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  return Status::Ok();
}

}  // namespace freshet

namespace freshet {
namespace {

// One admin request's reply queue and the event it answered with.
struct AdminQueueDeleter { void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); } };
struct AdminEventDeleter { void operator()(rd_kafka_event_t* e) const { rd_kafka_event_destroy(e); } };
using AdminQueue = std::unique_ptr<rd_kafka_queue_t, AdminQueueDeleter>;
using AdminEvent = std::unique_ptr<rd_kafka_event_t, AdminEventDeleter>;

// Waits for the answer to an admin request sent to `queue`; `what` names the
// request in errors.
Result<AdminEvent> AwaitAdminEvent(rd_kafka_queue_t* queue, const std::string& what, const KafkaClientOptions& options,
                                   std::chrono::milliseconds timeout) {
  AdminEvent event(rd_kafka_queue_poll(queue, static_cast<int>(timeout.count())));
  if (!event) return Status::Timeout(what + ": no answer from " + options.brokers);
  if (rd_kafka_event_error(event.get()))
    return Status::Unavailable(what + ": " + rd_kafka_event_error_string(event.get()));
  return event;
}

}  // namespace

Result<std::map<std::string, std::string>> DescribeTopicConfig(const KafkaClientOptions& options,
                                                               const std::string& topic,
                                                               std::chrono::milliseconds timeout) {
  auto conf = MakeConf(options, {});
  if (!conf.ok()) return conf.status();
  auto handle = NewHandle(RD_KAFKA_PRODUCER, std::move(conf.value()));
  if (!handle.ok()) return handle.status();
  std::unique_ptr<rd_kafka_ConfigResource_t, decltype(&rd_kafka_ConfigResource_destroy)> resource(
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str()), &rd_kafka_ConfigResource_destroy);
  rd_kafka_ConfigResource_t* request = resource.get();
  AdminQueue queue(rd_kafka_queue_new(handle->get()));
  rd_kafka_DescribeConfigs(handle->get(), &request, 1, nullptr, queue.get());
  std::string what = "describing topic " + topic;
  auto event = AwaitAdminEvent(queue.get(), what, options, timeout);
  if (!event.ok()) return event.status();
  const rd_kafka_DescribeConfigs_result_t* result = rd_kafka_event_DescribeConfigs_result(event->get());
  size_t count = 0;
  const rd_kafka_ConfigResource_t** resources =
      result ? rd_kafka_DescribeConfigs_result_resources(result, &count) : nullptr;
  if (count != 1) return Status::Internal(what + ": no answer for the topic");
  if (rd_kafka_ConfigResource_error(resources[0])) {
    if (rd_kafka_ConfigResource_error(resources[0]) == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
      return Status::NotFound("topic " + topic + " does not exist");
    return Status::Unavailable(what + ": " + rd_kafka_ConfigResource_error_string(resources[0]));
  }
  std::map<std::string, std::string> out;
  size_t entries = 0;
  const rd_kafka_ConfigEntry_t** configs = rd_kafka_ConfigResource_configs(resources[0], &entries);
  for (size_t i = 0; i < entries; ++i) {
    const char* value = rd_kafka_ConfigEntry_value(configs[i]);
    out[rd_kafka_ConfigEntry_name(configs[i])] = value ? value : "";
  }
  return out;
}

Status DeleteRecordsBefore(const KafkaClientOptions& options, const std::string& topic, int32_t partition,
                           int64_t before_offset, std::chrono::milliseconds timeout) {
  auto conf = MakeConf(options, {});
  if (!conf.ok()) return conf.status();
  auto handle = NewHandle(RD_KAFKA_PRODUCER, std::move(conf.value()));
  if (!handle.ok()) return handle.status();
  auto offsets = ToList({{topic, partition, before_offset}});
  std::unique_ptr<rd_kafka_DeleteRecords_t, decltype(&rd_kafka_DeleteRecords_destroy)> request(
      rd_kafka_DeleteRecords_new(offsets.get()), &rd_kafka_DeleteRecords_destroy);
  rd_kafka_DeleteRecords_t* requests = request.get();
  AdminQueue queue(rd_kafka_queue_new(handle->get()));
  rd_kafka_DeleteRecords(handle->get(), &requests, 1, nullptr, queue.get());
  std::string what = "deleting records of " + topic + " partition " + std::to_string(partition);
  auto event = AwaitAdminEvent(queue.get(), what, options, timeout);
  if (!event.ok()) return event.status();
  const rd_kafka_DeleteRecords_result_t* result = rd_kafka_event_DeleteRecords_result(event->get());
  const rd_kafka_topic_partition_list_t* done = result ? rd_kafka_DeleteRecords_result_offsets(result) : nullptr;
  if (!done || done->cnt != 1) return Status::Internal(what + ": no answer for the partition");
  if (done->elems[0].err) return Status::Unavailable(what + ": " + rd_kafka_err2str(done->elems[0].err));
  return Status::Ok();
}

std::string RetentionProblem(const std::map<std::string, std::string>& config) {
  auto value = [&](const char* name) {
    auto it = config.find(name);
    return it == config.end() ? std::string() : it->second;
  };
  std::string problems;
  auto add = [&](const std::string& p) { problems += (problems.empty() ? "" : "; ") + p; };
  std::string ms = value("retention.ms"), bytes = value("retention.bytes"), policy = value("cleanup.policy");
  if (!ms.empty() && ms != "-1") add("retention.ms=" + ms + " deletes records older than that");
  if (!bytes.empty() && bytes != "-1") add("retention.bytes=" + bytes + " deletes the oldest records beyond that size");
  if (policy.find("compact") != std::string::npos) add("cleanup.policy=" + policy + " removes superseded records");
  return problems;
}

}  // namespace freshet
