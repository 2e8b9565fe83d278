// Abuse memory measurements (issue 8). Starts a real `kith run` daemon (the
// target B), a real follower C of B, and a real `kith-relay`; records each
// one's idle RSS, then runs one abuse at a time while sampling RSS from
// /proc/<pid>/status every 10 ms:
//   flood     a peer B follows sends signed data as fast as TCP takes it
//   sessions  many connections from one process, each a full handshake,
//             hello, subscribe and resync request of B's feed
//   oversized documents over the API limits (body, one value)
//   nested    deeply nested JSON bodies
//   relay     relay clients flooding lookups
//   nonreader peers that ask B for its feed many times over and never read
//             a byte of the answers
// After (and for sessions: during) each abuse an honest client must still
// be served: a put and a get on B, and a new post of B reaching C; for the
// relay, an announce and a lookup. Each bound is a budget over the RSS
// just before its abuse (memory an earlier abuse took is not always given
// back to the OS). Prints a table and exits 1 if a bound or a
// served-others check fails. Every identity and key comes from the printed
// seed (--seed replays it).
//
//   kith-abuse-memory --kith build/node/kith --relay build/relay/kith-relay
//                     [--full] [--seed N] [--only PHASES] [--flood-writes N]
// --quick (the default) is the ctest entry; --full is the long run
// documented in docs/security.md.

#include "support/proc.hpp"
#include "support/process.hpp"
#include "kith/protocol/channel.hpp"
#include "kith/protocol/crypto.hpp"
#include "kith/protocol/messages.hpp"
#include "kith/relay/client.hpp"
#include "kith/storage/kv.hpp"
#include "kith/storage/store.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace kith::abuse {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

std::uint64_t unix_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' '))
    s.pop_back();
  return s;
}

bool eventually(const std::function<bool()>& ok, std::chrono::milliseconds limit) {
  const auto end = clock_type::now() + limit;
  while (clock_type::now() < end) {
    if (ok())
      return true;
    std::this_thread::sleep_for(20ms);
  }
  return ok();
}

// --- processes and their memory ---------------------------------------------------

/// A child process with stdout and stderr appended to a log file.
class child {
public:
  child(const std::vector<std::string>& args, const std::string& log_path) : log_(log_path) {
    pid_ = test::spawn_logged(args, log_path);
  }
  ~child() { stop(); }
  child(const child&) = delete;
  child& operator=(const child&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  /// Waits for the process to end by itself; true if it exited with 0.
  bool wait_success() {
    int st = 0;
    const bool reaped = pid_ > 0 && ::waitpid(pid_, &st, 0) == pid_;
    pid_ = -1;
    return reaped && WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }
  [[nodiscard]] bool alive() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }
  [[nodiscard]] std::string log() const { return slurp(log_); }
  void stop() {
    if (pid_ <= 0)
      return;
    ::kill(pid_, SIGTERM);
    if (!eventually([&] { return ::waitpid(pid_, nullptr, WNOHANG) == pid_; }, 5000ms)) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    pid_ = -1;
  }

private:
  pid_t pid_ = -1;
  std::string log_;
};

using bench::status_kib; // a field of /proc/<pid>/status in KiB

/// Samples the RSS of some processes every 10 ms on its own thread and
/// keeps the peak since the last reset.
class rss_sampler {
public:
  explicit rss_sampler(std::vector<pid_t> pids) : pids_(std::move(pids)), peak_(pids_.size(), 0) {
    thread_ = std::thread([this] {
      while (!done_) {
        {
          std::lock_guard lock(mu_);
          for (std::size_t i = 0; i < pids_.size(); ++i)
            peak_[i] = std::max(peak_[i], status_kib(pids_[i], "VmRSS"));
        }
        std::this_thread::sleep_for(10ms);
      }
    });
  }
  ~rss_sampler() {
    done_ = true;
    thread_.join();
  }
  rss_sampler(const rss_sampler&) = delete;
  rss_sampler& operator=(const rss_sampler&) = delete;

