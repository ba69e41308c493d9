#include "core/http.h"

#include <cctype>

namespace freshet {

int HttpStatusFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kRefused:
      return 409;
    case StatusCode::kConflict:
      return 409;
    case StatusCode::kFenced:
      return 503;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kTimeout:
      return 504;
    case StatusCode::kInternal:
      return 500;
  }
  return 500;
}

Result<std::pair<std::string, uint16_t>> ParseHostPort(const std::string& text, const std::string& field) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos)
    return Status::InvalidArgument(field + ": expected host:port, got \"" + text + "\"");
  std::string host = text.substr(0, colon);
  std::string port_text = text.substr(colon + 1);
  char* end = nullptr;
  long port = std::strtol(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end != '\0' || port < 0 || port > 65535)
    return Status::InvalidArgument(field + ": bad port in \"" + text + "\"");
  if (host.empty()) host = "127.0.0.1";
  if (host == "localhost") host = "127.0.0.1";
  return std::make_pair(host, static_cast<uint16_t>(port));
}

std::string PercentEncode(const std::string& text) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string UrlDecode(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%' && i + 2 < text.size() && std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

void SplitTarget(const std::string& target, std::string* path, std::map<std::string, std::string>* query) {
  auto q = target.find('?');
  *path = UrlDecode(target.substr(0, q));
  query->clear();
  if (q == std::string::npos) return;
  std::string rest = target.substr(q + 1);
  size_t start = 0;
  while (start <= rest.size()) {
    size_t amp = rest.find('&', start);
    std::string pair = rest.substr(start, amp == std::string::npos ? std::string::npos : amp - start);
    if (!pair.empty()) {
      auto eq = pair.find('=');
      if (eq == std::string::npos)
        (*query)[UrlDecode(pair)] = "";
      else
        (*query)[UrlDecode(pair.substr(0, eq))] = UrlDecode(pair.substr(eq + 1));
    }
    if (amp == std::string::npos) break;
    start = amp + 1;
  }
}

std::optional<HttpResponse> CheckBearerToken(const HttpRequest& req, const std::string& expected) {
  if (expected.empty()) return std::nullopt;
  std::string given;
  if (auto q = req.query.find("token"); q != req.query.end()) given = q->second;
  std::string auth = req.Header("authorization");
  if (auth.rfind("Bearer ", 0) == 0) given = auth.substr(7);
  unsigned char diff = given.size() != expected.size();
  for (size_t i = 0; i < given.size() && i < expected.size(); ++i) diff |= given[i] ^ expected[i];
  if (diff == 0) return std::nullopt;
  HttpResponse refusal = ErrorResponse(
      401, given.empty() ? "a token is required: Authorization: Bearer <token> or ?token=" : "wrong token");
  refusal.headers.push_back({"WWW-Authenticate", "Bearer"});
  return refusal;
}

std::optional<HttpResponse> CheckJsonContentType(const HttpRequest& req) {
  std::string given = req.Header("content-type");
  // The media type without its parameters (charset=...), trimmed, in lower case.
  std::string media = given.substr(0, given.find(';'));
  while (!media.empty() && (media.back() == ' ' || media.back() == '\t')) media.pop_back();
  size_t start = media.find_first_not_of(" \t");
  media = start == std::string::npos ? std::string() : media.substr(start);
  for (auto& ch : media) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (media.empty() || media == "application/json") return std::nullopt;
  HttpResponse refusal = JsonResponse(
      415, {{"error", "Content-Type " + given +
                          " is not accepted: send the body as JSON with Content-Type: "
                          "application/json (curl: -H 'Content-Type: application/json'; plain -d sends "
                          "application/x-www-form-urlencoded)"},
            {"content_type", given},
            {"accepted", "application/json"}});
  refusal.headers.push_back({"Accept-Post", "application/json"});
  return refusal;
}

}  // namespace freshet
