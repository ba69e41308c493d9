// KafkaMessage and Consumer (core/kafka.h).
#include "core/kafka.h"
#include "core/kafka_client.h"

namespace freshet {
namespace {

using KafkaMessagePtr = std::unique_ptr<rd_kafka_message_t, KafkaDestroy<rd_kafka_message_destroy>>;

std::vector<TopicPartitionOffset> ToVector(const rd_kafka_topic_partition_list_t* list) {
  std::vector<TopicPartitionOffset> out;
  if (!list) return out;
  for (int i = 0; i < list->cnt; ++i) {
    const auto& e = list->elems[i];
    out.push_back({e.topic, e.partition, e.offset});
  }
  return out;
}

}  // namespace

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

  static void Callback(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions,
                       void* opaque) {
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
      auto list = ToPartitionList(assigned);
      if (Cooperative(rk)) {
        KafkaError ignored(rd_kafka_incremental_assign(rk, list.get()));
      } else {
        rd_kafka_assign(rk, list.get());
      }
    } else {
      if (consumer->on_revoke_) consumer->on_revoke_(ToVector(partitions));
      if (Cooperative(rk)) {
        KafkaError ignored(rd_kafka_incremental_unassign(rk, partitions));
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
  // librdkafka refuses assign() without a group.id ("Unknown group"), even
  // though an assign-only consumer never joins or commits to it: 2.0.2 and
  // 2.8.0 alike (bench/librdkafka-quirks).
  defaults["group.id"] = group_id.empty() ? "freshet-assign-only" : group_id;
  auto conf = MakeKafkaConf(options, defaults);
  if (!conf.ok()) return conf.status();
  // The Consumer object is the rebalance callback's opaque; it is created
  // before the handle so the pointer is stable.
  std::unique_ptr<Consumer> consumer(new Consumer(nullptr));
  rd_kafka_conf_set_opaque(conf->get(), consumer.get());
  rd_kafka_conf_set_rebalance_cb(conf->get(), &ConsumerRebalance::Callback);
  auto handle = NewKafkaHandle(RD_KAFKA_CONSUMER, std::move(conf.value()));
  if (!handle.ok()) return handle.status();
  consumer->handle_ = std::move(handle.value());
  consumer->brokers_ = options.brokers;
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
  KafkaPartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(topics.size())));
  for (const auto& t : topics)
    rd_kafka_topic_partition_list_add(list.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t err = rd_kafka_subscribe(handle_.get(), list.get());
  if (err) return Status::Internal(std::string("subscribe: ") + rd_kafka_err2str(err));
  return Status::Ok();
}

Status Consumer::Assign(const std::vector<TopicPartitionOffset>& partitions) {
  auto list = ToPartitionList(partitions);
  rd_kafka_resp_err_t err = rd_kafka_assign(handle_.get(), list.get());
  if (err) return Status::Internal(std::string("assign: ") + rd_kafka_err2str(err));
  return Status::Ok();
}

Result<Consumer::PollOutcome> Consumer::Poll(std::chrono::milliseconds timeout, KafkaMessage* message,
                                             int32_t* eof_partition, int64_t* eof_offset) {
  KafkaMessagePtr m(rd_kafka_consumer_poll(handle_.get(), static_cast<int>(timeout.count())));
  if (!rebalance_error_.ok()) {
    Status st = rebalance_error_;
    rebalance_error_ = Status::Ok();
    return st;
  }
  if (!m) return PollOutcome::kTimeout;
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    if (eof_partition) *eof_partition = m->partition;
    if (eof_offset) *eof_offset = m->offset;
    return PollOutcome::kPartitionEnd;
  }
  if (m->err) {
    std::string msg = std::string("consume: ") + rd_kafka_message_errstr(m.get());
    if (m->err == RD_KAFKA_RESP_ERR__FATAL) return Status::Internal(msg);
    return Status::Unavailable(msg);
  }
  *message = KafkaMessage(m.release());
  return PollOutcome::kMessage;
}

Status Consumer::Pause(const std::vector<TopicPartitionOffset>& partitions) {
  auto list = ToPartitionList(partitions);
  rd_kafka_resp_err_t err = rd_kafka_pause_partitions(handle_.get(), list.get());
  if (err) return Status::Internal(std::string("pause: ") + rd_kafka_err2str(err));
  return Status::Ok();
}

Status Consumer::Resume(const std::vector<TopicPartitionOffset>& partitions) {
  auto list = ToPartitionList(partitions);
  rd_kafka_resp_err_t err = rd_kafka_resume_partitions(handle_.get(), list.get());
  if (err) return Status::Internal(std::string("resume: ") + rd_kafka_err2str(err));
  return Status::Ok();
}

bool Consumer::AssignmentLost() { return rd_kafka_assignment_lost(handle_.get()) == 1; }

Status Consumer::Seek(const std::string& topic, int32_t partition, int64_t offset) {
  KafkaPartitionList list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition)->offset = offset;
  KafkaError error(rd_kafka_seek_partitions(handle_.get(), list.get(), 10000));
  if (error) return Status::Internal(std::string("seek: ") + rd_kafka_error_string(error.get()));
  if (list->elems[0].err)
    return Status::Internal(std::string("seek: ") + rd_kafka_err2str(list->elems[0].err));
  return Status::Ok();
}

Status Consumer::CommitOffsets(const std::string& topic, const std::map<int32_t, int64_t>& next_offsets) {
  if (next_offsets.empty()) return Status::Ok();
  KafkaPartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(next_offsets.size())));
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
  KafkaPartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
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
  KafkaPartitionList list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition);
  rd_kafka_resp_err_t err = rd_kafka_position(handle_.get(), list.get());
  if (err) return Status::Internal(std::string("position: ") + rd_kafka_err2str(err));
  return list->elems[0].offset;
}

Result<std::pair<int64_t, int64_t>> Consumer::QueryWatermarks(const std::string& topic, int32_t partition,
                                                              std::chrono::milliseconds timeout) {
  int64_t low = 0, high = 0;
  rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(handle_.get(), topic.c_str(), partition, &low,
                                                             &high, static_cast<int>(timeout.count()));
  if (err)
    return Status::Unavailable("watermarks of " + topic + "[" + std::to_string(partition) +
                               "]: " + rd_kafka_err2str(err));
  return std::make_pair(low, high);
}

Result<int> Consumer::PartitionCount(const std::string& topic, std::chrono::milliseconds timeout) {
  return PartitionCountVia(handle_.get(), brokers_, topic, timeout);
}

int64_t Consumer::CachedHighWatermark(const std::string& topic, int32_t partition) {
  int64_t low = -1, high = -1;
  if (rd_kafka_get_watermark_offsets(handle_.get(), topic.c_str(), partition, &low, &high) !=
      RD_KAFKA_RESP_ERR_NO_ERROR)
    return -1;
  return high;
}

std::vector<TopicPartitionOffset> Consumer::Assignment() {
  rd_kafka_topic_partition_list_t* assigned = nullptr;
  if (rd_kafka_assignment(handle_.get(), &assigned) != RD_KAFKA_RESP_ERR_NO_ERROR) return {};
  KafkaPartitionList list(assigned);
  return ToVector(list.get());
}

Status Consumer::Close() {
  if (closed_) return Status::Ok();
  closed_ = true;
  rd_kafka_resp_err_t err = rd_kafka_consumer_close(handle_.get());
  if (err) return Status::Internal(std::string("consumer close: ") + rd_kafka_err2str(err));
  return Status::Ok();
}
}  // namespace freshet
