// Server-side WebSocket connections, as handlers see them. No Boost here:
// the Beast code lives in http_server.cpp, the one server translation unit.
//
// A GET with `Upgrade: websocket` goes to the server's WebSocketHandler,
// which either refuses it with a plain HTTP response (4xx with a JSON
// reason, before the handshake) or accepts it with callbacks. Messages are
// text frames; the connection pings an idle peer and closes a dead one.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/http.h"

namespace freshet {

// Close codes (RFC 6455).
inline constexpr uint16_t kCloseNormal = 1000;
inline constexpr uint16_t kCloseGoingAway = 1001;
inline constexpr uint16_t kClosePolicy = 1008;
inline constexpr uint16_t kCloseTooBig = 1009;
inline constexpr uint16_t kCloseServerError = 1011;

// One accepted connection. Thread-safe: Send and Close may be called from
// any thread; sends are written in order, one at a time.
class WebSocket {
 public:
  virtual ~WebSocket() = default;
  // Queues a text message. Never blocks; callers bound what they queue by
  // looking at queued() (see the change feed's backpressure).
  virtual void Send(std::shared_ptr<const std::string> message) = 0;
  void Send(std::string message) { Send(std::make_shared<const std::string>(std::move(message))); }
  // Messages queued and not yet written to the socket.
  virtual size_t queued() const = 0;
  // Sends a close frame after what is queued; idempotent.
  virtual void Close(uint16_t code, const std::string& reason) = 0;
  virtual bool closed() const = 0;
  // The peer's address, for logs.
  virtual std::string peer() const = 0;
};

struct WebSocketCallbacks {
  // After the handshake, on an I/O thread.
  std::function<void()> on_open;
  // One whole text message from the client.
  std::function<void(std::string message)> on_message;
  // The send queue became empty: room for more (backpressure).
  std::function<void()> on_drained;
  // Exactly once, when the connection is gone (closed by either side or
  // broken). No callback runs after it.
  std::function<void()> on_close;
};

// What a handler answers to an upgrade request: callbacks to accept it, or
// an HTTP response to refuse it.
struct WebSocketAccept {
  std::optional<HttpResponse> refusal;
  WebSocketCallbacks callbacks;
  static WebSocketAccept Refuse(HttpResponse response) {
    WebSocketAccept a;
    a.refusal = std::move(response);
    return a;
  }
};

// Called on an I/O thread; `socket` is the connection the callbacks will
// belong to (already usable: sends queue until the handshake is done).
using WebSocketHandler =
    std::function<WebSocketAccept(const HttpRequest& request, std::shared_ptr<WebSocket> socket)>;

// Largest message a client may send; a bigger one closes with 1009.
inline constexpr size_t kMaxWebSocketMessage = 64 * 1024;

}  // namespace freshet
