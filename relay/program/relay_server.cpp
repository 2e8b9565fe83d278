#include "relay_server.hpp"

#include "identity_file.hpp"
#include "metrics_http.hpp"
#include "process_stats.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <spdlog/spdlog.h>

#include <sodium.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#ifndef KITH_VERSION
#define KITH_VERSION "unknown"
#endif

namespace kith::relay::program {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;
using error_code = boost::system::error_code;

namespace {

/// The core's clock: unix ms, the time records' expiries are written in.
std::uint64_t unix_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// Why these numbers: docs/operations.md, "Connections and backpressure".
constexpr std::size_t read_chunk = 64u << 10;      // shared by every connection
constexpr int reads_per_wakeup = 4;                // then let the others run
constexpr auto close_grace = std::chrono::seconds(5);   // flush + wait for the client's FIN
constexpr auto stall_timeout = std::chrono::seconds(30); // bytes queued, none taken
constexpr auto finish_grace = std::chrono::seconds(2);  // goodbyes on the way out
constexpr auto max_sleep = std::chrono::seconds(1);
constexpr auto accept_backoff = std::chrono::milliseconds(100);

std::string ip_text(const asio::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).to_string();
  return a.to_string();
}

std::string endpoint_text(const tcp::endpoint& ep) {
  const auto a = ep.address();
  const bool v6 = a.is_v6() && !a.to_v6().is_v4_mapped();
  return (v6 ? "[" + a.to_string() + "]" : ip_text(a)) + ":" + std::to_string(ep.port());
}

const char* signal_name(int sig) {
  switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    default: return "signal";
  }
}

std::string read_small_file(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

} // namespace

struct relay_server::impl {
  enum class phase : std::uint8_t {
    open,      // the core knows it
    closing,   // the core closed it: flushing what is queued
    lingering, // flushed and half-closed: reading until the client's FIN
  };

  /// One client connection. Small on purpose (see the header).
  struct connection {
    connection(conn_id i, tcp::socket s) : id(i), sock(std::move(s)) {}
    conn_id id;
    tcp::socket sock;
    std::string ip;
    std::string queued;      // not yet handed to the socket
    std::string writing;     // the batch being written
    std::size_t written = 0; // bytes of `writing` already written
    std::uint64_t opened_ms = 0;
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    steady::time_point progress{}; // last write progress while bytes are pending
    steady::time_point deadline{}; // closing/lingering: when to give up
    std::vector<conn_id> waiters;  // connections whose reads wait for this queue to drain
    conn_id blocked_on = 0;        // reads paused until that connection drains
    phase ph = phase::open;
    bool read_pending = false;
    bool write_pending = false;
    bool doomed = false;

    [[nodiscard]] std::size_t pending() const {
      return queued.size() + writing.size() - written;
    }
  };
  using conn_ptr = std::shared_ptr<connection>;

  impl(asio::io_context& i, const protocol::identity& self, const relay_config& c, std::string dir,
       std::shared_ptr<spdlog::logger> l)
      : io(i), cfg(c), data_dir(std::move(dir)), log(std::move(l)), self_id(self.pub()),
        core(self, c.limits, fresh_seed()), acceptor(i), wake(i), accept_retry(i),
        signals(i, SIGINT, SIGTERM, SIGHUP), rbuf(read_chunk),
        high_water(std::min<std::size_t>(c.max_queued_bytes / 2,
                                         std::max<std::size_t>(c.max_queued_bytes / 8, 64u << 10))) {}

  static protocol::key_seed fresh_seed() {
    // The core is deterministic given its seed; the program draws the seed.
    protocol::ensure_sodium();
    protocol::key_seed s{};
    randombytes_buf(s.data(), s.size());
    return s;
  }

  asio::io_context& io;
  relay_config cfg;
  std::string data_dir;
  std::shared_ptr<spdlog::logger> log;
  protocol::public_key self_id;
  relay_core core;
  tcp::acceptor acceptor;
  asio::steady_timer wake;
  asio::steady_timer accept_retry;
  asio::signal_set signals;
  std::unique_ptr<metrics_http> http;
  std::vector<char> rbuf;
  const std::size_t high_water;