  void reset() {
    std::lock_guard lock(mu_);
    for (std::size_t i = 0; i < pids_.size(); ++i)
      peak_[i] = status_kib(pids_[i], "VmRSS");
  }
  [[nodiscard]] std::uint64_t peak_kib(pid_t pid) {
    std::lock_guard lock(mu_);
    for (std::size_t i = 0; i < pids_.size(); ++i)
      if (pids_[i] == pid)
        return std::max(peak_[i], status_kib(pid, "VmRSS"));
    return 0;
  }

private:
  std::vector<pid_t> pids_;
  std::vector<std::uint64_t> peak_;
  std::mutex mu_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// --- sockets and HTTP -----------------------------------------------------------------

struct host_port {
  std::string host;
  std::uint16_t port = 0;
};

std::optional<host_port> parse_addr(const std::string& text) {
  const auto s = trim(text);
  const auto colon = s.rfind(':');
  if (colon == std::string::npos)
    return std::nullopt;
  return host_port{s.substr(0, colon), static_cast<std::uint16_t>(std::atoi(s.c_str() + colon + 1))};
}

/// A connected TCP socket; -1 on failure. Closed on destruction.
class tcp_socket {
public:
  explicit tcp_socket(const host_port& to, bool nonblocking = false) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0)
      return;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(to.port);
    ::inet_pton(AF_INET, to.host.c_str(), &a.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      close();
      return;
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (nonblocking)
      ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }
  ~tcp_socket() { close(); }
  tcp_socket(tcp_socket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  tcp_socket& operator=(tcp_socket&&) = delete;
  tcp_socket(const tcp_socket&) = delete;
  tcp_socket& operator=(const tcp_socket&) = delete;

  [[nodiscard]] int fd() const { return fd_; }
  [[nodiscard]] bool ok() const { return fd_ >= 0; }
  void close() {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }
  /// Blocking send of everything (blocking sockets only).
  bool send_all(std::string_view b) const {
    while (!b.empty()) {
      const auto n = ::send(fd_, b.data(), b.size(), MSG_NOSIGNAL);
      if (n <= 0)
        return false;
      b.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  /// Waits up to `ms` for bytes and appends them; false on close or error.
  bool receive(std::string& into, int ms) const {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0)
      return true;
    char buf[65536];
    const auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0)
      return false;
    into.append(buf, static_cast<std::size_t>(n));
    return true;
  }

private:
  int fd_ = -1;
};

struct http_reply {
  int status = 0; // 0: no answer
  std::string body;
};

/// One request on a fresh connection (Connection: close), 20 s deadline.
http_reply http(const host_port& at, const std::string& method, const std::string& target,
                const std::string& body = {}) {
  tcp_socket s(at);
  http_reply r;
  if (!s.ok())
    return r;
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: " + at.host + ":" +
                    std::to_string(at.port) + "\r\nConnection: close\r\n";
  if (!body.empty() || method == "POST" || method == "PUT")
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n";
  // The server may answer (413) and close before the body is all sent.
  (void)s.send_all(req);
  (void)s.send_all(body);
  std::string raw;
  const auto end = clock_type::now() + 20s;
  while (clock_type::now() < end && s.receive(raw, 100)) {
  }
  if (raw.rfind("HTTP/1.1 ", 0) != 0)
    return r;
  r.status = std::atoi(raw.c_str() + 9);
  const auto split = raw.find("\r\n\r\n");
  if (split != std::string::npos)
    r.body = raw.substr(split + 4);
  return r;
}

// --- the processes under test -------------------------------------------------------

struct node_proc {
  std::string dir;
  std::string id;
  host_port api;
  host_port peer;
  std::unique_ptr<child> proc;
};

bool run_quiet(const std::vector<std::string>& args, const std::string& log, std::string* out = nullptr) {
  child c(args, log);
  const bool ok = c.wait_success();
  if (out)
    *out = slurp(log);
  return ok;
}

std::optional<node_proc> start_node(const std::string& kith, const std::string& dir) {
  node_proc n;
  n.dir = dir;
  if (!run_quiet({kith, "-d", dir, "init"}, dir + ".init.log"))
    return std::nullopt;
  std::string id;
  if (!run_quiet({kith, "-d", dir, "id"}, dir + ".id.log", &id))
    return std::nullopt;
  n.id = trim(id);
  n.proc = std::make_unique<child>(std::vector<std::string>{kith, "-d", dir, "run", "--listen", "127.0.0.1:0",
                                                            "--api", "127.0.0.1:0", "--no-web",
                                                            "--anti-entropy", "1"},
                                   dir + ".log");
  if (!eventually([&] { return fs::exists(dir + "/api.addr") && fs::exists(dir + "/peer.addr"); }, 10s))
    return std::nullopt;
  auto api = parse_addr(slurp(dir + "/api.addr"));
  auto peer = parse_addr(slurp(dir + "/peer.addr"));
  if (!api || !peer)
    return std::nullopt;
  n.api = *api;
  n.peer = *peer;
  return n;
}

// --- a peer speaking the real protocol -----------------------------------------------------

/// One channel to B over a non-blocking socket: the initiator handshake,
/// then messages. Single-threaded; the owner drives it with pump().
class peer_conn {
public:
  peer_conn(const host_port& to, protocol::identity self, const protocol::key_seed& eph)
      : sock_(to, true), self_(std::move(self)),
        ch_(self_, protocol::channel::role::initiator, eph, unix_ms()) {
    if (sock_.ok())
      out_ = ch_.start();
  }
  [[nodiscard]] bool open() const { return sock_.ok() && !closed_; }
  [[nodiscard]] bool established() const { return ch_.state() == protocol::channel_state::established; }
  [[nodiscard]] std::size_t queued() const { return out_.size(); }
  [[nodiscard]] int fd() const { return sock_.fd(); }
  [[nodiscard]] const protocol::identity& self() const { return self_; }
  [[nodiscard]] const std::string& why() const { return why_; }
  void send(const protocol::message& m) {
    if (auto sealed = ch_.seal(protocol::encode_message(m)))
      out_ += *sealed;
  }
  /// Moves bytes without blocking; returns the messages received. `would_block`
  /// counts the times the socket took no more bytes.
  std::vector<protocol::message> pump(bool want_read = true) {
    std::vector<protocol::message> got;
    if (!open())
      return got;
    while (!out_.empty()) {
      const auto n = ::send(sock_.fd(), out_.data(), out_.size(), MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        ++would_block;
        break;
      }
      if (n <= 0)
        return fail("send: " + std::string(std::strerror(errno))), got;
      out_.erase(0, static_cast<std::size_t>(n));
    }
    if (!want_read)
      return got;
    char buf[65536];
    for (;;) {
      const auto n = ::recv(sock_.fd(), buf, sizeof buf, 0);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        break;
      if (n <= 0)
        return fail("closed by B"), got;
      auto out = ch_.receive(std::string_view(buf, static_cast<std::size_t>(n)));
      out_ += out.to_send;
      if (out.error)
        return fail("channel: " + *out.error), got;
      for (auto& f : out.frames) {
        std::string why;
        if (auto m = protocol::decode_message(f, {}, &why))
          got.push_back(std::move(*m));
      }
    }
    return got;
  }
  std::uint64_t would_block = 0;

private:
  void fail(std::string why) {
    closed_ = true;
    why_ = std::move(why);
  }
  tcp_socket sock_;
  protocol::identity self_;
  protocol::channel ch_;
  std::string out_;
  bool closed_ = false;
  std::string why_;
};

protocol::key_seed seed_bytes(std::mt19937_64& g) {
  protocol::key_seed s{};
  for (auto& b : s)
    b = static_cast<std::uint8_t>(g());
  return s;
}

// --- the table ------------------------------------------------------------------------

struct row {
  std::string abuse;
  std::string process;
  std::uint64_t idle_kib = 0;
  std::uint64_t before_kib = 0;
  std::uint64_t peak_kib = 0;
  std::uint64_t bound_kib = 0;
  bool served = false;
  std::string note;
  [[nodiscard]] bool ok() const { return served && peak_kib <= bound_kib; }
};

std::string mib(std::uint64_t kib) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", static_cast<double>(kib) / 1024.0);
  return b;
}

