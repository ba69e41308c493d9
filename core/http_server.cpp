// The one translation unit that compiles Beast's server side.
#include "core/http_server.h"

#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <deque>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include "core/thread_name.h"

namespace freshet {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

namespace {

constexpr auto kIdleTimeout = std::chrono::seconds(120);

// One upgraded connection. Everything runs on the connection's strand; Send
// and Close hop onto it. Messages are written one at a time, in order.
class WebSocketSession : public WebSocket, public std::enable_shared_from_this<WebSocketSession> {
 public:
  explicit WebSocketSession(net::any_io_executor strand, std::string peer)
      : strand_(std::move(strand)), peer_(std::move(peer)) {}

  void Start(beast::tcp_stream&& stream, http::request<http::string_body>&& request,
             WebSocketCallbacks callbacks) {
    callbacks_ = std::move(callbacks);
    stream.expires_never();  // the websocket stream has its own timeouts
    // A small kernel send buffer: a client that stops reading soon makes
    // our writes wait, so backpressure starts here instead of after
    // megabytes of kernel memory per client.
    beast::error_code ec;
    stream.socket().set_option(net::socket_base::send_buffer_size(128 * 1024), ec);
    ws_.emplace(std::move(stream));
    // Pings an idle peer and drops one that stays silent: heartbeats
    // without application messages.
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = std::chrono::seconds(10);
    timeouts.idle_timeout = std::chrono::seconds(30);
    timeouts.keep_alive_pings = true;
    ws_->set_option(timeouts);
    ws_->set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "freshet"); }));
    ws_->read_message_max(kMaxWebSocketMessage);
    ws_->text(true);
    auto req = std::make_shared<http::request<http::string_body>>(std::move(request));
    ws_->async_accept(*req, [self = shared_from_this(), req](beast::error_code ec) { self->OnAccept(ec); });
  }

  void Send(std::shared_ptr<const std::string> message) override {
    if (closed_.load()) return;
    ++queued_;
    net::post(strand_, [self = shared_from_this(), message = std::move(message)]() mutable {
      if (self->finished_) return;
      self->queue_.push_back(std::move(message));
      self->WriteNext();
    });
  }

  size_t queued() const override { return queued_.load(); }

  void Close(uint16_t code, const std::string& reason) override {
    net::post(strand_, [self = shared_from_this(), code, reason] {
      if (self->finished_ || self->close_code_) return;
      self->close_code_ = code;
      self->close_reason_ = reason;
      self->WriteNext();
    });
  }

  bool closed() const override { return closed_.load(); }
  std::string peer() const override { return peer_; }

 private:
  void OnAccept(beast::error_code ec) {
    if (ec) return Finish();
    open_ = true;
    if (callbacks_.on_open) callbacks_.on_open();
    Read();
    WriteNext();
  }

  void Read() {
    ws_->async_read(read_buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->Finish();  // closed by the peer, timed out, too big (Beast sends 1009) or broken
      std::string message = beast::buffers_to_string(self->read_buffer_.data());
      self->read_buffer_.consume(self->read_buffer_.size());
      if (self->callbacks_.on_message && !self->close_code_) self->callbacks_.on_message(std::move(message));
      self->Read();
    });
  }

  void WriteNext() {
    if (!open_ || writing_ || finished_) return;
    if (queue_.empty()) {
      if (close_code_ && !closing_) {
        closing_ = true;
        ws_->async_close(
            websocket::close_reason(static_cast<websocket::close_code>(*close_code_), close_reason_),
            [self = shared_from_this()](beast::error_code) {
              // The read loop ends when the peer answers the close.
            });
      }
      return;
    }
    writing_ = true;
    ws_->async_write(net::buffer(*queue_.front()),
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       self->writing_ = false;
                       if (self->finished_)
                         return;  // Finish() already dropped the queue, this message included
                       self->queue_.pop_front();
                       --self->queued_;
                       if (ec) return self->Finish();
                       if (self->queue_.empty() && self->callbacks_.on_drained && !self->close_code_)
                         self->callbacks_.on_drained();
                       self->WriteNext();
                     });
  }

  void Finish() {
    if (finished_) return;
    finished_ = true;
    closed_ = true;
    queued_ -= queue_.size();
    queue_.clear();
    // Dropping the callbacks breaks the cycle socket -> callbacks -> owner -> socket.
    WebSocketCallbacks callbacks = std::move(callbacks_);
    callbacks_ = {};
    if (callbacks.on_close) callbacks.on_close();
  }

  net::any_io_executor strand_;
  std::string peer_;
  std::optional<websocket::stream<beast::tcp_stream>> ws_;
  WebSocketCallbacks callbacks_;
  beast::flat_buffer read_buffer_;
  std::deque<std::shared_ptr<const std::string>> queue_;
  std::atomic<size_t> queued_{0};
  std::atomic<bool> closed_{false};
  std::optional<uint16_t> close_code_;
  std::string close_reason_;
  bool open_ = false;
  bool writing_ = false;
  bool closing_ = false;
  bool finished_ = false;
};

