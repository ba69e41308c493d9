// The one translation unit that compiles Beast's WebSocket client side.
#include "core/websocket_client.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <deque>
#include <list>
#include <optional>
#include <thread>

#include "core/thread_name.h"

namespace freshet {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

namespace {

class Connection : public WebSocketClientConnection, public std::enable_shared_from_this<Connection> {
 public:
  Connection(net::io_context& ioc, WebSocketClientCallbacks callbacks)
      : resolver_(ioc), ws_(ioc), callbacks_(std::move(callbacks)) {}

  void Start(const std::string& host, uint16_t port, std::string target,
             std::vector<std::pair<std::string, std::string>> headers) {
    host_ = host + ":" + std::to_string(port);
    target_ = std::move(target);
    headers_ = std::move(headers);
    resolver_.async_resolve(
        host, std::to_string(port),
        [self = shared_from_this()](beast::error_code ec, tcp::resolver::results_type results) {
          if (ec) return self->Finish("cannot resolve " + self->host_ + ": " + ec.message());
          self->OnResolved(results);
        });
  }

  void Send(std::string message) override {
    if (finished_) return;
    outbox_.push_back(std::move(message));
    if (open_ && outbox_.size() == 1) WriteNext();
  }

  void Close() override {
    if (finished_) return;
    closing_ = true;
    beast::error_code ec;
    resolver_.cancel();
    // Shutting the socket down ends every pending operation; Finish follows.
    beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ec);
    beast::get_lowest_layer(ws_).socket().close(ec);
    if (!busy()) Finish("closed");
  }

 private:
  bool busy() const { return connecting_ || reading_ || writing_; }

  void OnResolved(const tcp::resolver::results_type& results) {
    if (closing_) return Finish("closed");
    connecting_ = true;
    beast::get_lowest_layer(ws_).expires_after(std::chrono::seconds(10));
    beast::get_lowest_layer(ws_).async_connect(
        results, [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
          if (ec) {
            self->connecting_ = false;
            return self->Finish("cannot connect to " + self->host_ + ": " + ec.message());
          }
          self->Handshake();
        });
  }

  void Handshake() {
    ws_.set_option(websocket::stream_base::decorator([headers = headers_](websocket::request_type& req) {
      for (const auto& [name, value] : headers) req.set(name, value);
    }));
    ws_.async_handshake(response_, host_, target_, [self = shared_from_this()](beast::error_code ec) {
      self->connecting_ = false;
      if (ec) {
        std::string why = "upgrade refused by " + self->host_ + ": " + ec.message();
        if (self->response_.result_int() != 0)
          why = "upgrade refused by " + self->host_ + ": HTTP " +
                std::to_string(self->response_.result_int()) + " " + self->response_.body();
        return self->Finish(why);
      }
      self->OnOpen();
    });
  }

  void OnOpen() {
    if (closing_) return Finish("closed");
    beast::get_lowest_layer(ws_).expires_never();
    // The server pings; a peer that goes silent (its host died) is dropped.
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = std::chrono::seconds(10);
    timeouts.idle_timeout = std::chrono::seconds(30);
    timeouts.keep_alive_pings = true;
    ws_.set_option(timeouts);
    ws_.read_message_max(256 << 20);
    ws_.text(true);
    open_ = true;
    if (callbacks_.on_open) callbacks_.on_open();
    if (finished_ || closing_) return;
    if (!outbox_.empty()) WriteNext();
    Read();
  }

