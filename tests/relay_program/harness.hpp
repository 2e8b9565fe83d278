#pragma once

// Runs the real kith-relay binary for tests: a throwaway data directory,
// the process with its log captured to a file, and plain POSIX sockets
// for HTTP, raw bytes and a relay_client. Everything has a deadline, so a
// broken relay fails a test instead of hanging it.

#include "support/process.hpp"
#include "kith/protocol/crypto.hpp"
#include "kith/relay/client.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace kith::relay::program_test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

inline std::uint64_t now_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void spit(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

/// Polls `ok` every 10 ms until it holds or `limit` passes.
inline bool eventually(const std::function<bool()>& ok, std::chrono::milliseconds limit = 5000ms) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (ok())
      return true;
    std::this_thread::sleep_for(10ms);
  }
  return ok();
}

/// A fresh directory under $TMPDIR, removed with everything in it.
struct temp_dir {
  std::string path;
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "kith-relay-test-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
};

struct exit_status {
  bool exited = false; // else killed by a signal
  int code = -1;
};

/// One run of a program with stdout and stderr in `log_path`.
class process {
public:
  process(const std::vector<std::string>& args, const std::string& log_path) : log_(log_path) {
    std::string why;
    pid_ = test::spawn_logged(args, log_path, &why);
    INFO(why);
    REQUIRE(pid_ > 0);
  }
  ~process() {
    if (!status_) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
  }
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  void signal(int sig) const { ::kill(pid_, sig); }

  /// The exit status if the process ends within `limit`.
  std::optional<exit_status> wait(std::chrono::milliseconds limit) {
    eventually(
        [&] {
          if (status_)
            return true;
          int st = 0;
          if (::waitpid(pid_, &st, WNOHANG) == pid_) {
            exit_status s;
            s.exited = WIFEXITED(st);
            s.code = s.exited ? WEXITSTATUS(st) : WTERMSIG(st);
            status_ = s;
          }
          return status_.has_value();
        },
        limit);
    return status_;
  }
  [[nodiscard]] std::string log() const { return slurp(log_); }

private:
  pid_t pid_ = -1;
  std::string log_;
  std::optional<exit_status> status_;
};

/// Runs a program to completion: exit code and output.
inline std::pair<int, std::string> run_to_end(const std::vector<std::string>& args,
                                              const std::string& log_path) {
  std::error_code ec;
  fs::remove(log_path, ec);
  process p(args, log_path);
  auto st = p.wait(10s);
  REQUIRE(st);
  REQUIRE(st->exited);
  return {st->code, p.log()};
}

// --- sockets ------------------------------------------------------------------------

struct host_port {
  std::string host;
  std::uint16_t port = 0;
};
inline host_port parse_addr(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r'))
    s.pop_back();
  const auto colon = s.rfind(':');
  REQUIRE(colon != std::string::npos);
  return {s.substr(0, colon), static_cast<std::uint16_t>(std::stoi(s.substr(colon + 1)))};
}

/// A connected TCP socket (IPv4), closed on destruction.
class tcp_socket {
public:
  explicit tcp_socket(const host_port& to) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(to.port);
    REQUIRE(::inet_pton(AF_INET, to.host.c_str(), &a.sin_addr) == 1);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~tcp_socket() { close(); }
  tcp_socket(const tcp_socket&) = delete;
  tcp_socket& operator=(const tcp_socket&) = delete;

  void close() {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }
  /// Ends both directions now; a send blocked in another thread fails.
  void shutdown_both() const { ::shutdown(fd_, SHUT_RDWR); }
  [[nodiscard]] bool send_all(std::string_view bytes) const {
    while (!bytes.empty()) {
      const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0)
        return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  enum class got { bytes, timeout, closed };
  /// Waits up to `limit` for bytes; appends them to `into`.
  got receive(std::string& into, std::chrono::milliseconds limit) const {
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(limit.count()));
    if (r == 0)
      return got::timeout;
    char buf[65536];
    const auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0)
      return got::closed; // EOF or reset
    into.append(buf, static_cast<std::size_t>(n));
    return got::bytes;
  }
  /// Reads until the other end closes; false if it is still open after `limit`.
  bool closed_within(std::chrono::milliseconds limit) const {
    const auto end = std::chrono::steady_clock::now() + limit;
    std::string sink;
    while (std::chrono::steady_clock::now() < end) {
      if (receive(sink, 50ms) == got::closed)
        return true;
    }
    return false;
  }

private:
  int fd_ = -1;
};

struct http_reply {
  int status = 0;
  std::string body;
};

