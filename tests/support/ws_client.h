// A small synchronous WebSocket client for tests (Boost.Beast underneath):
// connect, read the next JSON message with a deadline, send, and drop the
// connection without a close frame to simulate a network failure.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace freshet::testing {

class WsClient {
 public:
  struct Options {
    std::map<std::string, std::string> headers;
    int receive_buffer_bytes = 0;  // >0: a small SO_RCVBUF, to make a slow client
  };
  // Connects and upgrades. On a refused upgrade returns null and sets
  // *http_status and *body from the server's answer (0 if no answer).
  static std::unique_ptr<WsClient> Connect(uint16_t port, const std::string& target, const Options& options,
                                           int* http_status = nullptr, std::string* body = nullptr);
  static std::unique_ptr<WsClient> Connect(uint16_t port, const std::string& target) {
    return Connect(port, target, Options{});
  }
  ~WsClient();

  // The next text message as JSON; nullopt on timeout or once closed.
  std::optional<nlohmann::json> Next(std::chrono::milliseconds timeout);
  bool Send(const std::string& text);
  // Drops the TCP connection without a close handshake.
  void Drop();
  bool closed() const;
  // The close code the server sent (0 if none yet).
  uint16_t close_code() const;

  struct Impl;

 private:
  explicit WsClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace freshet::testing
