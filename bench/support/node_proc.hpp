#pragma once

// Shared by the benchmarks that drive real `kith run` daemons
// (kith-bench-replication, kith-bench-coldstart): starting and stopping
// processes, a node's data directory and daemon, the run's directory, and
// the seeded documents they write.

#include "checks.hpp"
#include "proc.hpp"
#include "support/process.hpp"
#include "kith/node/api_client.hpp"
#include "kith/node/data_dir.hpp"
#include "kith/protocol/crypto.hpp"

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

extern char** environ;

namespace kith::bench {

namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;
using nlohmann::json;

inline std::uint64_t rss_kib(pid_t pid) { return status_kib(pid, "VmRSS"); }

inline double mib(std::uint64_t kib) { return static_cast<double>(kib) / 1024.0; }

/// Starts argv[0] with stdout and stderr appended to log (stdin from
/// /dev/null). Returns the pid, or -1 (said on stderr).
inline pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
  std::string why;
  const pid_t pid = test::spawn_logged(args, log, &why);
  if (pid < 0)
    std::cerr << why << '\n';
  return pid;
}

/// Waits up to timeout_s for pid; returns its wait status, or nullopt if it
/// is still running.
inline std::optional<int> wait_for(pid_t pid, double timeout_s) {
  const auto t0 = steady::now();
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid)
      return status;
    if (r < 0)
      return -1;
    if (seconds_since(t0) >= timeout_s)
      return std::nullopt;
    sleep_s(0.01);
  }
}

inline std::string describe_status(int status) {
  if (WIFEXITED(status))
    return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return std::string("killed by signal ") + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

/// A port on 127.0.0.1 that was free a moment ago (bind to 0, read, close).
inline std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  std::uint16_t port = 0;
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0)
    ::close(fd);
  return port;
}

// --- one node: a data directory and, while it runs, its daemon -----------------------

