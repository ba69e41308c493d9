// DecodedRecords: decoders of one topic in one process decode each record
// once between them.
#include "sources/decoded_records.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include "sources/record_decoder.h"
#include "sources/wire_format.h"
#include "tests/sources/wire_bytes.h"

namespace freshet {
namespace {

using test_bytes::Long;

// An Avro upsert source whose registry (never asked: port 9) holds schema 1,
// a record {id: long, name: string}, and schema 2, a string for keys. The
// registry client lives while someone holds it: the test does.
struct AvroSource {
  SourceSpec spec;
  std::shared_ptr<SchemaRegistry> registry;
};
AvroSource Avro(const std::string& topic) {
  nlohmann::ordered_json source = nlohmann::ordered_json::parse(
      R"({"format": "avro", "key_format": "avro", "envelope": "upsert",
          "schema_registry": {"url": "http://127.0.0.1:9/decoded-records", "connect_timeout_ms": 200}})");
  source["topic"] = topic;
  SourceSpec spec = ParseSourceSpec(&source, "source").value();
  auto registry = SchemaRegistry::Shared(spec.schema_registry);
  registry->Preload({1,
                     "AVRO",
                     R"({"type": "record", "name": "R", "fields": [
      {"name": "id", "type": "long"}, {"name": "name", "type": "string"}]})",
                     {}});
  registry->Preload({2, "AVRO", R"("string")", {}});
  return {spec, registry};
}

struct Record {
  std::string key, value;
  RawRecord raw;
};

// Records at offsets 0.. of partition 0 of `topic`; `bad` ones truncated.
std::vector<Record> Records(const std::string& topic, int n, int bad_every = 0) {
  std::vector<Record> records(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    Record& r = records[static_cast<size_t>(i)];
    std::string name = "n" + std::to_string(i);
    r.key = WireHeader(2, nullptr);
    Long(static_cast<int64_t>(name.size()), &r.key);
    r.key += name;
    r.value = WireHeader(1, nullptr);
    Long(i, &r.value);
    Long(static_cast<int64_t>(name.size()), &r.value);
    r.value += name;
    if (bad_every && i % bad_every == 0) r.value.pop_back();
  }
  for (int i = 0; i < n; ++i) {
    Record& r = records[static_cast<size_t>(i)];
    r.raw.topic = topic;
    r.raw.partition = 0;
    r.raw.offset = i;
    r.raw.key = r.key;
    r.raw.value = r.value;
  }
  return records;
}

std::string Name(const SourceRecord& r) {
  simdjson::dom::element e;
  FieldRef name = ParseFieldRef("/name", "x").value();
  if (!FindElement(r, name, &e)) return "";
  return std::string(e.get_string().value());
}

TEST(DecodedRecords, TwoDecodersOfOneTopicDecodeEachRecordOnce) {
  AvroSource source = Avro("decoded-records-two");
  const SourceSpec& spec = source.spec;
  auto records = Records(spec.topic, 1000, 100);
  RecordDecoder a(spec, false), b(spec, false);
  int bad = 0;
  for (const Record& r : records) {
    SourceRecord ra, rb;
    Status sa = a.Decode(r.raw, &ra);
    Status sb = b.Decode(r.raw, &rb);
    ASSERT_EQ(sa.ok(), sb.ok()) << r.raw.offset;
    if (!sa.ok()) {
      // A bad record is bad for both, for the same reason, decoded once.
      EXPECT_EQ(sa.message(), sb.message());
      ++bad;
      continue;
    }
    EXPECT_EQ(Name(ra), "n" + std::to_string(r.raw.offset));
    EXPECT_EQ(Name(rb), Name(ra));
    ASSERT_TRUE(rb.key_text.has_value());
    EXPECT_EQ(*rb.key_text, Name(ra));
  }
  EXPECT_EQ(bad, 10);
  auto shared = DecodedRecords::For(spec);
  // b joined at its first record, which a had read alone: both decoded
  // that one; a, first to each of the others, decoded them for both.
  EXPECT_EQ(shared->decoded(), 1000u);
  EXPECT_EQ(shared->reused(), 999u);
}

TEST(DecodedRecords, ADecoderAloneKeepsNothing) {
  AvroSource source = Avro("decoded-records-alone");
  const SourceSpec& spec = source.spec;
  auto records = Records(spec.topic, 100);
  RecordDecoder a(spec, false);
  SourceRecord r;
  for (const Record& record : records) ASSERT_TRUE(a.Decode(record.raw, &r).ok());
  EXPECT_EQ(DecodedRecords::For(spec)->decoded(), 0u);
}

TEST(DecodedRecords, ADecoderFurtherBehindThanTheRingDecodesForItself) {
  AvroSource source = Avro("decoded-records-behind");
  const SourceSpec& spec = source.spec;
  const int n = static_cast<int>(DecodedRecords::kSlotsPerPartition) + 10;
  auto records = Records(spec.topic, n);
  RecordDecoder a(spec, false), b(spec, false);
  SourceRecord r;
  ASSERT_TRUE(b.Decode(records[0].raw, &r).ok());  // b joins (alone: nothing shared yet)
  for (const Record& record : records) ASSERT_TRUE(a.Decode(record.raw, &r).ok());
  // b starts again at offset 0: the first 10 records' slots hold newer ones now.
  for (const Record& record : records) {
    ASSERT_TRUE(b.Decode(record.raw, &r).ok());
    EXPECT_EQ(Name(r), "n" + std::to_string(record.raw.offset));
  }
  auto shared = DecodedRecords::For(spec);
  EXPECT_EQ(shared->decoded(), static_cast<uint64_t>(n) + 10);
  EXPECT_EQ(shared->reused(), static_cast<uint64_t>(n) - 10);
}

