// Outgoing WebSocket connections on one event-loop thread (Boost.Beast
// underneath, kept in websocket_client.cpp).
//
// A view process forwards feeds from the other processes that share a view
// (live/feed_relay.h): many connections, each mostly idle, so they share one
// thread instead of having one each. Everything a connection does (its
// callbacks, Send, Close) happens on the loop's thread; other threads hand
// work to it with Post.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace freshet {

struct WebSocketClientCallbacks {
  // The handshake succeeded.
  std::function<void()> on_open;
  // One whole text message from the server.
  std::function<void(std::string message)> on_message;
  // Exactly once, when the connection is gone or never came up: why (for a
  // refused upgrade, the HTTP status and body). Nothing runs after it.
  std::function<void(std::string reason)> on_close;
};

// One outgoing connection. Use only on the loop's thread.
class WebSocketClientConnection {
 public:
  virtual ~WebSocketClientConnection() = default;
  virtual void Send(std::string message) = 0;
  // Closes the connection; on_close still runs (once).
  virtual void Close() = 0;
};

class WebSocketClientLoop {
 public:
  WebSocketClientLoop();   // starts the thread
  ~WebSocketClientLoop();  // Stop()
  WebSocketClientLoop(const WebSocketClientLoop&) = delete;
  WebSocketClientLoop& operator=(const WebSocketClientLoop&) = delete;

  // Runs `task` on the loop's thread (dropped once stopped).
  void Post(std::function<void()> task);
  // Runs `task` on the loop's thread after `delay`.
  void PostAfter(std::chrono::milliseconds delay, std::function<void()> task);
  // Connects to host:port and upgrades with GET `target`. Call on the loop's
  // thread; the callbacks run there.
  std::shared_ptr<WebSocketClientConnection> Connect(const std::string& host, uint16_t port,
                                                     const std::string& target,
                                                     std::vector<std::pair<std::string, std::string>> headers,
                                                     WebSocketClientCallbacks callbacks);
  bool OnLoopThread() const;
  // Closes every connection (their on_close runs) and joins the thread.
  // Idempotent.
  void Stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace freshet