struct settings {
  bool full = false;
  std::uint64_t seed = 0;
  std::string kith, relay;
  // flood
  std::size_t flood_writes = 800;
  std::size_t flood_value = 256u << 10;
  // sessions
  std::size_t sessions = 200;
  std::size_t feed_posts = 100;
  // nested
  std::size_t nest_depth = 100'000;
  // relay
  std::size_t relay_flooders = 8;
  std::size_t relay_lookups = 3000;
  // nonreader
  std::size_t nonreaders = 4;
  std::size_t nonreader_requests = 150;
  std::string only; // comma-separated phases; empty: all
};

class harness {
public:
  explicit harness(settings s) : s_(std::move(s)), rng_(s_.seed) {
    if (!s_.only.empty())
      only_ = "," + s_.only + ",";
  }

  int run() {
    char tmpl[] = "/tmp/kith-abuse-XXXXXX";
    if (!::mkdtemp(tmpl))
      return die("cannot make a temporary directory");
    root_ = tmpl;
    auto b = start_node(s_.kith, root_ + "/b");
    if (!b)
      return die("node B did not start");
    b_ = std::move(*b);
    auto c = start_node(s_.kith, root_ + "/c");
    if (!c)
      return die("node C did not start");
    c_ = std::move(*c);
    if (http(c_.api, "POST", "/v1/follow",
             "{\"id\":\"" + b_.id + "\",\"address\":\"127.0.0.1:" + std::to_string(b_.peer.port) + "\"}")
            .status != 200)
      return die("C cannot follow B");
    relay_dir_ = root_ + "/relay";
    fs::create_directories(relay_dir_);
    relay_ = std::make_unique<child>(std::vector<std::string>{s_.relay, "run", "--data-dir", relay_dir_,
                                                              "--listen", "127.0.0.1:0", "--http", ""},
                                     relay_dir_ + ".log");
    if (!eventually([&] { return fs::exists(relay_dir_ + "/relay.addr"); }, 10s))
      return die("the relay did not start");
    relay_addr_ = *parse_addr(slurp(relay_dir_ + "/relay.addr"));
    relay_id_ = *protocol::parse_id(trim(slurp(relay_dir_ + "/relay.id")));

    // B's feed, served to the many sessions below.
    const std::string pad(4000, 'p');
    for (std::size_t i = 0; i < s_.feed_posts; ++i)
      if (http(b_.api, "POST", "/v1/posts", "{\"text\":\"seed " + std::to_string(i) + " " + pad + "\"}")
              .status != 200)
        return die("B refuses a post");
    if (!served_node("setup"))
      return die("the honest checks fail before any abuse: " + last_why_);

    std::this_thread::sleep_for(1s);
    idle_b_ = status_kib(b_.proc->pid(), "VmRSS");
    idle_relay_ = status_kib(relay_->pid(), "VmRSS");
    std::printf("idle RSS: node B %s MiB, relay %s MiB (seed %llu, %s)\n", mib(idle_b_).c_str(),
                mib(idle_relay_).c_str(), static_cast<unsigned long long>(s_.seed),
                s_.full ? "full" : "quick");
    std::fflush(stdout);
    sampler_ = std::make_unique<rss_sampler>(std::vector<pid_t>{b_.proc->pid(), relay_->pid()});

    flood();
    sessions();
    oversized();
    nested();
    relay_flood();
    nonreaders();

    sampler_.reset();
    std::printf("\n| abuse | process | idle RSS MiB | RSS before MiB | peak RSS MiB | bound MiB | others served | note |\n"
                "|---|---|---|---|---|---|---|---|\n");
    bool all = true;
    for (const auto& r : rows_) {
      std::printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.abuse.c_str(), r.process.c_str(),
                  mib(r.idle_kib).c_str(), mib(r.before_kib).c_str(), mib(r.peak_kib).c_str(), mib(r.bound_kib).c_str(),
                  r.served ? "yes" : "NO", r.note.c_str());
      all = all && r.ok();
    }
    const bool alive = b_.proc->alive() && relay_->alive();
    std::printf("\nVmHWM (lifetime peak): node B %s MiB, relay %s MiB\n",
                mib(status_kib(b_.proc->pid(), "VmHWM")).c_str(),
                mib(status_kib(relay_->pid(), "VmHWM")).c_str());
    if (!alive)
      std::printf("FAIL: a process under test died\n");
    if (!all || !alive) {
      // Keep the logs, not the stores (a flood leaves hundreds of MiB).
      b_.proc->stop();
      c_.proc->stop();
      relay_->stop();
      std::error_code ec;
      for (const auto& d : {b_.dir, c_.dir, relay_dir_})
        fs::remove_all(d, ec);
      std::printf("FAIL: a bound or a served-others check failed; logs in %s\n", root_.c_str());
      return 1;
    }
    std::printf("abuse memory: all bounds held and others were served\n");
    b_.proc->stop();
    c_.proc->stop();
    relay_->stop();
    std::error_code ec;
    fs::remove_all(root_, ec);
    return 0;
  }