  std::unordered_map<conn_id, conn_ptr> conns;
  std::unordered_set<conn_id> writers;                   // with bytes pending
  std::vector<conn_id> closing;                          // closing or lingering
  std::vector<std::pair<conn_id, std::string>> doomed;   // slow readers, closed after the batch
  conn_id next_id = 1;
  conn_id feeding = 0; // whose bytes the core is handling right now

  bool wake_armed = false;
  steady::time_point wake_at{};
  bool draining = false;  // SIGTERM/SIGHUP: no accepts, clients told to reconnect
  bool finishing = false; // goodbyes sent; exiting once flushed
  bool stopped = false;
  steady::time_point drain_deadline{};
  steady::time_point finish_deadline{};

  std::string relay_addr_text;
  std::string http_addr_text;
  const steady::time_point started = steady::now();
  const double start_unix_s = static_cast<double>(unix_ms()) / 1000.0;
  std::uint64_t slow_closes = 0;
  std::uint64_t accept_errors = 0;
  steady::time_point last_accept_error_log{};

  std::string file(const char* name) const { return data_dir + "/" + name; }

  // --- start and stop ------------------------------------------------------------------

  std::optional<std::string> start() {
    std::error_code fec;
    std::filesystem::remove(file("relay.addr"), fec); // stale, from a crash
    std::filesystem::remove(file("http.addr"), fec);

    const auto hp = parse_host_port(cfg.listen);
    if (!hp)
      return "listen address '" + cfg.listen + "' is not IP:port";
    error_code ec;
    const tcp::endpoint ep(asio::ip::make_address(hp->first, ec), hp->second);
    acceptor.open(ep.protocol(), ec);
    if (!ec)
      acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec)
      acceptor.bind(ep, ec);
    if (!ec)
      acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      return "cannot listen on " + cfg.listen + ": " + ec.message();
    relay_addr_text = endpoint_text(acceptor.local_endpoint(ec));

    if (!cfg.http.empty()) {
      const auto hh = parse_host_port(cfg.http);
      if (!hh)
        return "http address '" + cfg.http + "' is not IP:port";
      http = std::make_unique<metrics_http>(
          io, [this](std::string_view m, std::string_view t) { return answer(m, t); });
      auto r = http->listen(hh->first, hh->second);
      if (auto* err = std::get_if<std::string>(&r))
        return *err;
      const auto a = asio::ip::make_address(hh->first, ec);
      http_addr_text = endpoint_text(tcp::endpoint(a, std::get<std::uint16_t>(r)));
    }

    check_fd_limit();

    // relay.addr last: once it exists, the relay answers.
    if (!write_atomic(file("relay.id"), protocol::to_text(self_id) + "\n") ||
        (!http_addr_text.empty() && !write_atomic(file("http.addr"), http_addr_text + "\n")) ||
        !write_atomic(file("relay.addr"), relay_addr_text + "\n"))
      return "cannot write the address files in " + data_dir;

