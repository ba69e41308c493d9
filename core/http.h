// Plain HTTP request/response values shared by the server, the client and
// every handler. No Boost here: only the two Beast translation units
// (http_server.cpp, http_client.cpp) see Beast.
#pragma once

#include <cctype>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace freshet {

struct HttpRequest {
  std::string method;                          // "GET", "POST", ...
  std::string target;                          // raw: "/views/x/rows?key=a"
  std::string path;                            // decoded path: "/views/x/rows"
  std::map<std::string, std::string> query;    // decoded query parameters
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;

  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // Extra header fields to send; on HttpClient's answers, the fields received.
  std::vector<std::pair<std::string, std::string>> headers;

  // The first field named `name` (any case), "" if none.
  std::string Header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (n.size() != name.size()) continue;
      bool same = true;
      for (size_t i = 0; i < n.size() && same; ++i)
        same = std::tolower(static_cast<unsigned char>(n[i])) ==
               std::tolower(static_cast<unsigned char>(name[i]));
      if (same) return v;
    }
    return {};
  }
};

// Sends the response; may be called from any thread, exactly once.
using HttpReply = std::function<void(HttpResponse)>;
using HttpHandler = std::function<void(HttpRequest&& request, HttpReply reply)>;

inline HttpResponse JsonResponse(int status, const nlohmann::json& body) {
  return HttpResponse{status, "application/json", body.dump() + "\n", {}};
}

// {"error": reason} with the given 4xx/5xx status.
// When `expected` is set, a request must carry it (Authorization: Bearer
// <token>, or ?token= where a client cannot set headers, e.g. a browser's
// WebSocket): otherwise the 401 to send, with a JSON reason. Compared in
// constant time.
std::optional<HttpResponse> CheckBearerToken(const HttpRequest& request, const std::string& expected);

// For endpoints that take a JSON body: empty when the request's Content-Type
// is application/json (with any parameters, e.g. charset=utf-8) or absent;
// otherwise the 415 to send, with a JSON reason. Note that `curl -d` without
// -H sends application/x-www-form-urlencoded, which is refused.
std::optional<HttpResponse> CheckJsonContentType(const HttpRequest& request);

inline HttpResponse ErrorResponse(int status, const std::string& reason) {
  return JsonResponse(status, nlohmann::json{{"error", reason}});
}

// The HTTP status that best reports a non-OK Status to a client.
int HttpStatusFor(const Status& status);

// "host:port" -> (host, port); "" host means 127.0.0.1.
Result<std::pair<std::string, uint16_t>> ParseHostPort(const std::string& text, const std::string& field);

std::string UrlDecode(const std::string& text);
// Percent-encodes everything but unreserved characters and '/', for a
// query value (a view's key "a/b" stays readable).
std::string PercentEncode(const std::string& text);

// Splits "/a/b?x=1&y=2" into decoded path and query map.
void SplitTarget(const std::string& target, std::string* path, std::map<std::string, std::string>* query);

}  // namespace freshet