// One connection. Requests may be pipelined: up to kMaxPipelined are read
// and handed to the handler before their answers are written, and answers
// go out in request order whatever order the handler produces them in.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket&& socket, const HttpHandler& handler, const WebSocketHandler& ws_handler,
              size_t max_body)
      : stream_(std::move(socket)), handler_(handler), ws_handler_(ws_handler), max_body_(max_body) {}

  void Run() {
    net::dispatch(stream_.get_executor(), beast::bind_front_handler(&HttpSession::Read, shared_from_this()));
  }

 private:
  static constexpr size_t kMaxPipelined = 128;
  static constexpr std::uint32_t kHeaderLimit = 64 * 1024;  // request line and header fields

  void Read() {
    reading_ = true;
    parser_.emplace();
    parser_->body_limit(max_body_);
    parser_->header_limit(kHeaderLimit);
    stream_.expires_after(kIdleTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&HttpSession::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t) {
    reading_ = false;
    if (ec == http::error::end_of_stream || ec == net::error::operation_aborted ||
        ec == beast::error::timeout || ec == net::error::connection_reset || ec == net::error::eof) {
      done_reading_ = true;
      return MaybeClose();
    }
    if (ec) {
      // Answer, then close: the rest of the stream cannot be trusted.
      done_reading_ = true;
      linger_ = true;
      size_t seq = Enqueue(/*keep_alive=*/false);
      if (ec == http::error::body_limit)
        return SetResponse(
            seq, ErrorResponse(413, "request body larger than " + std::to_string(max_body_) + " bytes"));
      if (ec == http::error::header_limit) {
        // Beast's parser takes the head whole, so the bytes are still in
        // the buffer: without a line end, the request line (the URL) alone
        // is too long.
        auto data = buffer_.data();
        std::string_view head(static_cast<const char*>(data.data()), data.size());
        if (head.find("\r\n") == std::string_view::npos)
          return SetResponse(seq,
                             ErrorResponse(414, "URL too long: the request line and header fields may hold " +
                                                    std::to_string(kHeaderLimit) + " bytes"));
        return SetResponse(seq, ErrorResponse(431, "request header fields larger than " +
                                                       std::to_string(kHeaderLimit) + " bytes"));
      }
      return SetResponse(seq, ErrorResponse(400, std::string("malformed HTTP request: ") + ec.message()));
    }
    auto& req = parser_->get();
    bool keep_alive = req.keep_alive();
    HttpRequest request;
    request.method = std::string(req.method_string());
    request.target = std::string(req.target());
    SplitTarget(request.target, &request.path, &request.query);
    for (const auto& field : req) {
      std::string name(field.name_string());
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      request.headers[name] = std::string(field.value());
    }
    request.body = std::move(req.body());
    if (websocket::is_upgrade(req) && ws_handler_ && pending_.empty()) return Upgrade(std::move(request));
    size_t seq = Enqueue(keep_alive);
    if (!keep_alive) done_reading_ = true;

    // The reply may come from any thread: hop back onto this session's strand.
    auto self = shared_from_this();
    auto replied = std::make_shared<std::atomic<bool>>(false);
    HttpReply reply = [self, replied, seq](HttpResponse response) {
      if (replied->exchange(true)) return;
      net::post(self->stream_.get_executor(), [self, seq, response = std::move(response)]() mutable {
        self->SetResponse(seq, std::move(response));
      });
    };
    try {
      handler_(std::move(request), reply);
    } catch (const std::exception& e) {
      spdlog::error("http handler threw: {}", e.what());
      reply(ErrorResponse(500, std::string("internal error: ") + e.what()));
    }
    if (!done_reading_ && pending_.size() < kMaxPipelined) Read();
  }

  // Hands the connection to a WebSocket session, or answers the refusal.
  void Upgrade(HttpRequest&& request) {
    beast::error_code ec;
    auto endpoint = stream_.socket().remote_endpoint(ec);
    auto socket = std::make_shared<WebSocketSession>(
        stream_.get_executor(),
        ec ? std::string("?") : endpoint.address().to_string() + ":" + std::to_string(endpoint.port()));
    WebSocketAccept accept;
    try {
      accept = ws_handler_(request, socket);
    } catch (const std::exception& e) {
      spdlog::error("websocket handler threw: {}", e.what());
      accept = WebSocketAccept::Refuse(ErrorResponse(500, std::string("internal error: ") + e.what()));
    }
    if (accept.refusal) {
      done_reading_ = true;
      size_t seq = Enqueue(/*keep_alive=*/false);
      return SetResponse(seq, std::move(*accept.refusal));
    }
    done_reading_ = true;
    socket->Start(std::move(stream_), parser_->release(), std::move(accept.callbacks));
  }

  // Reserves the next place in the answer order.
  size_t Enqueue(bool keep_alive) {
    pending_.push_back(Pending{std::nullopt, keep_alive});
    return first_seq_ + pending_.size() - 1;
  }

  void SetResponse(size_t seq, HttpResponse response) {
    pending_[seq - first_seq_].response = std::move(response);
    WriteNext();
  }

  void WriteNext() {
    if (writing_ || pending_.empty() || !pending_.front().response) return;
    writing_ = true;
    Pending& next = pending_.front();
    HttpResponse& response = *next.response;
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(11);
    res->result(static_cast<http::status>(response.status));
    res->set(http::field::server, "freshet");
    res->set(http::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) res->set(name, value);
    res->keep_alive(next.keep_alive);
    res->body() = std::move(response.body);
    res->prepare_payload();
    stream_.expires_after(kIdleTimeout);
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
      self->OnWrite(ec, res->keep_alive());
    });
  }

  void OnWrite(beast::error_code ec, bool keep_alive) {
    writing_ = false;
    pending_.pop_front();
    ++first_seq_;
    if (ec) return Close();
    if (!keep_alive) {
      done_reading_ = true;
      return linger_ ? Linger() : Close();
    }
    if (!done_reading_ && !reading_ && pending_.size() < kMaxPipelined) Read();
    WriteNext();
    MaybeClose();
  }

  void MaybeClose() {
    if (done_reading_ && pending_.empty() && !writing_) Close();
  }

  // After answering a request we did not read whole (413, 400), stop sending
  // but keep reading and discarding for a while: closing with unread data
  // would reset the connection and the client would lose our answer.
  void Linger() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(std::chrono::seconds(5));
    DrainSome(64 << 20);
  }

  void DrainSome(size_t budget) {
    auto buffer = std::make_shared<std::array<char, 64 * 1024>>();
    stream_.async_read_some(net::buffer(*buffer),
                            [self = shared_from_this(), buffer, budget](beast::error_code ec, std::size_t n) {
                              if (ec || n >= budget) return;  // EOF, timeout or enough: the socket closes
                              self->DrainSome(budget - n);
                            });
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  struct Pending {
    std::optional<HttpResponse> response;  // empty until the handler answers
    bool keep_alive = true;
  };

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  const HttpHandler& handler_;
  const WebSocketHandler& ws_handler_;
  size_t max_body_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::deque<Pending> pending_;  // answers owed, in request order
  size_t first_seq_ = 0;         // sequence number of pending_.front()
  bool reading_ = false;
  bool writing_ = false;
  bool done_reading_ = false;
  bool linger_ = false;
};

}  // namespace

