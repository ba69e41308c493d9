// SchemaRegistry, the client, against a small registry served here (core's
// HttpServer) that answers the Confluent API's GET /schemas/ids/{id} only
// to requests with the credentials it was given: HTTP basic auth and bearer
// tokens reach the registry as configured, refused credentials make records
// wait (never dead letters), and each schema is fetched once.
#include "sources/schema_registry.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>

#include "core/http_server.h"
#include "sources/record_decoder.h"
#include "sources/wire_format.h"

namespace freshet {
namespace {

// Answers GET /schemas/ids/1 (an Avro string) to requests whose
// Authorization header is `authorization`; 401 to others, 404 for other ids.
class TestRegistry {
 public:
  explicit TestRegistry(std::string authorization) : authorization_(std::move(authorization)) {
    auto server = HttpServer::Start({}, [this](HttpRequest&& request, HttpReply reply) {
      ++requests_;
      {
        std::lock_guard lock(mu_);
        seen_ = request.Header("authorization");
      }
      if (request.Header("authorization") != authorization_)
        return reply(JsonResponse(401, {{"error_code", 401}, {"message", "Unauthorized"}}));
      if (request.path != "/schemas/ids/1")
        return reply(JsonResponse(404, {{"error_code", 40403}, {"message", "Schema not found"}}));
      reply(JsonResponse(200, {{"schema", "\"string\""}}));
    });
    EXPECT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server.value());
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }
  int requests() const { return requests_; }
  std::string seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  std::string authorization_;
  std::atomic<int> requests_{0};
  mutable std::mutex mu_;
  std::string seen_;  // the last request's Authorization header
  std::unique_ptr<HttpServer> server_;
};

TEST(SchemaRegistry, SendsBasicAuthWhenAUsernameIsSet) {
  TestRegistry registry("Basic " + std::string("YWxpY2U6czNjcmV0"));  // base64("alice:s3cret")
  SchemaRegistryConfig config;
  config.url = registry.url();
  config.username = "alice";
  config.password = "s3cret";
  SchemaRegistry client(config);
  auto schema = client.ById(1);
  ASSERT_TRUE(schema.ok()) << schema.status().ToString();
  EXPECT_EQ((*schema)->text, "\"string\"");
  EXPECT_EQ((*schema)->type, "AVRO");
  EXPECT_EQ(registry.seen(), "Basic YWxpY2U6czNjcmV0");
  // Fetched once, however often asked.
  ASSERT_TRUE(client.ById(1).ok());
  EXPECT_EQ(registry.requests(), 1);
  EXPECT_EQ(client.requests(), 1u);
}

TEST(SchemaRegistry, SendsABearerToken) {
  TestRegistry registry("Bearer tok-123");
  SchemaRegistryConfig config;
  config.url = registry.url();
  config.token = "tok-123";
  SchemaRegistry client(config);
  auto schema = client.ById(1);
  ASSERT_TRUE(schema.ok()) << schema.status().ToString();
  EXPECT_EQ(registry.seen(), "Bearer tok-123");
}

TEST(SchemaRegistry, RefusedCredentialsMakeRecordsWaitNotDeadLetters) {
  TestRegistry registry("Bearer right");
  SchemaRegistryConfig config;
  config.url = registry.url();
  config.token = "wrong";
  SchemaRegistry client(config);
  auto schema = client.ById(1);
  ASSERT_FALSE(schema.ok());
  EXPECT_EQ(schema.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(schema.status().message().find("HTTP 401"), std::string::npos) << schema.status().message();
  // A refusal is not kept: asked again, the client asks the registry again.
  (void)client.ById(1);
  EXPECT_EQ(registry.requests(), 2);
  // An id the registry does not have (with the right credentials) is the record's fault.
  config.token = "right";
  SchemaRegistry right(config);
  EXPECT_EQ(right.ById(9).status().code(), StatusCode::kNotFound);
}

// The credentials as a view definition gives them, through RecordDecoder:
// a record decodes with the right ones and waits (kUnavailable) with wrong ones.
TEST(SchemaRegistry, ViewDefinitionsCredentialsReachTheRegistry) {
  TestRegistry registry("Basic " + std::string("YWxpY2U6czNjcmV0"));
  std::string record = WireHeader(1, nullptr) + std::string(
                                                    "\x06"
                                                    "abc",
                                                    4);  // the Avro string "abc"
  RawRecord raw;
  raw.topic = "t";
  raw.value = record;
  for (const char* password : {"s3cret", "nope"}) {
    nlohmann::ordered_json source = {
        {"format", "avro"},
        {"schema_registry", {{"url", registry.url()}, {"username", "alice"}, {"password", password}}}};
    auto spec = ParseSourceSpec(&source, "source");
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    RecordDecoder decoder(*spec, false);
    SourceRecord out;
    Status st = decoder.Decode(raw, &out);
    if (std::string(password) == "s3cret") {
      ASSERT_TRUE(st.ok()) << st.ToString();
      EXPECT_EQ(out.data.get_string().value(), "abc");
    } else {
      EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
    }
  }
}

}  // namespace
}  // namespace freshet