private:
  int die(const std::string& why) {
    std::printf("FAIL: %s (logs in %s)\n", why.c_str(), root_.c_str());
    return 1;
  }

  /// The honest client of the node: a put and a get on B, and a new post of
  /// B reaching its follower C.
  bool served_node(const std::string& tag) {
    ++honest_;
    const std::string subject = b_.id + "/honest/" + std::to_string(honest_);
    auto put = http(b_.api, "PUT", "/v1/docs/" + subject, "{\"doc\":{\"tag\":\"" + tag + "\"}}");
    if (put.status != 200)
      return last_why_ = "put answered " + std::to_string(put.status) + " " + put.body, false;
    auto get = http(b_.api, "GET", "/v1/docs/" + subject);
    if (get.status != 200 || get.body.find(tag) == std::string::npos)
      return last_why_ = "get answered " + std::to_string(get.status), false;
    const std::string text = "honest " + std::to_string(honest_) + " after " + tag;
    if (http(b_.api, "POST", "/v1/posts", "{\"text\":\"" + text + "\"}").status != 200)
      return last_why_ = "post refused", false;
    const bool reached = eventually(
        [&] {
          return http(c_.api, "GET", "/v1/feed?author=" + b_.id + "&limit=5").body.find(text) !=
                 std::string::npos;
        },
        15s);
    if (!reached)
      last_why_ = "B's post did not reach C within 15 s";
    return reached;
  }

  /// Starts a phase: the RSS now is the baseline of its bound (memory an
  /// earlier phase took is not always returned to the OS).
  bool begin(const std::string& name) {
    if (!only_.empty() && only_.find("," + name + ",") == std::string::npos)
      return false;
    before_b_ = status_kib(b_.proc->pid(), "VmRSS");
    before_relay_ = status_kib(relay_->pid(), "VmRSS");
    sampler_->reset();
    return true;
  }

  void add_row(const std::string& abuse, bool node, std::uint64_t bound_extra_kib, bool served,
               std::string note) {
    row r;
    r.abuse = abuse;
    r.process = node ? "kith run" : "kith-relay";
    r.idle_kib = node ? idle_b_ : idle_relay_;
    r.before_kib = node ? before_b_ : before_relay_;
    r.peak_kib = sampler_->peak_kib(node ? b_.proc->pid() : relay_->pid());
    r.bound_kib = r.before_kib + bound_extra_kib;
    r.served = served;
    if (!served)
      note += "; not served: " + last_why_;
    r.note = std::move(note);
    std::printf("  %s: peak %s MiB (bound %s), others served: %s; %s\n", abuse.c_str(),
                mib(r.peak_kib).c_str(), mib(r.bound_kib).c_str(), served ? "yes" : "NO",
                r.note.c_str());
    std::fflush(stdout);
    rows_.push_back(std::move(r));
  }

  // (a) A followed peer X pushes signed writes as fast as the socket takes
  // them. B's reads pause while more than max_applying_bytes wait.
  void flood() {
    if (!begin("flood"))
      return;
    auto x = protocol::identity::from_seed(seed_bytes(rng_));
    storage::store_options so;
    so.sync = false;
    so.replica_nonce = rng_() | 1;
    auto st = storage::store::open(storage::make_memory_kv(), x, so);
    const std::string xid = protocol::to_text(x.pub());
    std::string note;
    bool served = false;
    const auto t0 = clock_type::now();
    std::size_t sent = 0;
    std::uint64_t b_dots = 0;
    [&] {
      if (!st)
        return void(note = "cannot open the flooder's store");
      auto& store = *st.value();
      const auto feed = store.feed_topic_id();
      if (http(b_.api, "POST", "/v1/follow", "{\"id\":\"" + xid + "\"}").status != 200)
        return void(note = "B cannot follow the flooder");
      peer_conn pc(b_.peer, x, seed_bytes(rng_));
      protocol::hello_msg hello;
      hello.binding = store.binding();
      hello.agent = "kith-abuse-flood";
      bool hello_sent = false, offered = false;
      std::string value(s_.flood_value, 'v');
      const auto deadline = clock_type::now() + (s_.full ? 600s : 90s);
      while (pc.open() && clock_type::now() < deadline) {
        if (pc.established() && !hello_sent) {
          pc.send(hello);
          hello_sent = true;
        }
        for (auto& m : pc.pump()) {
          if (auto* sub = std::get_if<protocol::subscribe_msg>(&m)) {
            protocol::offer_msg o;
            for (const auto& t : sub->topics)
              if (t == feed)
                o.topics.push_back(*store.topic(feed));
            pc.send(o);
          } else if (auto* rr = std::get_if<protocol::resync_request_msg>(&m)) {
            // Honest answer: the page as it stands, in parts, then its end.
            auto page = store.page(rr->topic, rr->after_key, rr->max_entries);
            if (!page)
              continue;
            auto parts = protocol::split_reply(page->reply, 1u << 20);
            for (std::size_t i = 0; i < parts.size(); ++i)
              pc.send(protocol::data_msg{protocol::data_kind::resync, i + 1 == parts.size(), parts[i]});
            pc.send(protocol::resync_done_msg{rr->topic, page->next_after, page->complete});
            // B asks for a resync only once it counts the topic as offered;
            // data before that is refused as unasked for.
            offered = true;
          } else if (auto* ka = std::get_if<protocol::keepalive_msg>(&m)) {
            if (!ka->reply)
              pc.send(protocol::keepalive_msg{ka->nonce, true});
          }
        }
        // Generate and push while the socket keeps taking bytes.
        if (offered && sent < s_.flood_writes && pc.queued() < (4u << 20)) {
          for (int k = 0; k < 8 && sent < s_.flood_writes; ++k) {
            value[0] = static_cast<char>('a' + sent % 26);
            std::memcpy(value.data() + 1, &sent, sizeof sent);
            std::vector<storage::write_op> ops{
                {xid + "/flood/" + std::to_string(sent), value, {}}};
            auto push = store.write(feed, ops, unix_ms());
            if (!push) {
              note = "flooder write failed: " + push.err().message;
              return;
            }
            pc.send(protocol::data_msg{protocol::data_kind::push, true, *push});
            ++sent;
          }
        }
        if (sent == s_.flood_writes && pc.queued() == 0) {
          auto t = http(b_.api, "GET", "/v1/topics");
          const auto at = t.body.find("\"feed/" + xid + "\"");
          if (at != std::string::npos) {
            const auto w = t.body.find("\"writes\":", at);
            if (w != std::string::npos)
              b_dots = std::strtoull(t.body.c_str() + w + 9, nullptr, 10);
          }
          if (b_dots >= s_.flood_writes)
            break;
          std::this_thread::sleep_for(50ms);
        } else {
          pollfd p{pc.fd(), static_cast<short>(POLLIN | (pc.queued() ? POLLOUT : 0)), 0};
          ::poll(&p, 1, pc.queued() && sent < s_.flood_writes ? 5 : 20);
        }
      }
      const auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
      auto peers = http(b_.api, "GET", "/v1/peers").body;
      std::string pauses = "?";
      // The flooder's entry (B also lists C and the sessions' peers).
      const auto mine = peers.find("\"" + xid + "\"");
      if (auto at = peers.find("\"read_pauses\":", mine == std::string::npos ? 0 : mine);
          mine != std::string::npos && at != std::string::npos)
        pauses = std::to_string(std::strtoull(peers.c_str() + at + 14, nullptr, 10));
      char buf[256];
      std::snprintf(buf, sizeof buf,
                    "%zu writes of %zu KiB (%s MiB) pushed in %.1f s, B applied %llu; B paused reads %s "
                    "times; the socket was full %llu times",
                    sent, s_.flood_value >> 10, mib(sent * (s_.flood_value >> 10)).c_str(), secs,
                    static_cast<unsigned long long>(b_dots), pauses.c_str(),
                    static_cast<unsigned long long>(pc.would_block));
      note = buf;
      if (!pc.open())
        note += "; connection ended: " + pc.why();
      if (b_dots < s_.flood_writes)
        note += "; B did not apply every write";
    }();
    served = b_dots >= s_.flood_writes && served_node("flood");
    // Bound (128 MiB over the RSS before): 16 MiB waiting to be applied, its decoded copy and the store's
    // 16 MiB memtables, with room for allocator slack.
    add_row("flood of signed data from a followed peer", true, 128u << 10, served, note);
  }

  // (b) Many connections from one process, each a distinct identity that
  // completes the handshake, says hello, subscribes to B's feed and asks
  // for a full resync, reading and discarding what B sends. The sessions
  // stay open while the honest client is checked.
  void sessions() {
    if (!begin("sessions"))
      return;
    const std::string feed = "feed/" + b_.id;
    struct session {
      std::unique_ptr<peer_conn> c;
      int step = 0; // 0 handshake, 1 hello sent, 2 resync asked, 3 complete
    };
    std::vector<session> all;
    for (std::size_t i = 0; i < s_.sessions; ++i)
      all.push_back(session{std::make_unique<peer_conn>(
          b_.peer, protocol::identity::from_seed(seed_bytes(rng_)), seed_bytes(rng_))});
    std::size_t complete = 0, dropped = 0;
    const auto t0 = clock_type::now();
    const auto deadline = t0 + (s_.full ? 180s : 40s);
    while (clock_type::now() < deadline && complete + dropped < all.size()) {
      std::vector<pollfd> fds;
      for (auto& x : all)
        if (x.c->open())
          fds.push_back(pollfd{x.c->fd(), static_cast<short>(POLLIN | (x.c->queued() ? POLLOUT : 0)), 0});
      ::poll(fds.data(), fds.size(), 20);
      complete = dropped = 0;
      for (auto& x : all) {
        auto& c = *x.c;
        if (c.open() && c.established() && x.step == 0) {
          c.send(protocol::hello_msg{protocol::protocol_version,
                                     protocol::bind_replica(c.self(), rng_() | 1), "kith-abuse-session"});
          c.send(protocol::subscribe_msg{{feed}});
          x.step = 1;
        }
        for (auto& m : c.pump()) {
          if (std::holds_alternative<protocol::offer_msg>(m) && x.step == 1) {
            c.send(protocol::resync_request_msg{feed, {}, 1024});
            x.step = 2;
          } else if (auto* d = std::get_if<protocol::resync_done_msg>(&m); d && x.step == 2) {
            if (d->complete)
              x.step = 3;
            else
              c.send(protocol::resync_request_msg{feed, d->next_after, 1024});
          } else if (auto* ka = std::get_if<protocol::keepalive_msg>(&m); ka && !ka->reply) {
            c.send(protocol::keepalive_msg{ka->nonce, true});
          }
        }
        complete += x.step == 3 ? 1 : 0;
        dropped += (!c.open() && x.step != 3) ? 1 : 0;
      }
    }
    const auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    std::string why;
    for (auto& x : all)
      if (!x.c->open() && x.step != 3 && why.empty())
        why = x.c->why();
    // The honest client, while every session is still open (their sockets
    // are not read meanwhile: B's sends to them queue).
    const bool served = served_node("sessions");
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "%zu sessions of distinct identities, %zu completed a resync of B's %zu-post feed in "
                  "%.1f s, %zu closed early%s%s",
                  all.size(), complete, s_.feed_posts, secs, dropped, why.empty() ? "" : ": ",
                  why.c_str());
    all.clear();
    // Bound: the node has no cap on inbound sessions, so memory grows with
    // their number: a peer actor, a channel and one resync page in flight
    // each (B's feed is ~0.4 MiB). Budget: 32 MiB + 512 KiB a session.
    add_row("many sync sessions from one process", true, (32u << 10) + 512 * s_.sessions,
            served && complete == s_.sessions, buf);
  }

  // (c) Documents over the limits: a body over 16 MiB, and a value over
  // the 1 MiB a write body may carry on the wire.
  void oversized() {
    if (!begin("oversized"))
      return;
    std::string note;
    bool clear = true;
    const std::string subject = "/v1/docs/" + b_.id + "/big";
    for (int i = 0; i < (s_.full ? 20 : 3); ++i) {
      auto r = http(b_.api, "PUT", subject, "{\"doc\":{\"v\":\"" + std::string(20u << 20, 'o') + "\"}}");
      if (r.status != 413 || r.body.find("body_too_large") == std::string::npos) {
        clear = false;
        note += "20 MiB body answered " + std::to_string(r.status) + " " + r.body.substr(0, 200) + "; ";
      }
    }
    auto r = http(b_.api, "PUT", subject, "{\"doc\":{\"v\":\"" + std::string(2u << 20, 'o') + "\"}}");
    const bool value_refused = r.status == 400 && r.body.find("\"message\"") != std::string::npos;
    if (!value_refused) {
      clear = false;
      note += "a 2 MiB value answered " + std::to_string(r.status) + " " + r.body.substr(0, 200) + "; ";
    }
    if (clear)
      note = "20 MiB bodies: 413 body_too_large; a 2 MiB value: 400 " + r.body.substr(0, 160);
    const bool served = served_node("oversized");
    add_row("oversized documents through the API", true, 96u << 10, served && clear, note);
  }

  // (d) Deeply nested JSON: just over the depth limit, and far over it.
  void nested() {
    if (!begin("nested"))
      return;
    std::string note;
    bool clear = true;
    for (std::size_t depth : {std::size_t{129}, s_.nest_depth}) {
      std::string body = "{\"doc\":{\"v\":";
      body += std::string(depth, '[');
      body += std::string(depth, ']');
      body += "}}";
      auto r = http(b_.api, "PUT", "/v1/docs/" + b_.id + "/deep", body);
      const bool ok = r.status == 400 && r.body.find("bad_json") != std::string::npos;
      clear = clear && ok;
      note += "depth " + std::to_string(depth) + ": " + std::to_string(r.status) + " " +
              (ok ? std::string("bad_json") : r.body.substr(0, 120)) + "; ";
    }
    const bool served = served_node("nested");
    add_row("deeply nested JSON through the API", true, 96u << 10, served && clear, note);
  }

  // (e) Relay clients flooding lookups (default limits: 50/s, burst 200,
  // 200 strikes then goodbye(abuse)).
  void relay_flood() {
    if (!begin("relay"))
      return;
    struct rclient {
      tcp_socket sock;
      relay::relay_client cl;
      protocol::public_key pub;
      bool welcomed = false, bye = false, closed = false;
      std::size_t refused = 0;
    };
    auto make = [&] {
      auto me = protocol::identity::from_seed(seed_bytes(rng_));
      auto rc = std::make_unique<rclient>(rclient{tcp_socket(relay_addr_),
                                                   relay::relay_client(me, relay_id_, seed_bytes(rng_), unix_ms()),
                                                   me.pub()});
      (void)rc->sock.send_all(rc->cl.start());
      return rc;
    };
    auto drive = [&](rclient& c, int ms) {
      std::string in;
      if (!c.sock.receive(in, ms))
        c.closed = true;
      auto out = in.empty() ? c.cl.tick(unix_ms()) : c.cl.receive(in, unix_ms());
      for (auto& e : out.events) {
        c.welcomed = c.welcomed || std::holds_alternative<relay::welcomed>(e);
        c.bye = c.bye || std::holds_alternative<relay::goodbye>(e);
        c.refused += std::holds_alternative<relay::refused>(e) ? 1 : 0;
      }
      out.to_send += c.cl.take_to_send();
      if (!out.to_send.empty() && !c.closed)
        (void)c.sock.send_all(out.to_send);
      return out.events;
    };
    std::vector<std::unique_ptr<rclient>> fl;
    for (std::size_t i = 0; i < s_.relay_flooders; ++i)
      fl.push_back(make());
    auto honest = make();
    eventually([&] {
      bool all = honest->welcomed || (drive(*honest, 5), honest->welcomed);
      for (auto& c : fl)
        all = (c->welcomed || (drive(*c, 5), c->welcomed)) && all;
      return all;
    }, 10s);
    const auto target = honest->cl.state() == relay::client_state::established
                            ? protocol::identity::from_seed(seed_bytes(rng_)).pub()
                            : protocol::public_key{};
    std::size_t cut = 0;
    for (auto& c : fl) {
      for (std::size_t i = 0; i < s_.relay_lookups && !c->closed; ++i) {
        (void)c->cl.lookup(target);
        if (i % 100 == 99) {
          if (!c->sock.send_all(c->cl.take_to_send()))
            c->closed = true;
          drive(*c, 0);
        }
      }
      (void)c->sock.send_all(c->cl.take_to_send());
    }
    for (auto& c : fl) {
      eventually([&] { return drive(*c, 20), c->bye || c->closed; }, 10s);
      cut += (c->bye || c->closed) ? 1 : 0;
    }
    // The honest client announces and finds its own record.
    bool served = honest->welcomed && !honest->closed &&
                  honest->cl.announce({"198.51.100.7:7411"}, 600'000, unix_ms());
    bool found = false;
    if (served) {
      (void)honest->sock.send_all(honest->cl.take_to_send());
      bool announced = eventually([&] {
        for (auto& e : drive(*honest, 20))
          if (std::holds_alternative<relay::announced>(e))
            return true;
        return false;
      }, 5s);
      if (announced && honest->cl.lookup(honest->pub)) {
        (void)honest->sock.send_all(honest->cl.take_to_send());
        found = eventually([&] {
          for (auto& e : drive(*honest, 20))
            if (auto* l = std::get_if<relay::lookup_result>(&e); l && l->record)
              return true;
          return false;
        }, 5s);
      }
    }
    if (!found)
      last_why_ = "the honest relay client's announce and lookup failed";
    std::size_t refusals = 0;
    for (auto& c : fl)
      refusals += c->refused;
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "%zu clients x %zu lookups: %zu refused for rate, %zu of %zu clients cut off; the honest "
                  "client announced and looked itself up",
                  fl.size(), s_.relay_lookups, refusals, cut, fl.size());
    add_row("relay clients flooding lookups", false, 64u << 10, found && cut == fl.size(), buf);
  }

  // (f) Peers that never read. Each completes the handshake, subscribes
  // to B's feed, then asks for a full resync of it many times over (tens
  // of MiB of answers) and stops reading. B must build answers only as
  // the peer takes them, reset each one once it has taken nothing for
  // write_stall (20 s), stay within its bound, and keep serving.
  void nonreaders() {
    if (!begin("nonreader"))
      return;
    const std::string feed = "feed/" + b_.id;
    struct slow {
      std::unique_ptr<peer_conn> c;
      bool hello = false, asked = false;
    };
    std::vector<slow> all;
    for (std::size_t i = 0; i < s_.nonreaders; ++i) {
      slow x{std::make_unique<peer_conn>(b_.peer, protocol::identity::from_seed(seed_bytes(rng_)),
                                         seed_bytes(rng_))};
      // A small receive buffer: B's answers back up in B, not in our kernel.
      const int small = 16 << 10;
      ::setsockopt(x.c->fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
      all.push_back(std::move(x));
    }
    const auto t0 = clock_type::now();
    std::size_t asked = 0;
    // Read only until the offer arrives (the handshake needs it), then
    // send every request and never read again.
    eventually([&] {
      asked = 0;
      for (auto& x : all) {
        auto& c = *x.c;
        if (!x.asked && c.open()) {
          if (c.established() && !x.hello) {
            c.send(protocol::hello_msg{protocol::protocol_version,
                                       protocol::bind_replica(c.self(), rng_() | 1), "kith-abuse-nonreader"});
            c.send(protocol::subscribe_msg{{feed}});
            x.hello = true;
          }
          for (auto& m : c.pump()) {
            if (std::holds_alternative<protocol::offer_msg>(m) && !x.asked) {
              for (std::size_t k = 0; k < s_.nonreader_requests; ++k)
                c.send(protocol::resync_request_msg{feed, {}, 1024});
              x.asked = true;
            }
          }
        }
        if (x.asked)
          (void)c.pump(false); // write only
        asked += x.asked ? 1 : 0;
      }
      return asked == all.size();
    }, 20s);
    // B resets a connection it drops: our side's TCP state turns CLOSE
    // although we never read.
    auto reset = [](int fd) {
      tcp_info ti{};
      socklen_t len = sizeof ti;
      return ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && ti.tcpi_state == TCP_CLOSE;
    };
    std::size_t closed = 0;
    eventually([&] {
      closed = 0;
      for (auto& x : all) {
        if (x.c->queued() > 0)
          (void)x.c->pump(false);
        closed += reset(x.c->fd()) ? 1 : 0;
      }
      return closed == all.size();
    }, 30s);
    const auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    const bool served = served_node("nonreader");
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "%zu peers each asked for B's %zu-post feed %zu times and never read; %zu asked, "
                  "%zu reset by B within %.1f s",
                  all.size(), s_.feed_posts, s_.nonreader_requests, asked, closed, secs);
    if (closed < all.size())
      last_why_ = "B did not close every peer that does not read";
    all.clear();
    // Bound: per peer, the 4 MiB of answers B lets wait unsent
    // (sync_settings::max_unsent_bytes) and the few pages in the works
    // (at most 4, each under 1 MiB here); 32 MiB for the rest.
    add_row("peers that never read their answers", true, (32u << 10) + (8u << 10) * s_.nonreaders,
            served && closed == s_.nonreaders, buf);
  }

  settings s_;
  std::mt19937_64 rng_;
  std::string root_;
  node_proc b_, c_;
  std::unique_ptr<child> relay_;
  std::string relay_dir_;
  host_port relay_addr_;
  protocol::public_key relay_id_{};
  std::uint64_t idle_b_ = 0, idle_relay_ = 0, before_b_ = 0, before_relay_ = 0;
  std::unique_ptr<rss_sampler> sampler_;
  std::vector<row> rows_;
  int honest_ = 0;
  std::string only_;
  std::string last_why_;
};

} // namespace kith::abuse

