#pragma once

// The kith-relay event loop: one thread, one io_context. It accepts TCP
// connections, feeds relay_core (accepted, received, closed, tick) and
// carries out its actions (send; close after flushing), serves /metrics
// and /healthz, and handles the signals that stop or restart the relay.
//
// Per connection it keeps a socket, a few counters and the bytes queued
// for that client; there is no per-connection read buffer (one shared
// buffer serves every read, since only one runs at a time), so an idle
// registered client costs a few hundred bytes here on top of the core.

#include "relay_config.hpp"

#include "kith/protocol/crypto.hpp"
#include "kith/relay/core.hpp"

#include <boost/asio/io_context.hpp>

#include <memory>
#include <optional>
#include <string>

namespace spdlog {
class logger;
}

namespace kith::relay::program {

class relay_server {
public:
  /// `cfg` must have passed validate(). Nothing happens until start().
  relay_server(boost::asio::io_context& io, const protocol::identity& self,
               const relay_config& cfg, std::string data_dir,
               std::shared_ptr<spdlog::logger> log);
  ~relay_server();
  relay_server(const relay_server&) = delete;
  relay_server& operator=(const relay_server&) = delete;

  /// Binds the relay and HTTP ports and writes <data-dir>/relay.id,
  /// http.addr and, last, relay.addr (so relay.addr appearing means the
  /// relay is ready). Returns why it could not, if it could not.
  [[nodiscard]] std::optional<std::string> start();

  /// Runs io until the relay has stopped (signals end it; see
  /// docs/operations.md). Returns the process exit code.
  int run();

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

} // namespace kith::relay::program