TEST(DecodedRecords, AnUnreachableRegistryIsNotKeptAsAnAnswer) {
  AvroSource source = Avro("decoded-records-unavailable");
  const SourceSpec& spec = source.spec;
  Record r = Records(spec.topic, 1)[0];
  r.value = WireHeader(77, nullptr) + "x";  // an id not preloaded, and the registry is down
  r.raw.value = r.value;
  RecordDecoder a(spec, false), b(spec, false);
  SourceRecord out;
  EXPECT_EQ(a.Decode(r.raw, &out).code(), StatusCode::kUnavailable);
  EXPECT_EQ(b.Decode(r.raw, &out).code(), StatusCode::kUnavailable);
  EXPECT_EQ(DecodedRecords::For(spec)->decoded(), 0u);
  EXPECT_EQ(DecodedRecords::For(spec)->reused(), 0u);
}

TEST(DecodedRecords, DecodersOfOtherFormatsOrTopicsShareNothing) {
  SourceSpec avro = Avro("decoded-records-other").spec;
  SourceSpec json_key = avro;
  json_key.key_format = SourceFormat::kJson;
  SourceSpec other_topic = Avro("decoded-records-other-2").spec;
  auto kept = DecodedRecords::For(avro);  // one per configuration while someone holds it
  EXPECT_NE(kept, DecodedRecords::For(json_key));
  EXPECT_NE(kept, DecodedRecords::For(other_topic));
  EXPECT_EQ(kept, DecodedRecords::For(Avro("decoded-records-other").spec));
}

// Two decoders of `spec` that see the log end where `log_end` says, both
// joined (each has read record 0) before either reads on.
struct TwoDecoders {
  TwoDecoders(const SourceSpec& spec, const std::vector<Record>& records,
              const std::function<int64_t(int32_t)>& log_end)
      : a(spec, false), b(spec, false) {
    for (RecordDecoder* d : {&a, &b}) d->ShareDecodes(log_end, {});
    SourceRecord r;
    EXPECT_TRUE(a.Decode(records[0].raw, &r).ok());
    EXPECT_TRUE(b.Decode(records[0].raw, &r).ok());
  }
  RecordDecoder a, b;
};

// Two decoders catching up on one partition, one slower than the other (as
// a RocksDB view and a Postgres view rebuilding together): they keep
// together, and each record is decoded once between them.
TEST(DecodedRecords, DecodersCatchingUpKeepTogetherAndDecodeEachRecordOnce) {
  AvroSource source = Avro("decoded-records-paced");
  const SourceSpec& spec = source.spec;
  const int n = 100000;  // six rings: without pacing the faster one leaves the slower far behind
  auto records = Records(spec.topic, n);
  TwoDecoders two(spec, records, [n](int32_t) { return int64_t{n}; });
  auto read = [&](RecordDecoder* d, bool slow, int* wrong) {
    SourceRecord out;
    for (int i = 1; i < n; ++i) {
      if (!d->Decode(records[static_cast<size_t>(i)].raw, &out).ok() || Name(out) != "n" + std::to_string(i))
        ++*wrong;
      if (slow && i % 100 == 0) std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
  };
  int wrong_a = 0, wrong_b = 0;
  std::thread fast(read, &two.a, false, &wrong_a), slow(read, &two.b, true, &wrong_b);
  fast.join();
  slow.join();
  EXPECT_EQ(wrong_a, 0);
  EXPECT_EQ(wrong_b, 0);
  auto shared = DecodedRecords::For(spec);
  EXPECT_GT(shared->waits(), 0u);
  // Once each, but for the few both came to at the same moment.
  EXPECT_LE(shared->decoded(), static_cast<uint64_t>(n) + n / 100);
  EXPECT_GE(shared->reused(), static_cast<uint64_t>(n) - n / 100);
}

// At the head of the log (live views) nobody waits for anybody: a view's
// freshness never depends on another view's store.
TEST(DecodedRecords, DecodersAtTheHeadAreNotHeldUp) {
  AvroSource source = Avro("decoded-records-head");
  const SourceSpec& spec = source.spec;
  const int n = 20000;
  auto records = Records(spec.topic, n);
  // The log ends just after every record either reads.
  std::atomic<int64_t> end{1};
  TwoDecoders two(spec, records, [&end](int32_t) { return end.load(); });  // b reads no further
  SourceRecord r;
  for (int i = 1; i < n; ++i) {
    end = i + 1;
    ASSERT_TRUE(two.a.Decode(records[static_cast<size_t>(i)].raw, &r).ok());
  }
  EXPECT_EQ(DecodedRecords::For(spec)->waits(), 0u);
}

// A decoder that stops moving (its store is down, its view stopped) holds
// the others up no longer than the stall timeout.
TEST(DecodedRecords, AStalledDecoderIsWaitedForOnlyUntilItCountsAsStalled) {
  AvroSource source = Avro("decoded-records-stalled");
  const SourceSpec& spec = source.spec;
  const int n = 20000;
  auto records = Records(spec.topic, n);
  TwoDecoders two(spec, records, [n](int32_t) { return int64_t{n}; });  // b stalls after record 0
  SourceRecord r;
  auto started = std::chrono::steady_clock::now();
  for (int i = 1; i < n; ++i) ASSERT_TRUE(two.a.Decode(records[static_cast<size_t>(i)].raw, &r).ok());
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(DecodedRecords::For(spec)->waits(), 1u);  // once: then b counts as stalled
  EXPECT_LT(waited, 10.0);
}

}  // namespace
}  // namespace freshet