    wait_signal();
    accept();
    schedule();
    log->info("relay {} listening on {}{}", protocol::to_text(self_id), relay_addr_text,
              http_addr_text.empty() ? std::string("; no HTTP")
                                     : "; metrics on http://" + http_addr_text + "/metrics");
    return std::nullopt;
  }

  /// Each connection takes a descriptor: ask for the hard limit, and say
  /// so when max_connections cannot be reached anyway.
  void check_fd_limit() {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0)
      return;
    if (rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &rl);
      ::getrlimit(RLIMIT_NOFILE, &rl);
    }
    const auto need = static_cast<rlim_t>(cfg.limits.max_connections + 100);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
      log->warn("the open-file limit ({}) is below limits.max_connections ({}) + 100: raise it "
                "(systemd: LimitNOFILE=) or lower max_connections",
                static_cast<std::uint64_t>(rl.rlim_cur), cfg.limits.max_connections);
  }

  void stop_all() {
    if (stopped)
      return;
    stopped = true;
    error_code ec;
    acceptor.close(ec);
    accept_retry.cancel();
    wake.cancel();
    signals.cancel();
    if (http)
      http->stop();
    for (auto& [id, c] : conns)
      c->sock.close(ec);
    conns.clear();
    writers.clear();
    // Only our own: a new process may already have written its files.
    for (const auto& [name, mine] :
         {std::pair{"relay.addr", relay_addr_text}, std::pair{"http.addr", http_addr_text}}) {
      if (!mine.empty() && read_small_file(file(name)) == mine) {
        std::error_code fec;
        std::filesystem::remove(file(name), fec);
      }
    }
    log->info("stopped");
    io.stop();
  }

  void wait_signal() {
    signals.async_wait([this](const error_code& ec, int sig) {
      if (ec || stopped)
        return;
      on_signal(sig);
      if (!stopped)
        wait_signal();
    });
  }

  void on_signal(int sig) {
    if (sig == SIGINT) {
      log->info("{}: stopping now", signal_name(sig));
      finish("the relay is stopping");
    } else if (draining) {
      log->info("{} while draining: stopping now", signal_name(sig));
      finish("the relay is restarting");
    } else {
      begin_drain(sig);
    }
  }

  /// Graceful restart: stop accepting, tell every client when to come back
  /// (spread over restart.spread_seconds by the core), keep serving the
  /// ones still here for up to restart.drain_seconds, then say goodbye.
  void begin_drain(int sig) {
    draining = true;
    drain_deadline = steady::now() + std::chrono::milliseconds(cfg.restart_drain_ms);
    error_code ec;
    acceptor.close(ec);
    accept_retry.cancel();
    const auto& m = core.metrics();
    log->info("restart ({}): stopped accepting; {} registered clients told to reconnect within "
              "{} s; serving {} connections for up to {} s",
              signal_name(sig), m.registrations, cfg.restart_spread_ms / 1000, m.connections,
              cfg.restart_drain_ms / 1000);
    run(core.begin_restart(unix_ms(), cfg.restart_spread_ms));
    check_finished();
  }

  /// goodbye{shutdown} to everyone, then exit once that is flushed (at
  /// most finish_grace later).
  void finish(const std::string& reason) {
    if (finishing || stopped)
      return;
    finishing = true;
    draining = true;
    finish_deadline = steady::now() + finish_grace;
    error_code ec;
    acceptor.close(ec);
    accept_retry.cancel();
    log->info("saying goodbye to {} connections", core.metrics().connections);
    run(core.shutdown(reason));
    check_finished();
  }

  void check_finished() {
    if (stopped || !draining || !conns.empty())
      return;
    log->info(finishing ? "every connection is closed" : "drained: every client has left");
    stop_all();
  }

  // --- accepting -----------------------------------------------------------------------

  void accept() {
    acceptor.async_accept([this](const error_code& ec, tcp::socket s) {
      if (stopped || draining || ec == asio::error::operation_aborted)
        return;
      if (ec) {
        // Out of descriptors or memory: back off rather than spin.
        ++accept_errors;
        const auto now = steady::now();
        if (now - last_accept_error_log > std::chrono::seconds(10)) {
          last_accept_error_log = now;
          log->warn("accept failed: {} (retrying; {} failures so far)", ec.message(),
                    accept_errors);
        }
        accept_retry.expires_after(accept_backoff);
        accept_retry.async_wait([this](const error_code& e) {
          if (!e && !stopped && !draining)
            accept();
        });
        return;
      }
      on_accepted(std::move(s));
      accept();
    });
  }

  void on_accepted(tcp::socket s) {
    error_code ec;
    const auto peer = s.remote_endpoint(ec);
    if (ec)
      return; // gone already
    s.non_blocking(true, ec);
    s.set_option(tcp::no_delay(true), ec);
    const conn_id id = next_id++;
    auto c = std::make_shared<connection>(id, std::move(s));
    c->ip = ip_text(peer.address());
    c->opened_ms = unix_ms();
    conns.emplace(id, c);
    log->info("conn {} accepted from {}", id, endpoint_text(peer));
    run(core.accepted(id, c->ip, c->opened_ms));
    schedule_read(c, true);
  }

  // --- reading -------------------------------------------------------------------------

  bool alive(const conn_ptr& c) const {
    auto it = conns.find(c->id);
    return it != conns.end() && it->second == c;
  }

  /// Reads are attempted first and waited for only after EAGAIN: Asio's
  /// epoll reactor is edge-triggered, and a wait started after the edge
  /// would sleep until the client sends again.
  void schedule_read(const conn_ptr& c, bool now) {
    if (stopped || c->read_pending || (c->ph == phase::open && c->blocked_on != 0))
      return;
    c->read_pending = true;
    if (now)
      asio::post(io, [this, c] { readable(c, {}); });
    else
      c->sock.async_wait(tcp::socket::wait_read,
                         [this, c](const error_code& ec) { readable(c, ec); });
  }

  void readable(const conn_ptr& c, const error_code& ec) {
    c->read_pending = false;
    if (stopped || !alive(c))
      return;
    if (ec) {
      lost(c, ec.message());
      return;
    }
    for (int i = 0; i < reads_per_wakeup; ++i) {
      if (c->ph == phase::open && c->blocked_on != 0)
        return; // resumed by release()
      error_code rec;
      const std::size_t n = c->sock.read_some(asio::buffer(rbuf), rec);
      if (rec == asio::error::would_block || rec == asio::error::try_again) {
        schedule_read(c, false);
        return;
      }
      if (rec) {
        lost(c, rec == asio::error::eof ? "closed by the client" : rec.message());
        return;
      }
      c->bytes_in += n;
      if (c->ph != phase::open)
        continue; // closed by the relay: discard until the client hangs up
      feeding = c->id;
      run(core.received(c->id, std::string_view(rbuf.data(), n), unix_ms()));
      feeding = 0;
      if (!alive(c))
        return;
    }
    schedule_read(c, true); // more may be waiting: come back after the others
  }

  /// The transport ended (EOF, reset, failed write).
  void lost(const conn_ptr& c, const std::string& why) {
    const bool tell_core = c->ph == phase::open;
    if (tell_core)
      log_close(*c, why, spdlog::level::info);
    destroy(c);
    if (tell_core)
      run(core.closed(c->id, unix_ms()));
  }

  void destroy(const conn_ptr& c) {
    conns.erase(c->id);
    writers.erase(c->id);
    error_code ec;
    c->sock.close(ec);
    release(*c);
    check_finished();
  }

  void log_close(const connection& c, const std::string& why, spdlog::level::level_enum lvl) {
    const auto secs = static_cast<double>(unix_ms() - c.opened_ms) / 1000.0;
    log->log(lvl, "conn {} closed: {} ({}, {:.1f} s, {} B in, {} B out)", c.id, why, c.ip, secs,
             c.bytes_in, c.bytes_out + c.written);
  }

  // --- the core's actions --------------------------------------------------------------

  void run(std::vector<relay_action> actions) {
    for (auto& a : actions)
      apply(a);
    // Slow readers found in the batch: the core learns they are gone, which
    // may produce more actions (circuit ends, topic events), and so on.
    while (!doomed.empty()) {
      auto [id, why] = std::move(doomed.back());
      doomed.pop_back();
      auto it = conns.find(id);
      if (it == conns.end() || it->second->ph != phase::open)
        continue;
      auto c = it->second;
      ++slow_closes;
      log_close(*c, why, spdlog::level::warn);
      destroy(c);
      for (auto& a : core.closed(id, unix_ms()))
        apply(a);
    }
    schedule();
  }

  void apply(relay_action& a) {
    auto it = conns.find(a.conn);
    if (it == conns.end())
      return;
    auto c = it->second;
    if (c->ph != phase::open)
      return; // the core forgot it already
    if (a.what == relay_action::kind::send) {
      if (c->doomed)
        return;
      if (c->pending() + a.bytes.size() > cfg.max_queued_bytes) {
        c->doomed = true;
        doomed.emplace_back(c->id, "slow reader: " + std::to_string(c->pending()) +
                                       " bytes queued, over max_queued_bytes (" +
                                       std::to_string(cfg.max_queued_bytes) + ")");
        return;
      }
      if (c->pending() == 0) {
        c->progress = steady::now();
        writers.insert(c->id);
      }
      if (c->queued.empty())
        c->queued = std::move(a.bytes);
      else
        c->queued += a.bytes;
      if (c->pending() > high_water && feeding != 0)
        pause(feeding, *c);
      start_write(c);
      return;
    }
    // close: flush what is queued (a goodbye, usually), then close.
    log_close(*c, a.reason, spdlog::level::info);
    c->ph = phase::closing;
    release(*c);
    if (c->pending() == 0) {
      destroy(c);
      return;
    }
    c->deadline = steady::now() + close_grace;
    closing.push_back(c->id);
  }

  /// Backpressure: the connection whose bytes made `target`'s queue grow
  /// past the high-water mark (a circuit peer, or the client itself asking
  /// faster than it reads) is not read until that queue drains.
  void pause(conn_id feeder, connection& target) {
    auto it = conns.find(feeder);
    if (it == conns.end() || it->second->blocked_on != 0 || it->second->ph != phase::open)
      return;
    it->second->blocked_on = target.id;
    target.waiters.push_back(feeder);
    log->debug("conn {} paused: conn {} has {} bytes queued", feeder, target.id, target.pending());
  }

  void release(connection& c) {
    if (c.waiters.empty())
      return;
    const auto ws = std::move(c.waiters);
    c.waiters = {};
    for (conn_id w : ws) {
      auto it = conns.find(w);
      if (it == conns.end() || it->second->blocked_on != c.id)
        continue;
      it->second->blocked_on = 0;
      schedule_read(it->second, true);
    }
  }

  // --- writing -------------------------------------------------------------------------

  void start_write(const conn_ptr& c) {
    if (c->write_pending || stopped)
      return;
    if (c->written == c->writing.size()) {
      std::string().swap(c->writing);
      c->written = 0;
      c->writing.swap(c->queued);
    }
    if (c->writing.empty())
      return;
    c->write_pending = true;
    c->sock.async_write_some(
        asio::buffer(c->writing.data() + c->written, c->writing.size() - c->written),
        [this, c](const error_code& ec, std::size_t n) { written(c, ec, n); });
  }

  void written(const conn_ptr& c, const error_code& ec, std::size_t n) {
    c->write_pending = false;
    if (stopped || !alive(c))
      return;
    if (ec) {
      lost(c, "write failed: " + ec.message());
      return;
    }
    c->written += n;
    c->progress = steady::now();
    if (c->written == c->writing.size()) {
      c->bytes_out += c->written;
      c->written = 0;
      std::string().swap(c->writing); // an idle connection holds no buffer
    }
    if (c->pending() <= high_water / 4)
      release(*c);
    if (c->pending() > 0) {
      start_write(c);
      return;
    }
    writers.erase(c->id);
    if (c->ph == phase::closing) {
      // Flushed: half-close and wait for the client's FIN (closing now,
      // with its bytes unread, would reset the connection and could
      // destroy the goodbye in flight).
      error_code ig;
      c->sock.shutdown(tcp::socket::shutdown_send, ig);
      c->ph = phase::lingering;
      schedule_read(c, true);
    }
  }

  // --- time ----------------------------------------------------------------------------

  /// Wakes at the core's next deadline, and at least every second for the
  /// program's own checks.
  void schedule() {
    if (stopped)
      return;
    const auto now = steady::now();
    auto at = now + max_sleep;
    if (finishing)
      at = std::min(at, finish_deadline);
    else if (draining)
      at = std::min(at, drain_deadline);
    if (auto d = core.next_deadline()) {
      const auto u = unix_ms();
      at = std::min(at, now + std::chrono::milliseconds(*d > u ? *d - u : 0));
    }
    if (wake_armed && at >= wake_at)
      return;
    wake_armed = true;
    wake_at = at;
    wake.expires_at(at);
    wake.async_wait([this](const error_code& ec) {
      if (ec == asio::error::operation_aborted || stopped)
        return;
      wake_armed = false;
      on_tick();
    });
  }

  void on_tick() {
    const auto now = steady::now();
    // Closing connections that did not flush or hang up in time.
    std::vector<conn_id> still;
    for (conn_id id : closing) {
      auto it = conns.find(id);
      if (it == conns.end())
        continue;
      if (now >= it->second->deadline)
        destroy(it->second);
      else
        still.push_back(id);
    }
    closing.swap(still);
    // Readers that stopped reading: nothing written for stall_timeout.
    for (conn_id id : writers) {
      auto& c = conns.at(id);
      if (c->ph == phase::open && !c->doomed && now - c->progress >= stall_timeout) {
        c->doomed = true;
        doomed.emplace_back(id, "slow reader: " + std::to_string(c->pending()) +
                                    " bytes queued and none taken for " +
                                    std::to_string(stall_timeout.count()) + " s");
      }
    }
    if (stopped)
      return;
    if (finishing && now >= finish_deadline) {
      log->info("{} connections did not close in time; closing them", conns.size());
      stop_all();
      return;
    }
    if (draining && !finishing && now >= drain_deadline) {
      log->info("drain time over with {} connections left", conns.size());
      finish("the relay is restarting");
      if (stopped)
        return;
    }
    run(core.tick(unix_ms()));
  }

  // --- HTTP ----------------------------------------------------------------------------

  http_answer answer(std::string_view method, std::string_view target) {
    const auto path = target.substr(0, target.find('?'));
    if (method != "GET" && method != "HEAD")
      return {404, "text/plain; charset=utf-8", "not found\n"};
    if (path == "/metrics")
      return {200, "text/plain; version=0.0.4; charset=utf-8", metrics_text()};
    if (path == "/healthz") {
      const auto& m = core.metrics();
      std::string body = std::string("{\"status\":\"") + (draining ? "draining" : "ok") +
                         "\",\"connections\":" + std::to_string(m.connections) +
                         ",\"registrations\":" + std::to_string(m.registrations) + "}\n";
      return {draining ? 503u : 200u, "application/json", std::move(body)};
    }
    return {404, "text/plain; charset=utf-8", "not found\n"};
  }

  std::string metrics_text() const {
    std::string out = core.prometheus_text();
    std::uint64_t queued = 0;
    for (conn_id id : writers)
      queued += conns.at(id)->pending();
    std::uint64_t paused = 0;
    for (const auto& [id, c] : conns)
      paused += c->blocked_on != 0 ? 1 : 0;
    auto one = [&out](const char* name, const char* type, const char* help, const std::string& v) {
      out += std::string("# HELP kith_relay_") + name + " " + help + "\n# TYPE kith_relay_" +
             name + " " + type + "\nkith_relay_" + name + " " + v + "\n";
    };
    one("slow_client_closes_total", "counter",
        "Connections closed because the client did not read what the relay sent.",
        std::to_string(slow_closes));
    one("queued_bytes", "gauge", "Bytes waiting to be written to clients.", std::to_string(queued));
    one("paused_connections", "gauge",
        "Connections not read until a peer's queue drains (backpressure).",
        std::to_string(paused));
    one("accept_errors_total", "counter", "Failed accepts (descriptor or memory exhaustion).",
        std::to_string(accept_errors));
    one("draining", "gauge", "1 while the relay drains for a restart.", draining ? "1" : "0");
    char up[32];
    std::snprintf(up, sizeof up, "%.3f",
                  std::chrono::duration<double>(steady::now() - started).count());
    one("uptime_seconds", "gauge", "Seconds since the relay started.", up);
    out += "# HELP kith_relay_info The relay's identity and version.\n# TYPE kith_relay_info "
           "gauge\nkith_relay_info{id=\"" +
           protocol::to_text(self_id) + "\",version=\"" KITH_VERSION "\"} 1\n";
    out += process_metrics_text(read_process_stats(), start_unix_s);
    return out;
  }
};

relay_server::relay_server(asio::io_context& io, const protocol::identity& self,
                           const relay_config& cfg, std::string data_dir,
                           std::shared_ptr<spdlog::logger> log)
    : impl_(std::make_unique<impl>(io, self, cfg, std::move(data_dir), std::move(log))) {}

relay_server::~relay_server() = default;

std::optional<std::string> relay_server::start() {
  return impl_->start();
}

int relay_server::run() {
  impl_->io.run();
  return 0;
}

} // namespace kith::relay::program
