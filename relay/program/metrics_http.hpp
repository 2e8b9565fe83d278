#pragma once

// The relay's small HTTP side door for operators: GET /metrics and
// GET /healthz, one request per connection (Boost.Beast). It runs on the
// relay's event loop and answers from a callback, so it never touches the
// relay core from another thread. Bind it to loopback or a private
// address: it has no authentication.

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

namespace kith::relay::program {

struct http_answer {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class metrics_http {
public:
  /// Called on the event loop for each complete request.
  using handler = std::function<http_answer(std::string_view method, std::string_view target)>;

  metrics_http(boost::asio::io_context& io, handler h);
  ~metrics_http();
  metrics_http(const metrics_http&) = delete;
  metrics_http& operator=(const metrics_http&) = delete;

  /// Binds and starts accepting; the bound port, or why it failed.
  [[nodiscard]] std::variant<std::uint16_t, std::string> listen(const std::string& host,
                                                                std::uint16_t port);
  /// Stops accepting and drops the requests in progress.
  void stop();

  struct state;

private:
  std::shared_ptr<state> state_;
};

} // namespace kith::relay::program
