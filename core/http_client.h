// A blocking HTTP/1.1 client over one keep-alive connection (Boost.Beast).
// Used by the demo load generator, the tests and the benchmarks.
// Not thread-safe: give each thread its own client.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/http.h"
#include "core/status.h"

namespace freshet {

class HttpClient {
 public:
  // Each request must be answered within `timeout` (else kTimeout).
  HttpClient(std::string host, uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(60));
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request; reconnects once if the kept-alive connection was closed.
  // A non-2xx answer is still a successful Result: check response.status.
  // A non-empty body is sent as Content-Type: application/json unless
  // `headers` says otherwise; a header given with an empty value is not sent.
  Result<HttpResponse> Request(const std::string& method, const std::string& target,
                               const std::string& body = "",
                               const std::vector<std::pair<std::string, std::string>>& headers = {});
  Result<HttpResponse> Get(const std::string& target) { return Request("GET", target); }
  Result<HttpResponse> Post(const std::string& target, const std::string& body) {
    return Request("POST", target, body);
  }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace freshet
