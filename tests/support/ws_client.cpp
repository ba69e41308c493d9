#include "tests/support/ws_client.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

namespace freshet::testing {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

struct WsClient::Impl {
  net::io_context ioc;
  websocket::stream<beast::tcp_stream> ws{ioc};
  beast::flat_buffer buffer;
  bool reading = false;  // an async_read is outstanding
  bool done = false;     // it completed: result below
  beast::error_code read_ec;
  bool closed = false;
};

WsClient::WsClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

WsClient::~WsClient() {
  if (!impl_->closed) {
    beast::error_code ec;
    impl_->ws.next_layer().socket().close(ec);
  }
}

std::unique_ptr<WsClient> WsClient::Connect(uint16_t port, const std::string& target, const Options& options,
                                            int* http_status, std::string* body) {
  auto impl = std::make_unique<Impl>();
  beast::error_code ec;
  auto& socket = impl->ws.next_layer().socket();
  socket.open(tcp::v4(), ec);
  if (options.receive_buffer_bytes > 0)
    socket.set_option(net::socket_base::receive_buffer_size(options.receive_buffer_bytes), ec);
  socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port), ec);
  if (http_status) *http_status = 0;
  if (ec) return nullptr;
  impl->ws.set_option(
      websocket::stream_base::decorator([headers = options.headers](websocket::request_type& req) {
        for (const auto& [name, value] : headers) req.set(name, value);
      }));
  websocket::response_type response;
  impl->ws.next_layer().expires_after(std::chrono::seconds(10));
  impl->ws.handshake(response, "127.0.0.1:" + std::to_string(port), target, ec);
  impl->ws.next_layer().expires_never();
  if (http_status) *http_status = static_cast<int>(response.result_int());
  if (body) *body = response.body();
  if (ec && body && body->empty()) *body = "handshake failed: " + ec.message();
  if (ec) return nullptr;
  impl->ws.read_message_max(64 << 20);
  return std::unique_ptr<WsClient>(new WsClient(std::move(impl)));
}

std::optional<nlohmann::json> WsClient::Next(std::chrono::milliseconds timeout) {
  Impl& s = *impl_;
  if (s.closed) return std::nullopt;
  if (!s.reading) {
    s.reading = true;
    s.done = false;
    s.ws.async_read(s.buffer, [&s](beast::error_code ec, std::size_t) {
      s.done = true;
      s.read_ec = ec;
    });
  }
  s.ioc.restart();
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!s.done && std::chrono::steady_clock::now() < deadline) s.ioc.run_one_until(deadline);
  if (!s.done) return std::nullopt;  // the read stays outstanding for the next call
  s.reading = false;
  if (s.read_ec) {
    s.closed = true;
    return std::nullopt;
  }
  std::string text = beast::buffers_to_string(s.buffer.data());
  s.buffer.consume(s.buffer.size());
  return nlohmann::json::parse(text);
}

bool WsClient::Send(const std::string& text) {
  beast::error_code ec;
  impl_->ws.text(true);
  impl_->ws.write(net::buffer(text), ec);
  return !ec;
}

void WsClient::Drop() {
  beast::error_code ec;
  impl_->ws.next_layer().socket().shutdown(tcp::socket::shutdown_both, ec);
  impl_->ws.next_layer().socket().close(ec);
  impl_->closed = true;
}

bool WsClient::closed() const { return impl_->closed; }

uint16_t WsClient::close_code() const { return static_cast<uint16_t>(impl_->ws.reason().code); }

}  // namespace freshet::testing
