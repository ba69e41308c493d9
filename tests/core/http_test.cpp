#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "core/http_client.h"
#include "core/http_server.h"

namespace freshet {
namespace {

std::unique_ptr<HttpServer> StartEcho(size_t max_body = 1024) {
  HttpServer::Options o;
  o.max_body_bytes = max_body;
  auto server = HttpServer::Start(o, [](HttpRequest&& req, HttpReply reply) {
    if (req.path == "/slow") {
      std::thread([reply] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        reply(JsonResponse(200, {{"path", "/slow"}}));
      }).detach();
      return;
    }
    if (req.path == "/later") {
      // Answer from another thread, as the writer does after a commit.
      std::thread([reply] { reply(JsonResponse(202, {{"late", true}})); }).detach();
      return;
    }
    if (req.path == "/located") {
      HttpResponse r = JsonResponse(307, {{"moved", true}});
      r.headers.emplace_back("Location", "http://elsewhere:1/located");
      return reply(std::move(r));
    }
    reply(JsonResponse(
        200, {{"method", req.method},
              {"path", req.path},
              {"query", req.query},
              {"body", req.body},
              {"content_type", req.headers.count("content-type") ? nlohmann::json(req.Header("content-type"))
                                                                 : nlohmann::json(nullptr)}}));
  });
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  return std::move(server.value());
}

// After a refused request, the server still answers a new connection.
void ExpectStillServing(const HttpServer& server) {
  HttpClient other("127.0.0.1", server.port());
  auto ok = other.Get("/still-here");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->status, 200);
}

TEST(HttpServer, ServesKeepAliveRequestsWithDecodedQuery) {
  auto server = StartEcho();
  HttpClient client("127.0.0.1", server->port());
  for (int i = 0; i < 3; ++i) {
    auto res = client.Get("/a%20b?x=1&y=hello%2Fworld");
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    auto j = nlohmann::json::parse(res->body);
    EXPECT_EQ(j["path"], "/a b");
    EXPECT_EQ(j["query"]["y"], "hello/world");
  }
  auto post = client.Post("/p", R"({"k":1})");
  ASSERT_TRUE(post.ok());
  EXPECT_EQ(nlohmann::json::parse(post->body)["body"], R"({"k":1})");
}

TEST(HttpServer, RepliesFromAnotherThread) {
  auto server = StartEcho();
  HttpClient client("127.0.0.1", server->port());
  auto res = client.Get("/later");
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->status, 202);
}

TEST(HttpServer, OversizedBodyGets413WithJsonReason) {
  auto server = StartEcho(100);
  HttpClient client("127.0.0.1", server->port());
  // Far more than the socket buffers hold: the server must answer 413 and
  // linger instead of resetting the connection under the client's feet.
  auto res = client.Post("/p", std::string(4 << 20, 'x'));
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 413);
  EXPECT_TRUE(nlohmann::json::parse(res->body).contains("error"));
  ExpectStillServing(*server);
}

TEST(HttpServer, MalformedRequestGets400) {
  auto server = StartEcho();
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(server->port());
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  std::string garbage = "THIS IS NOT HTTP\r\n\r\n";
  ASSERT_EQ(write(fd, garbage.data(), garbage.size()), static_cast<ssize_t>(garbage.size()));
  char buf[512] = {};
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  ASSERT_GT(n, 0);
  EXPECT_NE(std::string(buf).find("400"), std::string::npos) << buf;
}