  void Read() {
    reading_ = true;
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->reading_ = false;
      if (ec) {
        std::string why = ec == websocket::error::closed
                              ? "closed by " + self->host_ + " (" + std::to_string(self->ws_.reason().code) +
                                    " " + std::string(self->ws_.reason().reason.c_str()) + ")"
                              : "connection to " + self->host_ + " lost: " + ec.message();
        return self->Finish(why);
      }
      std::string text = beast::buffers_to_string(self->buffer_.data());
      self->buffer_.consume(self->buffer_.size());
      if (!self->closing_ && self->callbacks_.on_message) self->callbacks_.on_message(std::move(text));
      if (self->closing_ || self->finished_) return self->Finish("closed");
      self->Read();
    });
  }

  void WriteNext() {
    writing_ = true;
    ws_.async_write(
        net::buffer(outbox_.front()), [self = shared_from_this()](beast::error_code ec, std::size_t) {
          self->writing_ = false;
          if (ec)
            return self->Finish("connection to " + self->host_ + " lost while writing: " + ec.message());
          self->outbox_.pop_front();
          if (self->closing_) return self->Finish("closed");
          if (!self->outbox_.empty()) self->WriteNext();
        });
  }

  // Once every pending operation has ended, on_close runs exactly once.
  void Finish(const std::string& why) {
    if (finished_) return;
    if (!closing_) {
      closing_ = true;
      beast::error_code ec;
      beast::get_lowest_layer(ws_).socket().close(ec);
    }
    if (reason_.empty()) reason_ = why;
    if (busy()) return;
    finished_ = true;
    auto on_close = std::move(callbacks_.on_close);
    callbacks_ = {};
    if (on_close) on_close(reason_);
  }

  tcp::resolver resolver_;
  websocket::stream<beast::tcp_stream> ws_;
  WebSocketClientCallbacks callbacks_;
  websocket::response_type response_;
  beast::flat_buffer buffer_;
  std::deque<std::string> outbox_;
  std::string host_, target_, reason_;
  std::vector<std::pair<std::string, std::string>> headers_;
  bool connecting_ = false, reading_ = false, writing_ = false;
  bool open_ = false, closing_ = false, finished_ = false;
};

}  // namespace

struct WebSocketClientLoop::Impl {
  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work{ioc.get_executor()};
  std::thread thread;
  std::thread::id thread_id;
  bool stopped = false;  // on the loop's thread: no new connections or timers
  std::list<std::weak_ptr<Connection>> connections;
  std::list<std::shared_ptr<net::steady_timer>> timers;
};

WebSocketClientLoop::WebSocketClientLoop() : impl_(std::make_unique<Impl>()) {
  impl_->thread = std::thread([impl = impl_.get()] {
    SetThreadName("ws-client");
    impl->ioc.run();
  });
  impl_->thread_id = impl_->thread.get_id();
}

WebSocketClientLoop::~WebSocketClientLoop() { Stop(); }

bool WebSocketClientLoop::OnLoopThread() const { return std::this_thread::get_id() == impl_->thread_id; }

void WebSocketClientLoop::Post(std::function<void()> task) {
  net::post(impl_->ioc, [impl = impl_.get(), task = std::move(task)] {
    if (!impl->stopped) task();
  });
}

void WebSocketClientLoop::PostAfter(std::chrono::milliseconds delay, std::function<void()> task) {
  Post([impl = impl_.get(), delay, task = std::move(task)]() mutable {
    auto timer = std::make_shared<net::steady_timer>(impl->ioc, delay);
    impl->timers.push_back(timer);
    auto it = std::prev(impl->timers.end());
    timer->async_wait([impl, it, task = std::move(task)](beast::error_code ec) {
      impl->timers.erase(it);
      if (!ec && !impl->stopped) task();
    });
  });
}

std::shared_ptr<WebSocketClientConnection> WebSocketClientLoop::Connect(
    const std::string& host, uint16_t port, const std::string& target,
    std::vector<std::pair<std::string, std::string>> headers, WebSocketClientCallbacks callbacks) {
  if (impl_->stopped) return nullptr;
  auto connection = std::make_shared<Connection>(impl_->ioc, std::move(callbacks));
  impl_->connections.remove_if([](const std::weak_ptr<Connection>& c) { return c.expired(); });
  impl_->connections.push_back(connection);
  connection->Start(host, port, target, std::move(headers));
  return connection;
}

void WebSocketClientLoop::Stop() {
  if (!impl_->thread.joinable()) return;
  net::post(impl_->ioc, [impl = impl_.get()] {
    impl->stopped = true;
    for (auto& weak : impl->connections)
      if (auto c = weak.lock()) c->Close();
    for (auto& timer : impl->timers) timer->cancel();
  });
  impl_->work.reset();
  impl_->thread.join();
}

}  // namespace freshet