struct HttpServer::Impl {
  explicit Impl(int threads) : ioc(threads), acceptor(net::make_strand(ioc)) {}

  void Accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (ec) {
        if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
        spdlog::warn("http accept: {}", ec.message());
      } else {
        socket.set_option(tcp::no_delay(true), ec);
        std::make_shared<HttpSession>(std::move(socket), handler, ws_handler, max_body)->Run();
      }
      Accept();
    });
  }

  net::io_context ioc;
  tcp::acceptor acceptor;
  HttpHandler handler;
  WebSocketHandler ws_handler;
  size_t max_body = 0;
  std::vector<std::thread> threads;
  std::atomic<bool> stopped{false};
};

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const Options& options, HttpHandler handler,
                                                      WebSocketHandler ws_handler) {
  auto hp = ParseHostPort(options.listen, "listen");
  if (!hp.ok()) return hp.status();
  auto impl = std::make_unique<Impl>(options.threads);
  impl->handler = std::move(handler);
  impl->ws_handler = std::move(ws_handler);
  impl->max_body = options.max_body_bytes;
  beast::error_code ec;
  auto address = net::ip::make_address(hp->first, ec);
  if (ec) return Status::InvalidArgument("listen " + options.listen + ": bad address: " + ec.message());
  tcp::endpoint endpoint(address, hp->second);
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return Status::Unavailable("listen " + options.listen + ": " + ec.message());
  impl->Accept();
  for (int i = 0; i < options.threads; ++i)
    impl->threads.emplace_back([ioc = &impl->ioc] {
      SetThreadName("http-io");
      ioc->run();
    });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

uint16_t HttpServer::port() const { return impl_->acceptor.local_endpoint().port(); }

void HttpServer::Stop() {
  if (!impl_ || impl_->stopped.exchange(true)) return;
  net::post(impl_->acceptor.get_executor(), [impl = impl_.get()] {
    beast::error_code ec;
    impl->acceptor.close(ec);
  });
  impl_->ioc.stop();
  for (auto& t : impl_->threads)
    if (t.joinable()) t.join();
}

}  // namespace freshet