/// One GET over a fresh connection (the relay answers one request each).
inline http_reply http_get(const host_port& at, const std::string& target) {
  tcp_socket s(at);
  REQUIRE(s.send_all("GET " + target + " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"));
  std::string raw;
  const auto end = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < end && s.receive(raw, 100ms) != tcp_socket::got::closed) {
  }
  http_reply r;
  REQUIRE(raw.rfind("HTTP/1.1 ", 0) == 0);
  r.status = std::stoi(raw.substr(9, 3));
  const auto split = raw.find("\r\n\r\n");
  REQUIRE(split != std::string::npos);
  r.body = raw.substr(split + 4);
  return r;
}

// --- the relay under test -------------------------------------------------------------

/// kith-relay run on 127.0.0.1:0 (relay and HTTP) in a fresh data dir,
/// with `toml` as relay.toml when given. Waits for relay.addr.
class relay_under_test {
public:
  explicit relay_under_test(const std::string& toml = {}) {
    if (!toml.empty())
      spit(dir_.path + "/relay.toml", toml);
    proc_.emplace(std::vector<std::string>{KITH_RELAY_BIN, "run", "--data-dir", dir_.path,
                                           "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"},
                  dir_.path + "/relay.log");
    const bool up = eventually([&] { return fs::exists(dir_.path + "/relay.addr"); });
    INFO(proc_->log());
    REQUIRE(up);
    relay = parse_addr(slurp(dir_.path + "/relay.addr"));
    http = parse_addr(slurp(dir_.path + "/http.addr"));
    auto text = slurp(dir_.path + "/relay.id");
    while (!text.empty() && text.back() == '\n')
      text.pop_back();
    auto parsed = protocol::parse_id(text);
    REQUIRE(parsed);
    id = *parsed;
  }

  [[nodiscard]] const std::string& dir() const { return dir_.path; }
  process& proc() { return *proc_; }
  [[nodiscard]] std::string log() const { return proc_->log(); }

  host_port relay;
  host_port http;
  protocol::public_key id;

private:
  temp_dir dir_;
  std::optional<process> proc_;
};

/// A relay_client driven over a real socket.
class socket_client {
public:
  /// `session` picks the ephemeral key's seed; `ticket`, if given, is
  /// offered for a resumed handshake.
  socket_client(const host_port& relay, const protocol::public_key& relay_id, std::uint8_t who,
                std::uint8_t session = 2, const protocol::resume_ticket* ticket = nullptr)
      : sock_(relay), self_(protocol::identity::from_seed(seed(who, 1))),
        client_(self_, relay_id, seed(who, session), now_ms()) {
    if (ticket)
      client_.offer_ticket(*ticket);
    REQUIRE(sock_.send_all(client_.start()));
  }

  static protocol::key_seed seed(std::uint8_t who, std::uint8_t purpose) {
    protocol::key_seed s{};
    s[0] = who;
    s[1] = purpose;
    s[31] = 0x7e;
    return s;
  }

  [[nodiscard]] const protocol::identity& self() const { return self_; }
  relay_client& client() { return client_; }
  tcp_socket& socket() { return sock_; }
  [[nodiscard]] bool hung_up() const { return hung_up_; }

  /// Moves bytes both ways until an event of type T arrives (returned and
  /// removed), the connection ends, or `limit` passes.
  template <class T>
  std::optional<T> await(std::chrono::milliseconds limit = 5000ms) {
    const auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
      for (auto it = events_.begin(); it != events_.end(); ++it) {
        if (auto* x = std::get_if<T>(&*it)) {
          T out = std::move(*x);
          events_.erase(it);
          return out;
        }
      }
      if (hung_up_ || std::chrono::steady_clock::now() >= end)
        return std::nullopt;
      std::string in;
      const auto g = sock_.receive(in, 20ms);
      client_output out = g == tcp_socket::got::bytes ? client_.receive(in, now_ms())
                                                      : client_.tick(now_ms());
      if (g == tcp_socket::got::closed)
        hung_up_ = true;
      for (auto& e : out.events)
        events_.push_back(std::move(e));
      out.to_send += client_.take_to_send();
      if (!out.to_send.empty() && !hung_up_)
        (void)sock_.send_all(out.to_send);
      if (client_.state() == client_state::closed && !hung_up_) {
        sock_.close(); // as a node does after goodbye or an error
        hung_up_ = true;
      }
    }
  }
  /// Sends what the request methods queued.
  void flush() { REQUIRE(sock_.send_all(client_.take_to_send())); }

private:
  tcp_socket sock_;
  protocol::identity self_;
  relay_client client_;
  std::vector<client_event> events_;
  bool hung_up_ = false;
};

} // namespace kith::relay::program_test