int main(int argc, char** argv) {
  using namespace kith::abuse;
  settings s;
  s.seed = static_cast<std::uint64_t>(unix_ms());
  std::size_t flood_writes = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "kith-abuse-memory: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--kith")
      s.kith = next();
    else if (a == "--relay")
      s.relay = next();
    else if (a == "--seed")
      s.seed = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--flood-writes")
      flood_writes = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--only")
      s.only = next();
    else if (a == "--nonreaders")
      s.nonreaders = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--full")
      s.full = true;
    else if (a == "--quick")
      s.full = false;
    else {
      std::fprintf(stderr,
                   "usage: kith-abuse-memory --kith PATH --relay PATH [--quick|--full] [--seed N]\n"
                   "       [--only flood,sessions,oversized,nested,relay,nonreader] [--flood-writes N]\n");
      return 2;
    }
  }
  if (s.kith.empty() || s.relay.empty()) {
    std::fprintf(stderr, "kith-abuse-memory: --kith and --relay are required\n");
    return 2;
  }
  if (s.full) {
    s.flood_writes = 4000;
    s.sessions = 500;
    s.feed_posts = 300;
    s.nest_depth = 1'000'000;
    s.relay_flooders = 15;
    s.relay_lookups = 20'000;
    if (s.nonreaders == 4)
      s.nonreaders = 32;
  }
  if (flood_writes > 0)
    s.flood_writes = flood_writes;
  ::signal(SIGPIPE, SIG_IGN);
  harness h(s);
  return h.run();
}
