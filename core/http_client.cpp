// The one translation unit that compiles Beast's client side.
#include "core/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace freshet {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

struct HttpClient::Impl {
  std::string host;
  uint16_t port;
  std::chrono::milliseconds timeout{60000};
  net::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;

  void RunToCompletion() {
    ioc.restart();
    ioc.run();
  }

  beast::error_code Connect() {
    stream.emplace(ioc);
    beast::error_code ec;
    tcp::endpoint endpoint(net::ip::make_address(host, ec), port);
    if (ec) {
      tcp::resolver resolver(ioc);
      auto results = resolver.resolve(host, std::to_string(port), ec);
      if (ec) return ec;
      stream->connect(results, ec);
    } else {
      stream->connect(endpoint, ec);
    }
    if (!ec) stream->socket().set_option(tcp::no_delay(true), ec);
    buffer.clear();
    return ec;
  }
};

HttpClient::HttpClient(std::string host, uint16_t port, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
  impl_->timeout = timeout;
}

HttpClient::~HttpClient() {
  if (impl_->stream) {
    beast::error_code ec;
    impl_->stream->socket().shutdown(tcp::socket::shutdown_both, ec);
  }
}

Result<HttpResponse> HttpClient::Request(const std::string& method, const std::string& target,
                                         const std::string& body,
                                         const std::vector<std::pair<std::string, std::string>>& headers) {
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, impl_->host + ":" + std::to_string(impl_->port));
  req.set(http::field::user_agent, "freshet-client");
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  for (const auto& [name, value] : headers) {
    if (value.empty())
      req.erase(name);  // e.g. {"Content-Type", ""}: send none
    else
      req.set(name, value);
  }
  req.keep_alive(true);
  req.body() = body;
  req.prepare_payload();

  std::string where = "http://" + impl_->host + ":" + std::to_string(impl_->port) + target;
  for (int attempt = 0; attempt < 2; ++attempt) {
    beast::error_code ec;
    bool fresh = false;
    if (!impl_->stream) {
      ec = impl_->Connect();
      if (ec) return Status::Unavailable(where + ": connect: " + ec.message());
      fresh = true;
    }
    // Beast's timeouts only apply to asynchronous operations: run them to
    // completion on this client's own io_context.
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    impl_->stream->expires_after(impl_->timeout);
    http::async_write(*impl_->stream, req, [&](beast::error_code e, std::size_t) { ec = e; });
    impl_->RunToCompletion();
    // After a failed write the server may still have answered early (413).
    beast::error_code write_ec = ec;
    if (!ec || ec == net::error::broken_pipe || ec == net::error::connection_reset) {
      impl_->stream->expires_after(impl_->timeout);
      beast::error_code read_ec;
      http::async_read(*impl_->stream, impl_->buffer, parser,
                       [&](beast::error_code e, std::size_t) { read_ec = e; });
      impl_->RunToCompletion();
      ec = read_ec;
      if (!read_ec && write_ec) ec = {};
    }
    if (ec == beast::error::timeout) {
      impl_->stream.reset();
      return Status::Timeout(where + ": no answer within " + std::to_string(impl_->timeout.count()) + " ms");
    }
    if (ec) {
      impl_->stream.reset();
      // A kept-alive connection the server closed: retry once on a new one.
      if (!fresh) continue;
      return Status::Unavailable(where + ": " + ec.message());
    }
    auto& res = parser.get();
    HttpResponse out;
    out.status = static_cast<int>(res.result_int());
    out.content_type = std::string(res[http::field::content_type]);
    out.body = std::move(res.body());
    for (const auto& field : res) {
      if (field.name() == http::field::content_type || field.name() == http::field::content_length) continue;
      out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    if (!res.keep_alive()) impl_->stream.reset();
    return out;
  }
  return Status::Unavailable(where + ": connection closed");
}

}  // namespace freshet
