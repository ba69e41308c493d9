// TransactionalProducer and Producer (core/kafka.h).
#include "core/kafka.h"
#include "core/kafka_client.h"

namespace freshet {
namespace {

using KafkaHeaders = std::unique_ptr<rd_kafka_headers_t, KafkaDestroy<rd_kafka_headers_destroy>>;

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

KafkaHeaders MakeHeaders(const std::vector<KafkaHeader>& headers) {
  if (headers.empty()) return nullptr;
  KafkaHeaders out(rd_kafka_headers_new(headers.size()));
  for (const auto& h : headers)
    rd_kafka_header_add(out.get(), h.name.data(), static_cast<ssize_t>(h.name.size()), h.value.data(),
                        static_cast<ssize_t>(h.value.size()));
  return out;
}

// Queues one message, waiting for room while librdkafka's local queue is
// full.
rd_kafka_resp_err_t ProduceOne(rd_kafka_t* rk, const OutgoingMessage& message, void* opaque) {
  KafkaHeaders headers = MakeHeaders(message.headers);
  rd_kafka_resp_err_t err;
  for (;;) {
    err = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(message.topic.c_str()),
        RD_KAFKA_V_PARTITION(message.partition < 0 ? RD_KAFKA_PARTITION_UA : message.partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(message.null_key ? nullptr : message.key.data(),
                       message.null_key ? 0 : message.key.size()),
        RD_KAFKA_V_VALUE(message.null_value ? nullptr : const_cast<char*>(message.value.data()),
                         message.null_value ? 0 : message.value.size()),
        RD_KAFKA_V_HEADERS(headers.get()), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
    rd_kafka_poll(rk, 10);  // deliveries make room
  }
  if (!err) (void)headers.release();  // the queued message owns them now; on failure they stay ours
  return err;
}

}  // namespace

// ---- TransactionalProducer -------------------------------------------------

Result<std::unique_ptr<TransactionalProducer>> TransactionalProducer::Create(
    const KafkaClientOptions& options, const std::string& transactional_id) {
  auto conf = MakeKafkaConf(options, {{"transactional.id", transactional_id},
                                      {"enable.idempotence", "true"},
                                      {"acks", "all"},
                                      {"linger.ms", "1"}});
  if (!conf.ok()) return conf.status();
  rd_kafka_conf_set_dr_msg_cb(conf->get(), &OnDelivery);
  auto handle = NewKafkaHandle(RD_KAFKA_PRODUCER, std::move(conf.value()));
  if (!handle.ok()) return handle.status();
  return std::unique_ptr<TransactionalProducer>(
      new TransactionalProducer(std::move(handle.value()), transactional_id));
}

TransactionalProducer::~TransactionalProducer() = default;

Status TransactionalProducer::TxnCall(const char* what, rd_kafka_error_t* error) {
  if (!error) return Status::Ok();
  KafkaError owned(error);
  std::string msg =
      std::string(what) + " (transactional.id " + transactional_id_ + "): " + rd_kafka_error_string(error);
  rd_kafka_resp_err_t code = rd_kafka_error_code(error);
  if (rd_kafka_error_is_fatal(error) || IsFencedCode(code)) {
    // Fatal errors other than fencing also end this producer's life; the
    // caller treats them alike: destroy it and stop serving.
    return Status::Fenced(msg);
  }
  if (rd_kafka_error_txn_requires_abort(error))
    return Status::Conflict(msg + " (transaction must be aborted)");
  if (rd_kafka_error_is_retriable(error) || code == RD_KAFKA_RESP_ERR__TIMED_OUT)
    return Status::Unavailable(msg);
  return Status::Internal(msg);
}

Status TransactionalProducer::InitTransactions(std::chrono::milliseconds timeout) {
  return TxnCall("init_transactions",
                 rd_kafka_init_transactions(handle_.get(), static_cast<int>(timeout.count())));
}

Status TransactionalProducer::LearnTopics(const std::vector<std::string>& topics,
                                          std::chrono::milliseconds timeout) {
  for (const std::string& name : topics) {
    // The topic object is kept: librdkafka then keeps its metadata (learnt
    // by the request below) current for the producer's life.
    KafkaTopic topic(rd_kafka_topic_new(handle_.get(), name.c_str(), nullptr));
    if (!topic)
      return Status::InvalidArgument("topic " + name + ": " + rd_kafka_err2str(rd_kafka_last_error()));
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t err =
        rd_kafka_metadata(handle_.get(), 0, topic.get(), &md, static_cast<int>(timeout.count()));
    KafkaMetadata owned(md);
    topics_.push_back(std::move(topic));
    if (err) return Status::Unavailable("metadata of topic " + name + ": " + rd_kafka_err2str(err));
  }
  return Status::Ok();
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
  return Status::Unavailable(std::string("flush (transactional.id ") + transactional_id_ +
                             "): " + rd_kafka_err2str(err));
}

Status TransactionalProducer::Commit(std::chrono::milliseconds timeout) {
  Status st = TxnCall("commit_transaction",
                      rd_kafka_commit_transaction(handle_.get(), static_cast<int>(timeout.count())));
  rd_kafka_poll(handle_.get(), 0);  // serve any delivery report not yet served
  return st;
}

Status TransactionalProducer::Abort(std::chrono::milliseconds timeout) {
  // librdkafka#4849 (open upstream; not reproduced on loopback by
  // bench/librdkafka-quirks on 2.0.2 or 2.8.0): EndTxn(abort) may overtake
  // the AddPartitionsToTxn of a produce still in flight and fail fatally
  // with INVALID_TXN_STATE. A delivered message proves its partition is
  // registered, so flush first; the flushed messages are aborted with the
  // rest.
  rd_kafka_flush(handle_.get(), static_cast<int>(timeout.count()));
  Status st = TxnCall("abort_transaction",
                      rd_kafka_abort_transaction(handle_.get(), static_cast<int>(timeout.count())));
  rd_kafka_poll(handle_.get(), 0);
  return st;
}

// ---- Producer ---------------------------------------------------------------------

Result<std::unique_ptr<Producer>> Producer::Create(const KafkaClientOptions& options) {
  auto conf = MakeKafkaConf(options, {{"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "5"}});
  if (!conf.ok()) return conf.status();
  auto handle = NewKafkaHandle(RD_KAFKA_PRODUCER, std::move(conf.value()));
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

}  // namespace freshet