class node_proc {
public:
  node_proc(std::string name, fs::path home, fs::path log)
      : name_(std::move(name)), home_(std::move(home)), log_(std::move(log)) {}
  node_proc(const node_proc&) = delete;
  node_proc& operator=(const node_proc&) = delete;
  /// A daemon still running here (a failed run) is stopped, then killed.
  ~node_proc() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      if (!wait_for(pid_, 10)) {
        ::kill(pid_, SIGKILL);
        (void)wait_for(pid_, 10);
      }
    }
  }

  /// `kith -d HOME init`. Returns false (and says why) on failure.
  bool init(const std::string& kith) {
    const pid_t p = spawn({kith, "-d", home_.string(), "init"}, log_.string());
    if (p < 0)
      return false;
    auto st = wait_for(p, 60);
    if (!st || !WIFEXITED(*st) || WEXITSTATUS(*st) != 0) {
      std::cerr << name_ << ": kith init failed (" << (st ? describe_status(*st) : "timed out")
                << "), see " << log_.string() << '\n';
      if (!st) {
        ::kill(p, SIGKILL);
        (void)wait_for(p, 10);
      }
      return false;
    }
    auto id = node::data_dir(home_.string()).load_identity();
    if (!id) {
      std::cerr << name_ << ": " << id.err().message << '\n';
      return false;
    }
    id_ = protocol::to_text(id->pub());
    return true;
  }

  /// `kith -d HOME run --listen 127.0.0.1:<port> --api 127.0.0.1:0
  /// --log-level L [extra...]`; waits until HOME/api.addr appears and
  /// GET /v1/status answers with this node's id. ready_s() is then the
  /// time from the spawn to that answer.
  bool start(const std::string& kith, std::uint16_t port, const std::string& log_level,
             const std::vector<std::string>& extra = {}) {
    port_ = port;
    std::vector<std::string> args{kith,         "-d", home_.string(), "run", "--listen",
                                  "127.0.0.1:" + std::to_string(port), "--api", "127.0.0.1:0",
                                  "--log-level", log_level};
    args.insert(args.end(), extra.begin(), extra.end());
    const fs::path addr_file = home_ / "api.addr";
    std::error_code ec;
    fs::remove(addr_file, ec); // a previous daemon's address must not be read as this one's
    const auto t0 = steady::now();
    pid_ = spawn(args, log_.string());
    if (pid_ < 0)
      return false;
    while (seconds_since(t0) < ready_timeout_s) {
      if (!alive()) {
        std::cerr << name_ << ": the daemon exited before it was ready, see " << log_.string()
                  << '\n';
        return false;
      }
      std::ifstream f(addr_file);
      std::string line;
      if (f && std::getline(f, line)) {
        const auto colon = line.rfind(':');
        std::uint64_t p = 0;
        if (colon != std::string::npos && parse_u64(line.substr(colon + 1).c_str(), p) && p > 0 &&
            p < 65536) {
          api_host_ = line.substr(0, colon);
          api_port_ = static_cast<std::uint16_t>(p);
          auto r = call("GET", "/v1/status");
          if (r && r->value("id", std::string{}) == id_) {
            ready_s_ = seconds_since(t0);
            return true;
          }
        }
      }
      sleep_s(poll_s);
    }
    std::cerr << name_ << ": no answer from the daemon's API within " << ready_timeout_s
              << " s, see " << log_.string() << '\n';
    return false;
  }

  /// SIGTERM, then waits (SIGKILL after timeout_s). Returns how long the
  /// daemon took to exit, or nullopt if it had to be killed or failed.
  std::optional<double> stop(double timeout_s = 60) {
    if (pid_ <= 0)
      return std::nullopt;
    const auto t0 = steady::now();
    ::kill(pid_, SIGTERM);
    auto st = wait_for(pid_, timeout_s);
    if (!st) {
      std::cerr << name_ << ": no exit " << timeout_s << " s after SIGTERM; killing it\n";
      ::kill(pid_, SIGKILL);
      (void)wait_for(pid_, 10);
      pid_ = -1;
      return std::nullopt;
    }
    pid_ = -1;
    if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0) {
      std::cerr << name_ << ": the daemon ended with " << describe_status(*st) << '\n';
      return std::nullopt;
    }
    return seconds_since(t0);
  }

  /// One API call, parsed; nullopt (with a message) unless a 200 came back.
  std::optional<json> call(const std::string& method, const std::string& target,
                           const std::optional<std::string>& body = std::nullopt,
                           bool quiet = true) const {
    auto r = node::call_api(api_host_, api_port_, method, target, body);
    if (!r.ok || r.status != 200) {
      if (!quiet)
        std::cerr << name_ << ": " << method << ' ' << target << ": "
                  << (r.ok ? "HTTP " + std::to_string(r.status) + " " + r.body : r.error) << '\n';
      return std::nullopt;
    }
    auto j = json::parse(r.body, nullptr, false);
    if (j.is_discarded())
      return std::nullopt;
    return j;
  }

  [[nodiscard]] bool alive() const {
    if (pid_ <= 0)
      return false;
    int status = 0;
    return ::waitpid(pid_, &status, WNOHANG) == 0;
  }

  [[nodiscard]] const std::string& id() const { return id_; }
  [[nodiscard]] const fs::path& home() const { return home_; }
  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  /// Seconds from the spawn in start() to the first right /v1/status answer.
  [[nodiscard]] double ready_s() const { return ready_s_; }
  /// How often start() looks for the API (seconds); a cold-start figure is
  /// at most this late.
  double poll_s = 0.02;
  /// start() gives up after this long.
  double ready_timeout_s = 30;
  [[nodiscard]] std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

private:
  std::string name_;
  fs::path home_;
  fs::path log_;
  std::string id_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  std::string api_host_;
  std::uint16_t api_port_ = 0;
  double ready_s_ = 0;
};

/// The run's directory (<parent or temp>/<prefix>-<pid>); removed at
/// scope exit unless kept.
using run_dir = kith::test::scratch_dir;

// --- documents like a user's ---------------------------------------------------------------

inline constexpr const char* words[] = {
    "harbour", "lantern", "copper", "meadow", "signal", "orchard", "ledger", "pebble",
    "thistle", "beacon",  "walnut", "ferry",  "quarry", "saddle",  "velvet", "cinder",
    "gravel",  "hollow",  "marble", "nettle", "ripple", "timber",  "violet", "willow",
    "anchor",  "bramble", "canyon", "dune",   "ember",  "fjord",   "glacier", "heron",
};

/// A document's key: "<author id>/bench/<7 digits>\0text".
inline std::string doc_key(const std::string& author, std::size_t i) {
  char num[16];
  std::snprintf(num, sizeof num, "%07zu", i);
  std::string k = author + "/bench/" + num;
  k.push_back('\0');
  k += "text";
  return k;
}

/// A JSON string of about 100 bytes (quotes included) of seeded words.
inline std::string doc_value(std::mt19937_64& rng) {
  std::string v = "\"";
  while (v.size() < 92) {
    if (v.size() > 1)
      v.push_back(' ');
    v += words[rng() % std::size(words)];
  }
  v.resize(std::min<std::size_t>(v.size(), 99));
  v.push_back('"');
  return v;
}

} // namespace kith::bench
