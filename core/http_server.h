// A small HTTP/1.1 server (Boost.Beast) with keep-alive, a body-size limit,
// and handlers that may answer later from another thread (the writer answers
// a command only after its Kafka transaction commits).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/http.h"
#include "core/status.h"
#include "core/websocket.h"

namespace freshet {

class HttpServer {
 public:
  struct Options {
    std::string listen = "127.0.0.1:0";  // port 0: any free port (see port())
    int threads = 1;
    size_t max_body_bytes = 1 << 20;  // larger bodies are answered 413
  };

  // Binds and starts serving on background threads. Fails with a message
  // naming the address when the port is taken.
  // GET requests asking for a WebSocket upgrade go to `ws_handler` when
  // one is given (to `handler` otherwise).
  static Result<std::unique_ptr<HttpServer>> Start(const Options& options, HttpHandler handler,
                                                   WebSocketHandler ws_handler = nullptr);
  ~HttpServer();  // Stops.
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const;
  // Stops accepting, closes connections and joins the threads. Idempotent.
  void Stop();

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace freshet