int ConnectTo(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

TEST(HttpServer, PipelinedAnswersKeepRequestOrder) {
  auto server = StartEcho();
  int fd = ConnectTo(server->port());
  std::string requests;
  for (const char* path : {"/slow", "/a", "/b"})
    requests += std::string("GET ") + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(write(fd, requests.data(), requests.size()), static_cast<ssize_t>(requests.size()));
  std::string received;
  char buf[4096];
  while (received.find("\"/b\"") == std::string::npos) {
    ssize_t n = read(fd, buf, sizeof(buf));
    ASSERT_GT(n, 0) << received;
    received.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  // /slow is answered last by the handler but must come back first.
  size_t slow = received.find("\"/slow\""), a = received.find("\"/a\""), b = received.find("\"/b\"");
  ASSERT_NE(slow, std::string::npos);
  EXPECT_LT(slow, a);
  EXPECT_LT(a, b);
}

TEST(HttpServer, PortInUseIsAClearError) {
  auto first = StartEcho();
  HttpServer::Options o;
  o.listen = "127.0.0.1:" + std::to_string(first->port());
  auto second = HttpServer::Start(o, [](HttpRequest&&, HttpReply reply) { reply(JsonResponse(200, {})); });
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find(o.listen), std::string::npos) << second.status().message();
}

// A 100 kB URL is a 414 with a JSON reason (not a generic 400), and the
// server goes on serving.
TEST(HttpServer, OverlongUrlGets414) {
  auto server = StartEcho();
  HttpClient client("127.0.0.1", server->port());
  auto res = client.Get("/views/x/rows?key=" + std::string(100 * 1024, 'k'));
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 414) << res->body;
  auto reason = nlohmann::json::parse(res->body);
  ASSERT_TRUE(reason.contains("error")) << res->body;
  EXPECT_NE(reason["error"].get<std::string>().find("URL too long"), std::string::npos) << res->body;
  ExpectStillServing(*server);
}

// Oversized header fields (a short URL) are a 431, not a 414.
TEST(HttpServer, OversizedHeaderFieldsGet431) {
  auto server = StartEcho();
  HttpClient client("127.0.0.1", server->port());
  std::vector<std::pair<std::string, std::string>> fields;
  for (int i = 0; i < 4; ++i) fields.emplace_back("X-Big-" + std::to_string(i), std::string(30 * 1024, 'h'));
  auto res = client.Request("GET", "/short", "", fields);
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 431) << res->body;
  EXPECT_TRUE(nlohmann::json::parse(res->body).contains("error"));
}

TEST(HttpClient, SendsJsonBodiesAsApplicationJsonAndCanLeaveTheTypeOut) {
  auto server = StartEcho();
  HttpClient client("127.0.0.1", server->port());
  auto typed = client.Post("/p", R"({"k":1})");
  ASSERT_TRUE(typed.ok());
  EXPECT_EQ(nlohmann::json::parse(typed->body)["content_type"], "application/json");
  auto untyped = client.Request("POST", "/p", R"({"k":1})", {{"Content-Type", ""}});
  ASSERT_TRUE(untyped.ok());
  EXPECT_TRUE(nlohmann::json::parse(untyped->body)["content_type"].is_null()) << untyped->body;
  auto form = client.Request("POST", "/p", "a=1", {{"Content-Type", "application/x-www-form-urlencoded"}});
  ASSERT_TRUE(form.ok());
  EXPECT_EQ(nlohmann::json::parse(form->body)["content_type"], "application/x-www-form-urlencoded");
}

TEST(HttpClient, AnswersCarryTheirHeaderFields) {
  auto server = StartEcho();
  HttpClient client("127.0.0.1", server->port());
  auto res = client.Get("/located");
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->status, 307);
  EXPECT_EQ(res->Header("location"), "http://elsewhere:1/located");
  EXPECT_EQ(res->Header("LOCATION"), "http://elsewhere:1/located");
  EXPECT_EQ(res->Header("server"), "freshet");
  EXPECT_EQ(res->Header("x-none"), "");
}

TEST(CheckJsonContentType, AcceptsJsonAndNoTypeRefusesOthersWith415) {
  auto with = [](const char* type) {
    HttpRequest r;
    r.method = "POST";
    if (type) r.headers["content-type"] = type;
    return CheckJsonContentType(r);
  };
  EXPECT_FALSE(with(nullptr).has_value());
  EXPECT_FALSE(with("").has_value());
  EXPECT_FALSE(with("application/json").has_value());
  EXPECT_FALSE(with("application/json; charset=utf-8").has_value());
  EXPECT_FALSE(with("Application/JSON;charset=UTF-8").has_value());
  for (const char* bad : {"application/x-www-form-urlencoded", "text/plain",
                          "multipart/form-data; boundary=x", "application/jsonx", "text/json"}) {
    auto refusal = with(bad);
    ASSERT_TRUE(refusal.has_value()) << bad;
    EXPECT_EQ(refusal->status, 415) << bad;
    EXPECT_EQ(refusal->content_type, "application/json");
    auto reason = nlohmann::json::parse(refusal->body);
    EXPECT_NE(reason["error"].get<std::string>().find("application/json"), std::string::npos)
        << refusal->body;
    EXPECT_EQ(reason["content_type"], bad);
  }
}

}  // namespace
}  // namespace freshet
