// The relay load benchmark: one real `kith-relay` process on loopback,
// driven by many clients from this program (the peers in forked processes,
// lookups and the circuit on threads). Four questions, each against a
// target and, where one makes sense, a baseline measured in the same run:
//
// * How many registered peers can one relay hold at once (each did the
//   real handshake and announced a signed record)? Target >= 20,000 on 2
//   cores. How long did registering them all take, and did any fail?
// * What does an idle registered peer cost the relay in memory? (RSS with
//   N peers - RSS with none) / N; target <= 4 KiB.
// * How many lookups of registered ids per second do K pipelining clients
//   get answered (every answer checked against the record its peer
//   announced)? Target >= 50,000/s; baseline: pings through the same
//   connections (the relay's per-request floor).
// * How fast do bytes cross a circuit between two clients (MB/s, one way,
//   64 KiB frames)? Baselines: raw loopback TCP with the same chunking, and
//   the relay's own per-hop work (open, decode, encode, seal) on one core.
//
//   kith-bench-relay [--quick] [--peers N] [--lookup-clients K] [--seconds T]
//                    [--mb M] [--relay PATH] [--peer-procs P] [--threads W] [--window L]
//                    [--connect-window C] [--verify-every V] [--seed S]
//                    [--relay-log-level L] [--dir DIR] [--keep] [--past-fd-limit]
//                    [--timeout-s S]
//
// Progress and a table go to stderr; stdout gets one JSON object per
// figure (docs/benchmarks.md). Exit status: 0; 1 when something failed or
// did not verify; 2 on bad arguments or when the machine cannot run it
// (relay program missing, open-file limit not raisable).
//
// Why the relay's limits are raised (relay.toml in the run's directory):
// every client here comes from one machine (127.0.0.1, and the peers
// from 32 loopback addresses in turn), so the per-address registration
// cap (16 by default) would refuse all but a few hundred peers, and the
// per-connection token bucket (50 requests/s) would cap 64 lookup clients
// at 3,200 lookups/s. Both exist against abuse from one address, which is
// not what this measures. Connection and registration caps are raised to
// fit N, and the circuit byte cap to fit M MB. Nothing else is changed.
//
// Every connection is a descriptor in the relay. When the relay's
// open-file limit (which it raises to its hard limit itself) cannot hold
// N peers and K lookup clients, the run holds as many peers as fit and
// says so (--past-fd-limit tries all N: what the relay does when out of
// descriptors).

#include "support/checks.hpp"
#include "support/json_line.hpp"
#include "support/proc.hpp"
#include "support/process.hpp"
#include "kith/protocol/channel.hpp"
#include "kith/protocol/crypto.hpp"
#include "kith/relay/client.hpp"
#include "kith/relay/messages.hpp"
#include "kith/relay/record.hpp"

#include <CLI/CLI.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using kith::bench::add_positive_option;
using kith::bench::add_text_option;
using kith::bench::add_u64_option;
using kith::bench::cpu_seconds;
using kith::bench::parse_command_line;
using kith::bench::quick_value;
using kith::bench::fmt;
using kith::bench::grouped;
using kith::bench::sleep_s;
using kith::bench::status_kib;

namespace fs = std::filesystem;
namespace protocol = kith::protocol;
namespace relay = kith::relay;
using steady = std::chrono::steady_clock;
using kith::bench::any_failure;
using kith::bench::check;
using kith::bench::json_line;
using kith::bench::seconds_since;

constexpr std::uint64_t default_seed = 20261122;

// Targets, printed beside the figures.
constexpr std::size_t target_peers = 20'000;
constexpr double target_bytes_per_peer = 4096; // 4 KiB
constexpr double target_lookups_per_s = 50'000;

constexpr std::size_t frame_bytes = 64u << 10;   // circuit chunks and the TCP baseline's writes
constexpr std::size_t pattern_bytes = 1u << 20;  // circuit payload: this block, repeated
constexpr std::uint64_t record_ttl_ms = 3'600'000; // no renewals during a run

// --- command line ------------------------------------------------------------------

// Filled from argv by read_options (just before main).
struct options {
  bool quick = false;
  bool keep = false;
  bool past_fd_limit = false; // try N peers even when the relay's fd limit cannot hold them
  std::uint64_t seed = default_seed;
  std::size_t peers = 20'000;
  std::size_t lookup_clients = 64;
  double seconds = 10;
  std::uint64_t mb = 200;
  std::string relay; // empty: ../relay/kith-relay next to this program
  std::size_t threads = 2;           // lookup client threads
  std::size_t peer_procs = 2;        // processes holding the peers
  std::size_t window = 32;          // lookups in flight per lookup client
  std::size_t connect_window = 256; // handshakes in flight per peer process
  std::uint64_t verify_every = 32;  // one answer in V gets its signature checked
  std::string relay_log_level = "info";
  std::string dir;
  double timeout_s = 180;
  bool no_resume = false; // the relay keeps no tickets (resume_tickets = 0)
};



// --- small helpers ----------------------------------------------------------------------

std::uint64_t unix_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch())
      .count();
}



void row(const std::string& a, const std::string& b, const std::string& c) {
  std::fprintf(stderr, "  %-38s %-22s %s\n", a.c_str(), b.c_str(), c.c_str());
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' '))
    s.pop_back();
  return s;
}

/// A 32-byte seed for (run seed, purpose, index): identities and channel
/// ephemerals are reproducible from the run's seed.
protocol::key_seed derive_seed(std::uint64_t seed, std::string_view purpose, std::uint64_t index) {
  char buf[16];
  std::memcpy(buf, &seed, 8);
  std::memcpy(buf + 8, &index, 8);
  return protocol::hash_of(std::string_view(buf, sizeof buf), "kith-bench-relay", purpose);
}



/// Kernel memory of every TCP socket on the machine, in pages
/// (/proc/net/sockstat "TCP: ... mem M"): socket buffers, not in any RSS.
std::uint64_t tcp_mem_pages() {
  std::ifstream f("/proc/net/sockstat");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("TCP:", 0) != 0)
      continue;
    const auto at = line.find(" mem ");
    if (at != std::string::npos)
      return std::strtoull(line.c_str() + at + 5, nullptr, 10);
  }
  return 0;
}

/// Descriptors a process has open (/proc/<pid>/fd), 0 if unknown.
std::uint64_t open_fds(pid_t pid) {
  std::error_code ec;
  std::uint64_t n = 0;
  for (fs::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec), end; !ec && it != end;
       it.increment(ec))
    ++n;
  return n;
}

/// Descriptors left free in the relay beyond its clients: /metrics
/// requests, and an accept that must not fail.
constexpr std::uint64_t relay_spare_fds = 16;

/// The 1-minute load average: other work on the machine skews every figure.
double loadavg_1m() {
  std::ifstream f("/proc/loadavg");
  double v = NAN;
  f >> v;
  return v;
}

/// The open-file limit of a process: soft and hard ("unlimited" = 0).
std::pair<std::uint64_t, std::uint64_t> nofile_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/limits");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("Max open files", 0) != 0)
      continue;
    std::istringstream s(line.substr(14));
    std::string soft, hard;
    s >> soft >> hard;
    return {std::strtoull(soft.c_str(), nullptr, 10), std::strtoull(hard.c_str(), nullptr, 10)};
  }
  return {0, 0};
}

struct host_port {
  std::string host;
  std::uint16_t port = 0;
};

std::optional<host_port> parse_addr(const std::string& text) {
  const std::string s = trimmed(text);
  const auto colon = s.rfind(':');
  if (colon == std::string::npos)
    return std::nullopt;
  host_port hp{s.substr(0, colon), 0};
  hp.port = static_cast<std::uint16_t>(std::strtoul(s.c_str() + colon + 1, nullptr, 10));
  if (hp.port == 0)
    return std::nullopt;
  return hp;
}

sockaddr_in to_sockaddr(const host_port& hp) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(hp.port);
  ::inet_pton(AF_INET, hp.host.c_str(), &a.sin_addr);
  return a;
}

/// One GET with a deadline; the body, or nullopt.
std::optional<std::string> http_get(const host_port& at, const std::string& target) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return std::nullopt;
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const auto a = to_sockaddr(at);
  std::string raw;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0) {
    const std::string req =
        "GET " + target + " HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[65536];
      for (;;) {
        const auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
          break;
        raw.append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  ::close(fd);
  const auto split = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 200", 0) != 0 || split == std::string::npos)
    return std::nullopt;
  return raw.substr(split + 4);
}

/// The value of an unlabelled Prometheus sample.
std::optional<double> metric(const std::string& text, const std::string& name) {
  std::istringstream s(text);
  std::string line;
  while (std::getline(s, line))
    if (line.rfind(name + " ", 0) == 0)
      return std::strtod(line.c_str() + name.size() + 1, nullptr);
  return std::nullopt;
}

// --- the open-file limit -------------------------------------------------------------

struct fd_limits {
  std::uint64_t soft_before = 0, hard_before = 0, soft = 0, hard = 0;
  bool raised_hard = false;
};

/// Raises this process's RLIMIT_NOFILE to at least `need` (the hard limit
/// too, which needs CAP_SYS_RESOURCE); the relay, started afterwards,
/// inherits it. Returns nullopt when `need` cannot be had.
std::optional<fd_limits> raise_fd_limit(std::uint64_t need) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return std::nullopt;
  fd_limits f;
  f.soft_before = rl.rlim_cur;
  f.hard_before = rl.rlim_max;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
    rlimit want{need, need};
    if (::setrlimit(RLIMIT_NOFILE, &want) == 0)
      f.raised_hard = true;
  }
  ::getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < need || rl.rlim_cur < rl.rlim_max) {
    rlimit want{rl.rlim_max, rl.rlim_max};
    ::setrlimit(RLIMIT_NOFILE, &want);
    ::getrlimit(RLIMIT_NOFILE, &rl);
  }
  f.soft = rl.rlim_cur;
  f.hard = rl.rlim_max;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
    return std::nullopt;
  return f;
}

// --- the relay process ---------------------------------------------------------------

using run_dir = kith::test::scratch_dir;

/// `kith-relay run` on 127.0.0.1 (any free ports), output in relay.log.
/// Killed (SIGKILL) if this program dies or forgets to stop it.
class relay_proc {
public:
  relay_proc(const std::string& program, const fs::path& dir, const std::string& log_level)
      : dir_(dir) {
    const std::string d = dir.string();
    const std::string log = (dir / "relay.log").string();
    std::vector<std::string> args{program,       "run",    "--data-dir",  d,
                                  "--listen",    "127.0.0.1:0", "--http", "127.0.0.1:0",
                                  "--log-level", log_level};
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    // fork + exec rather than posix_spawn: the child asks to die with us.
    // No other thread exists yet, so only async-signal-safe calls follow.
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent)
        ::_exit(127);
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::close(fd);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  ~relay_proc() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
  }
  relay_proc(const relay_proc&) = delete;
  relay_proc& operator=(const relay_proc&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }

  /// Waits for relay.addr (written last, once the relay answers).
  bool wait_ready(double limit_s) {
    const auto t0 = steady::now();
    while (seconds_since(t0) < limit_s) {
      if (fs::exists(dir_ / "relay.addr")) {
        auto a = parse_addr(slurp(dir_ / "relay.addr"));
        auto h = parse_addr(slurp(dir_ / "http.addr"));
        auto id = protocol::parse_id(trimmed(slurp(dir_ / "relay.id")));
        if (a && h && id) {
          addr = *a;
          http = *h;
          this->id = *id;
          return true;
        }
      }
      if (gone())
        return false;
      sleep_s(0.01);
    }
    return false;
  }

  /// True once the process has exited (reaps it).
  bool gone() {
    if (exited_)
      return true;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      exited_ = true;
      exit_ok_ = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    return exited_;
  }

  /// SIGINT (stop now: goodbye to everyone), then waits; true when it
  /// exited with status 0 within `limit_s`.
  bool stop(double limit_s) {
    if (!gone())
      ::kill(pid_, SIGINT);
    const auto t0 = steady::now();
    while (!gone() && seconds_since(t0) < limit_s)
      sleep_s(0.01);
    return exited_ && exit_ok_;
  }

  [[nodiscard]] std::uint64_t rss_kib() const { return status_kib(pid_, "VmRSS"); }
  [[nodiscard]] std::string log() const { return slurp(dir_ / "relay.log"); }

  /// /metrics, or empty when it does not answer.
  [[nodiscard]] std::string metrics() const { return http_get(http, "/metrics").value_or(""); }

  host_port addr;
  host_port http;
  protocol::public_key id;

private:
  fs::path dir_;
  pid_t pid_ = -1;
  bool exited_ = false;
  bool exit_ok_ = false;
};

std::string relay_toml(const options& opt) {
  const std::uint64_t conns = opt.peers + opt.lookup_clients + 64;
  const std::uint64_t circuit_bytes =
      std::max<std::uint64_t>(256ull << 20, opt.mb * 1'000'000 + (16u << 20));
  std::ostringstream t;
  t << "# Written by kith-bench-relay. All clients come from one machine, so the\n"
       "# per-address caps and the per-connection request rate are raised: they\n"
       "# guard against abuse from one address, which is not what is measured.\n"
       "[limits]\n"
    << "max_connections = " << conns << "\n"
    << "max_registrations = " << conns << "\n"
    << "max_registrations_per_ip = " << conns << "\n"
    // 10^6 keeps request_burst * 1000 inside the core's 32-bit token count.
    << "request_rate_per_s = 1000000\n"
    << "request_burst = 1000000\n"
    << "circuit_max_bytes = " << circuit_bytes << "\n";
  if (opt.no_resume)
    t << "resume_tickets = 0\n";
  return t.str();
}

// --- sockets ---------------------------------------------------------------------------

/// A non-blocking connect to `to`, from 127.0.0.<src> when src > 1 (so
/// more than one source address's worth of ports can be used).
int connect_nb(const sockaddr_in& to, unsigned src, std::string& err) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    err = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (src > 1) {
    ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sockaddr_in from{};
    from.sin_family = AF_INET;
    from.sin_addr.s_addr = htonl((127u << 24) | (src & 0xff));
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&from), sizeof from) != 0) {
      err = std::string("bind: ") + std::strerror(errno);
      ::close(fd);
      return -1;
    }
  }
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0 &&
      errno != EINPROGRESS) {
    err = std::string("connect: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

/// Writes what `out` holds from `off` until the socket would block.
/// False on a write error. Clears `out` once all of it is written (and
/// frees its memory when `shrink`).
bool flush(int fd, std::string& out, std::size_t& off, bool shrink) {
  while (off < out.size()) {
    const auto n = ::send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  if (shrink)
    std::string().swap(out);
  else
    out.clear();
  off = 0;
  return true;
}

enum class read_end { again, eof, error, stopped };

/// Reads until the socket would block, handing each piece to `on`; stops
/// early when `on` returns false.
template <class F>
read_end read_all(int fd, std::vector<char>& buf, F&& on) {
  for (;;) {
    const auto n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n > 0) {
      if (!on(std::string_view(buf.data(), static_cast<std::size_t>(n))))
        return read_end::stopped;
      continue;
    }
    if (n == 0)
      return read_end::eof;
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return read_end::again;
    return read_end::error;
  }
}

/// Failure reasons with counts; the first few distinct ones are kept.
class reasons {
public:
  void add(const std::string& why) {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = counts_.find(why); it != counts_.end())
      ++it->second;
    else if (counts_.size() < 8)
      counts_.emplace(why, 1);
  }
  [[nodiscard]] std::string summary() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::string s;
    for (const auto& [why, n] : counts_)
      s += (s.empty() ? "" : "; ") + grouped(n) + "x " + why;
    return s;
  }

private:
  mutable std::mutex mu_;
  std::map<std::string, std::uint64_t> counts_;
};

// --- 1. registered peers ----------------------------------------------------------------

/// What each peer announced, for checking lookup answers. Lives in memory
/// shared with the peer processes (mapped before they fork): a peer
/// process fills a slot, then counts the peer as registered (release);
/// main reads the slots after it has seen the count (acquire).
struct peer_slot {
  protocol::public_key id;
  std::uint64_t expiry_ms = 0;
  std::uint64_t seq = 0;
  std::uint8_t registered = 0;
};

/// The address peer i announces (nobody dials it; only its size matters).
std::string peer_address(std::size_t i) {
  return "127.0.0.1:" + std::to_string(10'000 + i % 50'000);
}

constexpr std::size_t max_peer_procs = 16;
constexpr std::size_t peer_source_addrs = 32;

/// Counters shared by main and the peer processes (lock-free atomics work
/// across processes in a MAP_SHARED mapping).
struct peer_counters {
  std::atomic<std::uint64_t> registered{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> dropped{0}; // lost after registering
  std::atomic<std::int64_t> last_registered_ns{0};
  std::atomic<std::uint32_t> stop{0};
  // The reconnect phase: main sets `reconnect`; every registered peer
  // closes its connection and connects again, offering its ticket.
  std::atomic<std::uint32_t> reconnect{0};
  std::atomic<std::uint64_t> reconnected{0}; // registered again
  std::atomic<std::uint64_t> resumed{0};     // of those, with a resumed handshake
  std::atomic<std::uint64_t> re_failed{0};
  std::atomic<std::int64_t> last_reconnected_ns{0};
  /// Each process's failure summary, written as it exits.
  char why[max_peer_procs][1024] = {};
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

/// An anonymous shared mapping holding the counters and N slots.
class peer_shm {
public:
  explicit peer_shm(std::size_t n) : n_(n) {
    bytes_ = sizeof(peer_counters) + n * sizeof(peer_slot);
    mem_ = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem_ == MAP_FAILED)
      throw std::runtime_error("mmap of the shared peer table failed");
    counters_ = new (mem_) peer_counters();
    slots_ = reinterpret_cast<peer_slot*>(static_cast<char*>(mem_) + sizeof(peer_counters));
    for (std::size_t i = 0; i < n; ++i)
      new (&slots_[i]) peer_slot();
  }
  ~peer_shm() { ::munmap(mem_, bytes_); }
  peer_shm(const peer_shm&) = delete;
  peer_shm& operator=(const peer_shm&) = delete;

  [[nodiscard]] peer_counters& counters() const { return *counters_; }
  [[nodiscard]] peer_slot* slots() const { return slots_; }
  [[nodiscard]] std::size_t size() const { return n_; }

private:
  std::size_t n_;
  std::size_t bytes_ = 0;
  void* mem_ = nullptr;
  peer_counters* counters_ = nullptr;
  peer_slot* slots_ = nullptr;
};

/// One peer process's share of the peers: an edge-triggered epoll loop
/// over non-blocking sockets, one relay_client each. Keeps at most
/// `connect_window` handshakes in flight, then holds the registered peers
/// (ticking their clients, so they ping as a node would) until told to
/// stop. Processes rather than threads: each has its own open-file limit.
class peer_loop {
public:
  peer_loop(const options& opt, const peer_shm& shm, const relay_proc& r, std::size_t n,
            std::size_t first, std::size_t step)
      : opt_(opt), c_(shm.counters()), slots_(shm.slots()), relay_id_(r.id),
        to_(to_sockaddr(r.addr)), rbuf_(64u << 10) {
    for (std::size_t i = first; i < n; i += step)
      peers_.push_back(peer{i});
  }

  void run() {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    std::vector<epoll_event> evs(512);
    std::size_t next = 0;
    auto last_tick = steady::now();
    while (c_.stop.load(std::memory_order_relaxed) == 0) {
      if (!reconnecting_ && c_.reconnect.load(std::memory_order_acquire) != 0) {
        reconnecting_ = true;
        for (auto& p : peers_)
          if (p.state == st::registered)
            hang_up(p); // a network change: the next start() offers the ticket
        next = 0;
      }
      while (in_flight_ < opt_.connect_window && next < peers_.size())
        if (auto& p = peers_[next++]; p.state == st::idle)
          start(p);
      const int n = ::epoll_wait(ep_, evs.data(), static_cast<int>(evs.size()), 50);
      now_ms_ = unix_ms();
      for (int i = 0; i < n; ++i) {
        const auto& ev = evs[static_cast<std::size_t>(i)];
        handle(peers_[ev.data.u64], ev.events);
      }
      if (steady::now() - last_tick >= std::chrono::seconds(1)) {
        last_tick = steady::now();
        for (auto& p : peers_)
          if (p.fd >= 0 && (p.state == st::handshaking || p.state == st::registered))
            output(p, p.client->tick(now_ms_));
      }
    }
    for (auto& p : peers_)
      if (p.fd >= 0)
        ::close(p.fd);
    ::close(ep_);
  }

  /// "failed: ...; dropped: ..." for main, cut to fit `out`.
  void write_reasons(char* out, std::size_t cap) const {
    std::string s;
    if (auto f = failed_.summary(); !f.empty())
      s += "failed: " + f;
    if (auto d = dropped_.summary(); !d.empty())
      s += (s.empty() ? "" : "; ") + std::string("dropped: ") + d;
    s = s.substr(0, cap - 1);
    std::memcpy(out, s.c_str(), s.size() + 1);
  }

private:
  enum class st : std::uint8_t { idle, connecting, handshaking, registered, dead };
  struct peer {
    explicit peer(std::size_t i) : index(i) {}
    std::size_t index;
    int fd = -1;
    st state = st::idle;
    std::optional<relay::relay_client> client;
    std::string out;
    std::size_t off = 0;
    std::optional<protocol::resume_ticket> ticket; // from the last session
    bool again = false;                            // in the reconnect phase
  };

  /// Closes a registered peer's connection, keeping its ticket.
  void hang_up(peer& p) {
    ::close(p.fd);
    p.fd = -1;
    p.client.reset();
    std::string().swap(p.out);
    p.off = 0;
    p.state = st::idle;
    p.again = true;
  }

  void start(peer& p) {
    auto& slot = slots_[p.index];
    const auto self = protocol::identity::from_seed(derive_seed(opt_.seed, "peer", p.index));
    slot.id = self.pub();
    p.client.emplace(self, relay_id_,
                     derive_seed(opt_.seed, p.again ? "peer-session-again" : "peer-session", p.index),
                     unix_ms());
    if (p.ticket)
      p.client->offer_ticket(*p.ticket);
    // Peers connect from 127.0.0.2 to 127.0.0.33 in turn. From a single
    // source address the kernel's search for a free ephemeral port towards
    // one destination (__inet_hash_connect) grows with every connection
    // already open, and at 20,000 it took more CPU than the relay did.
    const auto src = static_cast<unsigned>(2 + p.index % peer_source_addrs);
    std::string err;
    p.fd = connect_nb(to_, src, err);
    if (p.fd < 0) {
      fail(p, err, true);
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = static_cast<std::uint64_t>(&p - peers_.data());
    ::epoll_ctl(ep_, EPOLL_CTL_ADD, p.fd, &ev);
    p.state = st::connecting;
    ++in_flight_;
  }

  void handle(peer& p, std::uint32_t events) {
    if (p.fd < 0)
      return;
    if (p.state == st::connecting) {
      if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0)
        return;
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        fail(p, std::string("connect: ") + std::strerror(err));
        return;
      }
      p.state = st::handshaking;
      p.out += p.client->start();
    }
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
      const auto end = read_all(p.fd, rbuf_, [&](std::string_view bytes) {
        output(p, p.client->receive(bytes, now_ms_));
        return p.fd >= 0;
      });
      if (end == read_end::stopped)
        return;
      if (end == read_end::eof) {
        fail(p, "the relay closed the connection");
        return;
      }
      if (end == read_end::error) {
        fail(p, std::string("read: ") + std::strerror(errno));
        return;
      }
    }
    if (!flush(p.fd, p.out, p.off, true))
      fail(p, std::string("write: ") + std::strerror(errno));
  }

  void output(peer& p, relay::client_output out) {
    p.out += out.to_send;
    for (auto& e : out.events) {
      if (p.fd < 0)
        return;
      if (std::holds_alternative<relay::welcomed>(e)) {
        p.ticket = p.client->take_ticket();
        auto r = p.client->announce({peer_address(p.index)}, record_ttl_ms, now_ms_);
        if (!r) {
          fail(p, "announce: " + r.error);
          return;
        }
        p.out += p.client->take_to_send();
      } else if (auto* a = std::get_if<relay::announced>(&e)) {
        if (p.state != st::registered && p.again) {
          p.state = st::registered;
          --in_flight_;
          c_.last_reconnected_ns.store(steady_ns(), std::memory_order_relaxed);
          if (p.client->resumed())
            c_.resumed.fetch_add(1, std::memory_order_relaxed);
          c_.reconnected.fetch_add(1, std::memory_order_release);
        } else if (p.state != st::registered) {
          auto& slot = slots_[p.index];
          slot.expiry_ms = a->expiry_ms;
          slot.seq = a->seq;
          slot.registered = 1;
          p.state = st::registered;
          --in_flight_;
          c_.last_registered_ns.store(steady_ns(), std::memory_order_relaxed);
          c_.registered.fetch_add(1, std::memory_order_release);
        }
      } else if (auto* r = std::get_if<relay::refused>(&e)) {
        fail(p, std::string("refused ") + relay::request_kind_name(r->kind) + ": " +
                    relay::code_name(r->code) + " (" + r->detail + ")");
        return;
      } else if (auto* g = std::get_if<relay::goodbye>(&e)) {
        fail(p, std::string("goodbye: ") + relay::code_name(g->code) + " (" + g->reason + ")");
        return;
      }
    }
    if (out.error) {
      fail(p, "client: " + *out.error);
      return;
    }
    if (p.fd >= 0 && !flush(p.fd, p.out, p.off, true))
      fail(p, std::string("write: ") + std::strerror(errno));
  }

  void fail(peer& p, const std::string& why, bool never_started = false) {
    if (p.state == st::dead)
      return;
    if (p.fd >= 0)
      ::close(p.fd); // also leaves the epoll set
    p.fd = -1;
    p.client.reset();
    std::string().swap(p.out);
    if (p.state == st::registered) {
      dropped_.add(why);
      c_.dropped.fetch_add(1, std::memory_order_relaxed);
    } else {
      if (!never_started)
        --in_flight_;
      failed_.add(why);
      (p.again ? c_.re_failed : c_.failed).fetch_add(1, std::memory_order_release);
    }
    p.state = st::dead;
  }

  const options& opt_;
  peer_counters& c_;
  peer_slot* slots_;
  protocol::public_key relay_id_;
  sockaddr_in to_;
  std::vector<char> rbuf_;
  std::vector<peer> peers_;
  reasons failed_;
  reasons dropped_;
  int ep_ = -1;
  std::size_t in_flight_ = 0;
  std::uint64_t now_ms_ = 0;
  bool reconnecting_ = false;
};

/// Forks the peer processes (main has no other thread yet). Each runs its
/// loop until counters().stop, writes its failure summary and exits.
std::vector<pid_t> fork_peer_procs(const options& opt, const peer_shm& shm, const relay_proc& r,
                                   std::size_t n, std::size_t procs) {
  std::vector<pid_t> pids;
  const pid_t parent = ::getpid();
  for (std::size_t k = 0; k < procs; ++k) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent)
        ::_exit(1);
      int code = 0;
      try {
        peer_loop loop(opt, shm, r, n, k, procs);
        loop.run();
        loop.write_reasons(shm.counters().why[k], sizeof shm.counters().why[k]);
      } catch (const std::exception& e) {
        std::cerr << "peer process " << k << ": " << e.what() << '\n';
        code = 1;
      }
      ::_exit(code); // no destructors of main's objects (the relay, the run directory)
    }
    if (pid > 0)
      pids.push_back(pid);
  }
  return pids;
}

/// Tells the peer processes to stop and reaps them; false if one had to be
/// killed or failed.
bool stop_peer_procs(const peer_shm& shm, std::vector<pid_t>& pids) {
  shm.counters().stop.store(1);
  bool ok = true;
  const auto t0 = steady::now();
  for (pid_t pid : pids) {
    int st = 0;
    while (::waitpid(pid, &st, WNOHANG) != pid) {
      if (seconds_since(t0) > 30) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &st, 0);
        ok = false;
        break;
      }
      sleep_s(0.01);
    }
    ok = ok && WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }
  pids.clear();
  return ok;
}

// --- 3. lookups (and pings) ----------------------------------------------------------------

enum class ask { lookup, ping };

/// Shared by the lookup threads and main(). A phase starts when main bumps
/// `phase` (after setting its kind and end); each thread then keeps its
/// clients' windows full until the end, drains, adds its counts and bumps
/// `done`.
struct lookup_shared {
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> welcomed{0};
  std::atomic<std::size_t> failed{0};
  std::atomic<int> phase{0};
  std::atomic<int> done{0};
  std::atomic<int> kind{0};
  std::atomic<std::int64_t> end_ns{0};
  // Per phase, summed by the threads.
  std::atomic<std::uint64_t> answered{0};     // before the end: the measured figure
  std::atomic<std::uint64_t> late{0};         // after the end (drained)
  std::atomic<std::uint64_t> verified{0};     // matched the announced record
  std::atomic<std::uint64_t> sig_checked{0};  // of those, signature verified too
  std::atomic<std::uint64_t> bad{0};          // did not match
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> lost{0};         // never answered
  reasons why;
};

/// One thread's lookup clients: raw secure channels (the real handshake)
/// speaking relay messages directly, so that checking an answer costs a
/// comparison with the announced record instead of the relay_client's
/// ed25519 verification of every record (~90 us, which would make this
/// process, not the relay, the bottleneck). One answer in V still gets
/// the full signature check.
class lookup_loop {
public:
  lookup_loop(const options& opt, lookup_shared& sh, const relay_proc& r,
              const peer_slot* slots, const std::vector<std::uint32_t>& targets,
              std::size_t first, std::size_t step, std::uint64_t thread_index)
      : opt_(opt), sh_(sh), relay_id_(r.id), to_(to_sockaddr(r.addr)), slots_(slots),
        targets_(targets), rng_(opt.seed ^ (0x9e3779b97f4a7c15ull * (thread_index + 1))),
        rbuf_(256u << 10) {
    for (std::size_t k = first; k < opt.lookup_clients; k += step)
      conns_.push_back(conn{k});
  }

  void run() {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    for (auto& c : conns_)
      start(c);
    std::vector<epoll_event> evs(256);
    int seen_phase = 0;
    bool active = false;
    while (!sh_.stop.load(std::memory_order_relaxed)) {
      const int ph = sh_.phase.load(std::memory_order_acquire);
      if (ph != seen_phase) {
        seen_phase = ph;
        kind_ = sh_.kind.load() == 0 ? ask::lookup : ask::ping;
        end_ns_ = sh_.end_ns.load();
        active = issuing_ = true;
        counts_ = {};
        for (auto& c : conns_)
          fill(c);
      }
      const int n = ::epoll_wait(ep_, evs.data(), static_cast<int>(evs.size()), active ? 1 : 5);
      now_ns_ = steady_ns();
      if (issuing_ && now_ns_ >= end_ns_)
        issuing_ = false;
      for (int i = 0; i < n; ++i)
        handle(conns_[evs[static_cast<std::size_t>(i)].data.u64], evs[static_cast<std::size_t>(i)].events);
      if (active && !issuing_) {
        std::size_t outstanding = 0;
        for (const auto& c : conns_)
          outstanding += c.fd >= 0 ? c.outstanding : 0;
        if (outstanding == 0 || now_ns_ >= end_ns_ + 5'000'000'000) {
          counts_.lost += outstanding;
          for (auto& c : conns_)
            c.outstanding = 0;
          report();
          active = false;
        }
      }
    }
    for (auto& c : conns_)
      if (c.fd >= 0)
        ::close(c.fd);
    ::close(ep_);
  }

private:
  struct conn {
    explicit conn(std::size_t i) : k(i) {}
    std::size_t k;
    int fd = -1;
    bool connecting = true;
    bool welcomed = false;
    std::optional<protocol::channel> ch;
    std::string out;
    std::size_t off = 0;
    std::uint64_t next_req = 1;
    std::size_t outstanding = 0;
    std::vector<std::pair<std::uint64_t, std::uint32_t>> ring; // req -> target slot
  };
  struct counts {
    std::uint64_t answered = 0, late = 0, verified = 0, sig_checked = 0, bad = 0, refused = 0,
                  lost = 0;
  };

  void start(conn& c) {
    const auto self = protocol::identity::from_seed(derive_seed(opt_.seed, "lookup", c.k));
    protocol::channel_limits lim{128u << 10, 10'000, (128u << 10) + 64};
    c.ch.emplace(self, protocol::channel::role::initiator,
                 derive_seed(opt_.seed, "lookup-session", c.k), unix_ms(), relay_id_, lim);
    c.ring.resize(opt_.window);
    std::string err;
    c.fd = connect_nb(to_, 1, err);
    if (c.fd < 0) {
      fail(c, err);
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = static_cast<std::uint64_t>(&c - conns_.data());
    ::epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev);
  }

  void fail(conn& c, const std::string& why) {
    if (c.fd >= 0)
      ::close(c.fd);
    c.fd = -1;
    counts_.lost += c.outstanding;
    c.outstanding = 0;
    sh_.failed.fetch_add(1);
    sh_.why.add(why);
  }

  void handle(conn& c, std::uint32_t events) {
    if (c.fd < 0)
      return;
    if (c.connecting) {
      if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0)
        return;
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        fail(c, std::string("connect: ") + std::strerror(err));
        return;
      }
      c.connecting = false;
      c.out += c.ch->start();
    }
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
      const auto end = read_all(c.fd, rbuf_, [&](std::string_view bytes) { return receive(c, bytes); });
      if (end == read_end::stopped)
        return;
      if (end != read_end::again) {
        fail(c, end == read_end::eof ? "the relay closed the connection"
                                     : std::string("read: ") + std::strerror(errno));
        return;
      }
    }
    if (!flush(c.fd, c.out, c.off, false))
      fail(c, std::string("write: ") + std::strerror(errno));
  }

  bool receive(conn& c, std::string_view bytes) {
    auto o = c.ch->receive(bytes);
    c.out += o.to_send;
    for (const auto& f : o.frames) {
      std::string why;
      auto m = relay::decode_relay_message(f, relay::wire_limits{}, &why);
      if (!m) {
        fail(c, "undecodable message from the relay: " + why);
        return false;
      }
      if (std::holds_alternative<relay::welcome_msg>(*m)) {
        if (!c.welcomed) {
          c.welcomed = true;
          sh_.welcomed.fetch_add(1, std::memory_order_release);
        }
      } else if (auto* l = std::get_if<relay::lookup_result_msg>(&*m)) {
        answer(c, l->req, &*l);
      } else if (auto* p = std::get_if<relay::pong_msg>(&*m)) {
        answer(c, p->req, nullptr);
      } else if (auto* r = std::get_if<relay::refused_msg>(&*m)) {
        ++counts_.refused;
        sh_.why.add(std::string("refused: ") + relay::code_name(r->code) + " (" + r->detail + ")");
        answer(c, r->req, nullptr, true);
      } else if (auto* g = std::get_if<relay::goodbye_msg>(&*m)) {
        fail(c, std::string("goodbye: ") + relay::code_name(g->code) + " (" + g->reason + ")");
        return false;
      }
    }
    if (o.error) {
      fail(c, "channel: " + *o.error);
      return false;
    }
    if (issuing_)
      fill(c);
    return true;
  }

  void answer(conn& c, std::uint64_t req, const relay::lookup_result_msg* l, bool refused = false) {
    auto& slot = c.ring[req % opt_.window];
    if (c.outstanding == 0 || slot.first != req) {
      ++counts_.bad;
      sh_.why.add("an answer to a request not asked (req " + std::to_string(req) + ")");
      return;
    }
    --c.outstanding;
    slot.first = 0;
    if (refused)
      return;
    if (kind_ == ask::lookup) {
      const auto& want = slots_[slot.second];
      bool ok = l != nullptr && l->id == want.id && l->record && l->record->id == want.id &&
                l->record->addresses.size() == 1 &&
                l->record->addresses[0] == peer_address(slot.second) &&
                l->record->expiry_ms == want.expiry_ms && l->record->seq == want.seq;
      if (ok && rng_() % opt_.verify_every == 0) {
        ok = relay::verify_record(*l->record);
        counts_.sig_checked += ok ? 1 : 0;
      }
      if (!ok) {
        ++counts_.bad;
        sh_.why.add("a lookup answer did not match the announced record");
        return;
      }
      ++counts_.verified;
    } else if (l != nullptr) {
      ++counts_.bad;
      return;
    }
    if (now_ns_ < end_ns_)
      ++counts_.answered;
    else
      ++counts_.late;
  }

  /// Tops the window up: requests are batched into one write.
  void fill(conn& c) {
    if (c.fd < 0 || !c.welcomed || !issuing_)
      return;
    bool any = false;
    while (c.outstanding < opt_.window) {
      const std::uint64_t req = c.next_req++;
      auto& slot = c.ring[req % opt_.window];
      if (slot.first != 0)
        break; // that slot's answer is still out (refused answers keep order too)
      std::optional<std::string> sealed;
      if (kind_ == ask::lookup) {
        const auto t = targets_[rng_() % targets_.size()];
        slot = {req, t};
        sealed = c.ch->seal(relay::encode_relay_message(relay::lookup_msg{req, slots_[t].id}));
      } else {
        slot = {req, 0};
        sealed = c.ch->seal(relay::encode_relay_message(relay::ping_msg{req}));
      }
      if (!sealed) {
        fail(c, "seal: " + c.ch->close_reason());
        return;
      }
      c.out += *sealed;
      ++c.outstanding;
      any = true;
    }
    if (any && !flush(c.fd, c.out, c.off, false))
      fail(c, std::string("write: ") + std::strerror(errno));
  }

  void report() {
    sh_.answered += counts_.answered;
    sh_.late += counts_.late;
    sh_.verified += counts_.verified;
    sh_.sig_checked += counts_.sig_checked;
    sh_.bad += counts_.bad;
    sh_.refused += counts_.refused;
    sh_.lost += counts_.lost;
    sh_.done.fetch_add(1, std::memory_order_release);
  }

  const options& opt_;
  lookup_shared& sh_;
  protocol::public_key relay_id_;
  sockaddr_in to_;
  const peer_slot* slots_;
  const std::vector<std::uint32_t>& targets_;
  std::mt19937_64 rng_;
  std::vector<char> rbuf_;
  std::vector<conn> conns_;
  int ep_ = -1;
  ask kind_ = ask::lookup;
  bool issuing_ = false;
  std::int64_t end_ns_ = 0;
  std::int64_t now_ns_ = 0;
  counts counts_;
};

struct phase_result {
  ask kind = ask::lookup;
  double seconds = 0;
  std::uint64_t answered = 0, late = 0, verified = 0, sig_checked = 0, bad = 0, refused = 0,
                lost = 0;
  double relay_cpu_s = 0;
  [[nodiscard]] double per_s() const { return seconds > 0 ? static_cast<double>(answered) / seconds : 0; }
};

phase_result run_phase(lookup_shared& sh, ask kind, double seconds, std::size_t threads,
                       relay_proc& r) {
  sh.answered = sh.late = sh.verified = sh.sig_checked = sh.bad = sh.refused = sh.lost = 0;
  sh.done = 0;
  const double cpu0 = cpu_seconds(r.pid()).value_or(0);
  const auto t0 = steady::now();
  sh.kind = kind == ask::lookup ? 0 : 1;
  sh.end_ns = steady_ns() + static_cast<std::int64_t>(seconds * 1e9);
  sh.phase.fetch_add(1, std::memory_order_release);
  sleep_s(seconds);
  const double cpu1 = cpu_seconds(r.pid()).value_or(0);
  const double took = seconds_since(t0);
  while (sh.done.load(std::memory_order_acquire) < static_cast<int>(threads))
    sleep_s(0.005);
  phase_result p;
  p.kind = kind;
  p.seconds = std::min(took, seconds); // answers after the end are not counted
  p.answered = sh.answered;
  p.late = sh.late;
  p.verified = sh.verified;
  p.sig_checked = sh.sig_checked;
  p.bad = sh.bad;
  p.refused = sh.refused;
  p.lost = sh.lost;
  p.relay_cpu_s = cpu1 - cpu0;
  return p;
}

// --- 4. circuit throughput ------------------------------------------------------------

/// The circuit's payload: a seeded 1 MiB block, repeated.
std::string make_pattern(std::uint64_t seed) {
  std::mt19937_64 rng(seed ^ 0xc1c1c1c1ull);
  std::string s(pattern_bytes, '\0');
  for (std::size_t i = 0; i < s.size(); i += 8) {
    const std::uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  return s;
}

struct circuit_shared {
  std::atomic<bool> b_ready{false};
  std::atomic<bool> done{false};
  std::atomic<bool> failed{false};
  std::atomic<std::int64_t> t0_ns{0};
  std::atomic<std::int64_t> t_end_ns{0};
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> mismatches{0};
  protocol::public_key b_id;
  reasons why;
};

/// One end of the circuit, on its own thread: A opens the circuit to B
/// and pushes `total` bytes; B accepts, checks every byte against the
/// pattern and stops the clock at the last one.
void circuit_end(bool is_a, const options& opt, const relay_proc& r, circuit_shared& sh,
                 const std::string& pattern, std::uint64_t total, double timeout_s) {
  const auto self = protocol::identity::from_seed(derive_seed(opt.seed, "circuit", is_a ? 0 : 1));
  if (!is_a)
    sh.b_id = self.pub();
  relay::relay_client client(self, r.id, derive_seed(opt.seed, "circuit-session", is_a ? 0 : 1),
                             unix_ms());
  std::string err;
  const int fd = connect_nb(to_sockaddr(r.addr), 1, err);
  auto fail = [&](const std::string& why) {
    if (sh.done)
      return; // B has everything; what follows (B leaving) is not a failure
    sh.why.add(std::string(is_a ? "A: " : "B: ") + why);
    sh.failed = true;
  };
  if (fd < 0) {
    fail(err);
    return;
  }
  int big = 4 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  std::string out = client.start();
  std::size_t off = 0;
  std::vector<char> buf(256u << 10);
  bool welcomed = false, asked = false, sending = false;
  relay::circuit_id circuit = 0;
  std::uint64_t sent = 0, got = 0;
  const auto t_start = steady::now();
  auto last_tick = steady::now();
  while (!sh.done && !sh.failed) {
    if (seconds_since(t_start) > timeout_s) {
      fail("timed out");
      break;
    }
    if (is_a && welcomed && !asked && sh.b_ready) {
      auto rr = client.open_circuit(sh.b_id);
      if (!rr) {
        fail("open_circuit: " + rr.error);
        break;
      }
      asked = true;
      out += client.take_to_send();
    }
    // A: keep about 1 MiB of sealed frames ahead of the socket.
    while (sending && sent < total && out.size() - off < (1u << 20)) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(frame_bytes, total - sent));
      auto rr = client.circuit_send(circuit, std::string_view(pattern).substr(sent % pattern_bytes, n));
      if (!rr) {
        fail("circuit_send: " + rr.error);
        break;
      }
      sent += n;
      out += client.take_to_send();
    }
    if (!flush(fd, out, off, false)) {
      fail(std::string("write: ") + std::strerror(errno));
      break;
    }
    // A with more to send waits for room in the socket, not for the 10 ms.
    const bool more = off < out.size() || (sending && sent < total);
    pollfd p{fd, static_cast<short>(POLLIN | (more ? POLLOUT : 0)), 0};
    ::poll(&p, 1, 10);
    const auto now = unix_ms();
    relay::client_output o;
    const auto end = read_all(fd, buf, [&](std::string_view bytes) {
      auto x = client.receive(bytes, now);
      o.to_send += x.to_send;
      for (auto& e : x.events)
        o.events.push_back(std::move(e));
      if (x.error)
        o.error = x.error;
      return true;
    });
    if (steady::now() - last_tick > std::chrono::seconds(1)) {
      last_tick = steady::now();
      auto x = client.tick(now);
      o.to_send += x.to_send;
      if (x.error)
        o.error = x.error;
    }
    out += o.to_send;
    for (auto& e : o.events) {
      if (std::holds_alternative<relay::welcomed>(e)) {
        welcomed = true;
        if (!is_a)
          sh.b_ready = true;
      } else if (auto* in = std::get_if<relay::circuit_incoming>(&e)) {
        auto rr = client.accept_circuit(in->circuit);
        if (!rr)
          fail("accept_circuit: " + rr.error);
        out += client.take_to_send();
      } else if (auto* op = std::get_if<relay::circuit_opened>(&e)) {
        circuit = op->circuit;
        sending = true;
        sh.t0_ns = steady_ns();
      } else if (auto* d = std::get_if<relay::circuit_data>(&e)) {
        // Check each byte against the pattern at its stream offset.
        std::size_t done_here = 0;
        while (done_here < d->bytes.size()) {
          const std::size_t at = (got + done_here) % pattern_bytes;
          const std::size_t n = std::min(d->bytes.size() - done_here, pattern_bytes - at);
          if (std::memcmp(d->bytes.data() + done_here, pattern.data() + at, n) != 0)
            ++sh.mismatches;
          done_here += n;
        }
        got += d->bytes.size();
        sh.received = got;
        if (got >= total) {
          sh.t_end_ns = steady_ns();
          sh.done = true;
        }
      } else if (auto* cc = std::get_if<relay::circuit_closed>(&e)) {
        fail(std::string("circuit closed: ") + relay::code_name(cc->code) + " (" + cc->reason + ")");
      } else if (auto* rf = std::get_if<relay::refused>(&e)) {
        fail(std::string("refused ") + relay::request_kind_name(rf->kind) + ": " +
             relay::code_name(rf->code) + " (" + rf->detail + ")");
      } else if (auto* g = std::get_if<relay::goodbye>(&e)) {
        fail(std::string("goodbye: ") + relay::code_name(g->code) + " (" + g->reason + ")");
      }
    }
    if (o.error) {
      fail("client: " + *o.error);
      break;
    }
    if (end == read_end::eof || end == read_end::error) {
      fail("the relay connection ended");
      break;
    }
  }
  ::close(fd);
}

struct circuit_result {
  bool ok = false;
  double seconds = 0;
  std::uint64_t bytes = 0;
  std::uint64_t mismatches = 0;
  double relay_cpu_s = 0;
  std::string why;
  [[nodiscard]] double mb_per_s() const { return seconds > 0 ? static_cast<double>(bytes) / 1e6 / seconds : 0; }
};

circuit_result run_circuit(const options& opt, relay_proc& r, const std::string& pattern) {
  circuit_shared sh;
  const std::uint64_t total = opt.mb * 1'000'000;
  const double cpu0 = cpu_seconds(r.pid()).value_or(0);
  std::thread b([&] { circuit_end(false, opt, r, sh, pattern, total, opt.timeout_s); });
  while (!sh.b_ready && !sh.failed)
    sleep_s(0.001); // B's id is set before it connects; A needs it registered
  std::thread a([&] { circuit_end(true, opt, r, sh, pattern, total, opt.timeout_s); });
  a.join();
  b.join();
  circuit_result c;
  c.ok = sh.done && !sh.failed;
  c.bytes = sh.received;
  c.mismatches = sh.mismatches;
  c.seconds = static_cast<double>(sh.t_end_ns - sh.t0_ns) / 1e9;
  c.relay_cpu_s = cpu_seconds(r.pid()).value_or(0) - cpu0;
  c.why = sh.why.summary();
  return c;
}

/// Baseline: `bytes` through one loopback TCP connection in 64 KiB writes
/// (one thread writes, this one reads). Seconds, or nullopt.
std::optional<double> loopback_push(std::uint64_t bytes, const std::string& pattern) {
  const int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (ls < 0 || ::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(ls, 1) != 0 || ::getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (ls >= 0)
      ::close(ls);
    return std::nullopt;
  }
  const int cs = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (cs < 0 || ::connect(cs, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(ls);
    if (cs >= 0)
      ::close(cs);
    return std::nullopt;
  }
  const int ss = ::accept(ls, nullptr, nullptr);
  ::close(ls);
  if (ss < 0) {
    ::close(cs);
    return std::nullopt;
  }
  int one = 1;
  ::setsockopt(cs, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  bool write_ok = true;
  const auto t0 = steady::now();
  std::thread writer([&] {
    std::uint64_t sent = 0;
    while (sent < bytes) {
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(bytes - sent, frame_bytes));
      const auto w = ::send(cs, pattern.data() + sent % pattern_bytes, want, MSG_NOSIGNAL);
      if (w <= 0) {
        write_ok = false;
        break;
      }
      sent += static_cast<std::uint64_t>(w);
    }
    ::shutdown(cs, SHUT_WR);
  });
  std::vector<char> buf(frame_bytes);
  std::uint64_t got = 0;
  for (;;) {
    const auto n = ::recv(ss, buf.data(), buf.size(), 0);
    if (n <= 0)
      break;
    got += static_cast<std::uint64_t>(n);
  }
  const double s = seconds_since(t0);
  writer.join();
  ::close(cs);
  ::close(ss);
  if (!write_ok || got != bytes)
    return std::nullopt;
  return s;
}

/// Baseline: the relay's own work per circuit frame, on one core with no
/// sockets: open the sender's sealed frame, decode it, encode it again and
/// seal it for the receiver (what relay_core does to forward
/// circuit_data). MB/s of payload.
double hop_ceiling_mb_per_s(const std::string& pattern, std::uint64_t bytes, std::uint64_t seed) {
  auto id = [&](std::uint64_t i) { return protocol::identity::from_seed(derive_seed(seed, "hop", i)); };
  const auto a = id(0), r = id(1), b = id(2);
  protocol::channel_limits lim{256u << 10, 10'000, (256u << 10) + 64};
  auto pair = [&](const protocol::identity& ini, const protocol::identity& resp, std::uint64_t k) {
    std::pair<protocol::channel, protocol::channel> p{
        protocol::channel(ini, protocol::channel::role::initiator, derive_seed(seed, "hop-eph", k), 0,
                          resp.pub(), lim),
        protocol::channel(resp, protocol::channel::role::responder,
                          derive_seed(seed, "hop-eph", k + 100), 0, std::nullopt, lim)};
    std::string to_resp = p.first.start(), to_ini;
    for (int i = 0; i < 8 && p.first.state() != protocol::channel_state::established; ++i) {
      auto o = p.second.receive(to_resp);
      to_resp.clear();
      to_ini += o.to_send;
      auto o2 = p.first.receive(to_ini);
      to_ini.clear();
      to_resp += o2.to_send;
    }
    if (!to_resp.empty())
      (void)p.second.receive(to_resp);
    return p;
  };
  auto in = pair(a, r, 0);  // A -> relay
  auto out = pair(r, b, 1); // relay -> B (relay's end seals)
  if (in.second.state() != protocol::channel_state::established ||
      out.first.state() != protocol::channel_state::established)
    return NAN;
  // Sealed frames from A, made before the clock starts.
  std::vector<std::string> frames;
  for (std::uint64_t off = 0; off < std::min<std::uint64_t>(bytes, 64u << 20); off += frame_bytes)
    frames.push_back(*in.first.seal(relay::encode_relay_message(
        relay::circuit_data_msg{7, pattern.substr(off % pattern_bytes, frame_bytes)})));
  relay::wire_limits wl;
  wl.max_message_bytes = 256u << 10;
  std::uint64_t moved = 0, sink = 0;
  const auto t0 = steady::now();
  for (const auto& f : frames) {
    auto o = in.second.receive(f);
    for (const auto& plain : o.frames) {
      auto m = relay::decode_relay_message(plain, wl);
      if (!m)
        return NAN;
      auto* d = std::get_if<relay::circuit_data_msg>(&*m);
      if (d == nullptr)
        return NAN;
      moved += d->payload.size();
      d->circuit = 9;
      auto sealed = out.first.seal(relay::encode_relay_message(*m));
      sink += sealed ? sealed->size() : 0;
    }
  }
  const double s = seconds_since(t0);
  return sink > 0 ? static_cast<double>(moved) / 1e6 / s : NAN;
}

std::string default_relay_path() {
  std::error_code ec;
  const auto self = fs::read_symlink("/proc/self/exe", ec);
  if (ec)
    return "kith-relay";
  return (self.parent_path() / ".." / "relay" / "kith-relay").lexically_normal().string();
}

/// Fills opt from argv (--quick shrinks the sizes not given). Returns the
/// exit status when the program should stop: 0 after --help, 2 on a bad
/// argument (CLI11 has said what was wrong).
std::optional<int> read_options(int argc, char** argv, options& opt) {
  CLI::App app{"kith-bench-relay: one kith-relay on loopback under many clients: registered "
               "peers, RSS per peer, lookups/s, circuit MB/s (docs/benchmarks.md)"};
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_flag("--quick", opt.quick,
               "500 peers, 2 s of lookups, 20 MB circuit (a smoke run; the ctest)");
  auto* peers = add_u64_option(app, "--peers N", opt.peers, 1, 1'000'000,
                               "registered peers to hold (default 20000)");
  add_u64_option(app, "--lookup-clients K", opt.lookup_clients, 1, 10'000,
                 "clients pipelining lookups (default 64)");
  auto* seconds = add_positive_option(app, "--seconds T", opt.seconds,
                                      "lookup measurement time (default 10; pings get T/2)");
  auto* mb = add_u64_option(app, "--mb M", opt.mb, 1, 100'000,
                            "MB (10^6 bytes) pushed through the circuit (default 200)");
  add_text_option(app, "--relay PATH", opt.relay,
                  "kith-relay program (default ../relay/kith-relay from this program)");
  add_u64_option(app, "--peer-procs P", opt.peer_procs, 1, max_peer_procs,
                 "processes holding the peers (default 2; each has its own fd limit)");
  add_u64_option(app, "--threads W", opt.threads, 1, 64,
                 "threads running the lookup clients (default 2)");
  add_u64_option(app, "--window L", opt.window, 1, 4096,
                 "lookups in flight per lookup client (default 32)");
  add_u64_option(app, "--connect-window C", opt.connect_window, 1, 100'000,
                 "handshakes in flight per peer process (default 256)");
  add_u64_option(app, "--verify-every V", opt.verify_every, 1, 1'000'000,
                 "check the signature of one lookup answer in V (default 32; 1 = all)");
  add_u64_option(app, "--seed S", opt.seed, 0, UINT64_MAX,
                 "seeds identities, lookup targets and payload (default 20261122)");
  add_text_option(app, "--relay-log-level L", opt.relay_log_level,
                  "the relay's log level (default info)");
  add_text_option(app, "--dir DIR", opt.dir,
                  "where the run's directory is made (default: system temp dir)");
  app.add_flag("--keep", opt.keep, "keep the run's directory (relay.toml, relay.log)");
  app.add_flag("--past-fd-limit", opt.past_fd_limit,
               "try all N peers even when the relay's open-file limit cannot hold them (shows "
               "what the relay does when out of descriptors)");
  add_positive_option(app, "--timeout-s S", opt.timeout_s,
                      "give up on a phase after S seconds (default 180)");
  app.add_flag("--no-resume", opt.no_resume,
               "the relay keeps no resumption tickets (resume_tickets = 0): every reconnect "
               "is a full handshake");
  if (auto stop = parse_command_line<CLI::ParseError>(app, argc, argv))
    return stop;
  quick_value(opt.quick, peers, opt.peers, 500);
  quick_value(opt.quick, seconds, opt.seconds, 2);
  quick_value(opt.quick, mb, opt.mb, 20);
  return std::nullopt;
}

} // namespace

int main(int argc, char** argv) {
  options opt;
  if (const auto stop = read_options(argc, argv, opt))
    return *stop;
  if (opt.relay.empty())
    opt.relay = default_relay_path();
  if (::access(opt.relay.c_str(), X_OK) != 0) {
    std::cerr << "cannot run " << opt.relay << " (build the kith-relay target, or pass --relay)\n";
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  protocol::ensure_sodium();

  // Descriptors: each peer process holds its share of the N peers, main
  // the K lookup clients; the relay (which inherits the limit) all of them.
  const std::uint64_t per_proc = (opt.peers + opt.peer_procs - 1) / opt.peer_procs;
  const std::uint64_t fd_need = std::max<std::uint64_t>(per_proc, opt.lookup_clients) + 1024;
  const std::uint64_t relay_fd_need = opt.peers + opt.lookup_clients + 64;
  const auto fds = raise_fd_limit(std::max(fd_need, relay_fd_need));
  const auto fds_min = fds ? fds : raise_fd_limit(fd_need);
  if (!fds_min) {
    rlimit rl{};
    ::getrlimit(RLIMIT_NOFILE, &rl);
    std::cerr << "the open-file limit (" << rl.rlim_cur << ", hard " << rl.rlim_max
              << ") is below the " << fd_need << " one client process needs, and raising the "
                 "hard limit needs CAP_SYS_RESOURCE: raise `ulimit -Hn`, pass more --peer-procs "
                 "or fewer --peers\n";
    return 2;
  }

  const auto t_run = steady::now();
  std::cerr << "kith-bench-relay: peers " << grouped(opt.peers) << " in " << opt.peer_procs
            << " processes, lookup clients " << opt.lookup_clients << " x " << opt.window
            << " in flight on " << opt.threads << " threads, " << opt.seconds << " s, circuit "
            << opt.mb << " MB, seed " << opt.seed << (opt.quick ? " (quick)" : "")
            << "\n  relay: " << opt.relay << "\n  open-file limit: " << fds_min->soft_before << "/"
            << fds_min->hard_before << " -> " << fds_min->soft << "/" << fds_min->hard
            << (fds_min->raised_hard ? " (hard limit raised here; the relay inherits it)" : "")
            << '\n';
  const double load_start = loadavg_1m();
  std::cerr << "  load average (1 min) " << fmt("%.2f", load_start) << " on "
            << std::thread::hardware_concurrency() << " CPUs\n";

  run_dir root(opt.dir, "kith-bench-relay", opt.keep);
  std::ofstream(root.path() / "relay.toml") << relay_toml(opt);
  relay_proc relay(opt.relay, root.path(), opt.relay_log_level);
  if (!relay.wait_ready(15)) {
    std::cerr << "the relay did not start; its log:\n" << relay.log();
    return 1;
  }
  const auto relay_fds = nofile_of(relay.pid());
  const std::uint64_t relay_open_fds = open_fds(relay.pid());
  std::cerr << "  relay pid " << relay.pid() << " on " << relay.addr.host << ":" << relay.addr.port
            << ", open-file limit " << relay_fds.first << "/" << relay_fds.second << ", "
            << relay_open_fds << " open; directory " << root.path().string() << '\n';

  // The relay needs a descriptor per connection. When its limit cannot
  // hold N peers + K lookup clients (and a few spare, for /metrics), the
  // run holds as many peers as fit and says so.
  std::size_t n_peers = opt.peers;
  std::uint64_t relay_capacity = 0;
  if (relay_fds.first > 0) {
    relay_capacity = relay_fds.first > relay_open_fds + relay_spare_fds
                         ? relay_fds.first - relay_open_fds - relay_spare_fds
                         : 0;
    if (n_peers + opt.lookup_clients > relay_capacity && !opt.past_fd_limit) {
      n_peers = relay_capacity > opt.lookup_clients ? relay_capacity - opt.lookup_clients : 0;
      std::cerr << "  NOTE: the relay's open-file limit (" << relay_fds.first << ", hard "
                << relay_fds.second << ") leaves room for " << grouped(relay_capacity)
                << " client connections; holding " << grouped(n_peers) << " peers instead of "
                << grouped(opt.peers) << " (raising a hard limit needs CAP_SYS_RESOURCE)\n";
    }
  }
  if (n_peers == 0) {
    std::cerr << "no room for any peer under the relay's open-file limit\n";
    return 2;
  }

  // --- 0. the relay with no clients ---------------------------------------------------
  sleep_s(0.5);
  const std::uint64_t rss0_kib = relay.rss_kib();
  const std::uint64_t tcp0_pages = tcp_mem_pages();

  // --- 1. N registered peers ------------------------------------------------------------
  std::cerr << "registering " << grouped(n_peers) << " peers (handshake + announce each)...\n";
  peer_shm shm(n_peers);
  auto& pc = shm.counters();
  const double cpu_before_reg = cpu_seconds(relay.pid()).value_or(0);
  const std::int64_t reg_t0 = steady_ns();
  auto peer_pids = fork_peer_procs(opt, shm, relay, n_peers, opt.peer_procs);
  check(peer_pids.size() == opt.peer_procs, "could not fork the peer processes");
  const auto reg_wait = steady::now();
  std::size_t last_shown = 0;
  while (pc.registered.load(std::memory_order_acquire) + pc.failed.load(std::memory_order_acquire) <
             n_peers &&
         seconds_since(reg_wait) < opt.timeout_s && !relay.gone()) {
    sleep_s(0.01);
    const auto done = pc.registered.load();
    if (done >= last_shown + std::max<std::size_t>(n_peers / 4, 1000) && done < n_peers) {
      last_shown = done;
      std::cerr << "  " << grouped(done) << " registered after "
                << fmt("%.1f", seconds_since(reg_wait)) << " s\n";
    }
  }
  const std::size_t registered = pc.registered.load(std::memory_order_acquire);
  const std::size_t reg_failed = pc.failed.load(std::memory_order_acquire);
  const double register_s =
      registered > 0 ? static_cast<double>(pc.last_registered_ns.load() - reg_t0) / 1e9 : NAN;
  const double relay_cpu_reg = cpu_seconds(relay.pid()).value_or(0) - cpu_before_reg;
  std::cerr << "  " << grouped(registered) << " registered in " << fmt("%.2f", register_s) << " s, "
            << grouped(reg_failed) << " failed\n";

  // --- 2. RSS per idle registered peer ------------------------------------------------------
  // The relay's own count first (its registrations gauge), then a pause so
  // that what the handshakes left behind settles.
  // Deadlines, not counts: a relay out of descriptors accepts no /metrics
  // connection, and each attempt then waits for its own 5 s timeout.
  std::optional<double> relay_regs;
  for (const auto t0 = steady::now(); seconds_since(t0) < 10;) {
    relay_regs = metric(relay.metrics(), "kith_relay_registrations");
    if (relay_regs && *relay_regs >= static_cast<double>(registered))
      break;
    sleep_s(0.05);
  }
  check(relay_regs && *relay_regs == static_cast<double>(registered),
        "the relay counts " + (relay_regs ? fmt("%.0f", *relay_regs) : std::string("?")) +
            " registrations, the bench " + std::to_string(registered));
  sleep_s(1.0);
  const std::uint64_t rssN_kib = relay.rss_kib();
  const std::uint64_t tcpN_pages = tcp_mem_pages();
  const std::uint64_t relay_fds_at_n = open_fds(relay.pid());
  const double bytes_per_peer =
      registered > 0 ? (static_cast<double>(rssN_kib) - static_cast<double>(rss0_kib)) * 1024.0 /
                           static_cast<double>(registered)
                     : NAN;
  const double kernel_bytes_per_peer =
      registered > 0 ? (static_cast<double>(tcpN_pages) - static_cast<double>(tcp0_pages)) *
                           static_cast<double>(::sysconf(_SC_PAGESIZE)) / static_cast<double>(registered)
                     : NAN;
  std::cerr << "  relay RSS " << fmt("%.1f", static_cast<double>(rss0_kib) / 1024) << " MiB idle -> "
            << fmt("%.1f", static_cast<double>(rssN_kib) / 1024) << " MiB with the peers: "
            << fmt("%.0f", bytes_per_peer) << " bytes per peer\n";

  // --- 3. lookups, then pings ---------------------------------------------------------------
  std::vector<std::uint32_t> targets;
  for (std::size_t i = 0; i < n_peers; ++i)
    if (shm.slots()[i].registered != 0)
      targets.push_back(static_cast<std::uint32_t>(i));
  lookup_shared lk;
  phase_result lookups, pings;
  std::size_t lookup_welcomed = 0;
  std::vector<std::unique_ptr<lookup_loop>> lloops;
  std::vector<std::thread> lthreads;
  const std::size_t lthreads_n = std::min(opt.threads, opt.lookup_clients);
  if (!targets.empty()) {
    std::cerr << "lookups: " << opt.lookup_clients << " clients x " << opt.window << " in flight, "
              << opt.seconds << " s...\n";
    for (std::size_t t = 0; t < lthreads_n; ++t)
      lloops.push_back(std::make_unique<lookup_loop>(opt, lk, relay, shm.slots(), targets, t,
                                                     lthreads_n, t));
    for (auto& l : lloops)
      lthreads.emplace_back([&l] { l->run(); });
    const auto w0 = steady::now();
    while (lk.welcomed.load() + lk.failed.load() < opt.lookup_clients && seconds_since(w0) < 30)
      sleep_s(0.005);
    lookup_welcomed = lk.welcomed.load();
    check(lookup_welcomed == opt.lookup_clients,
          std::to_string(lookup_welcomed) + " of " + std::to_string(opt.lookup_clients) +
              " lookup clients connected: " + lk.why.summary());
    if (lookup_welcomed > 0) {
      lookups = run_phase(lk, ask::lookup, opt.seconds, lthreads_n, relay);
      std::cerr << "  " << grouped(lookups.answered) << " answered in " << fmt("%.2f", lookups.seconds)
                << " s: " << fmt("%.0f", lookups.per_s()) << "/s; pings for "
                << fmt("%.1f", opt.seconds / 2) << " s...\n";
      pings = run_phase(lk, ask::ping, opt.seconds / 2, lthreads_n, relay);
      std::cerr << "  " << fmt("%.0f", pings.per_s()) << " pings/s\n";
    }
    lk.stop = true;
    for (auto& t : lthreads)
      t.join();
    check(lookups.bad == 0 && pings.bad == 0 && lookups.refused == 0 && pings.refused == 0 &&
              lookups.lost == 0 && pings.lost == 0 && lk.failed == 0,
          "lookup phase problems: " + lk.why.summary());
    check(lookups.verified == lookups.answered + lookups.late,
          "not every lookup answer verified");
  }

  // --- 4. circuit throughput ------------------------------------------------------------------
  const std::string pattern = make_pattern(opt.seed);
  std::cerr << "circuit: " << opt.mb << " MB one way in " << frame_bytes / 1024 << " KiB frames...\n";
  const auto circ = run_circuit(opt, relay, pattern);
  check(circ.ok && circ.mismatches == 0 && circ.bytes == opt.mb * 1'000'000,
        "the circuit did not deliver " + std::to_string(opt.mb) + " MB intact (" +
            std::to_string(circ.bytes) + " bytes, " + std::to_string(circ.mismatches) +
            " bad pieces): " + circ.why);
  std::cerr << "  " << fmt("%.1f", circ.mb_per_s()) << " MB/s; baselines...\n";
  std::vector<double> tcp;
  for (int i = 0; i < 3; ++i)
    if (auto s = loopback_push(opt.mb * 1'000'000, pattern))
      tcp.push_back(*s);
  std::sort(tcp.begin(), tcp.end());
  const double tcp_s = tcp.empty() ? NAN : tcp[tcp.size() / 2];
  check(!tcp.empty(), "the loopback TCP baseline failed");
  const double tcp_mb_per_s = static_cast<double>(opt.mb) / tcp_s;
  const double hop_mb_per_s = hop_ceiling_mb_per_s(pattern, opt.mb * 1'000'000, opt.seed);
  check(std::isfinite(hop_mb_per_s), "the in-process hop baseline failed");

  // --- the peers are still held; then everything stops --------------------------------------
  const auto still = metric(relay.metrics(), "kith_relay_registrations");
  const std::size_t dropped = pc.dropped.load();
  const double held_s = seconds_since(t_run);
  const std::uint64_t rss_end_kib = relay.rss_kib();
  const std::uint64_t hwm_kib = status_kib(relay.pid(), "VmHWM");

  // --- 5. a reconnect storm ----------------------------------------------------------------------
  // Every registered peer drops its connection at once and connects again
  // (handshake + announce), offering the ticket its session left, as nodes
  // do after a network blip. Baseline: the first registration above (full
  // handshakes), in the same run.
  std::cerr << "reconnect: all " << grouped(registered)
            << " peers close and connect again with their tickets...\n";
  const double resumed_before = metric(relay.metrics(), "kith_relay_handshakes_resumed_total").value_or(0);
  const double cpu_before_re = cpu_seconds(relay.pid()).value_or(0);
  const std::int64_t re_t0 = steady_ns();
  pc.reconnect.store(1, std::memory_order_release);
  for (const auto w = steady::now();
       pc.reconnected.load(std::memory_order_acquire) + pc.re_failed.load(std::memory_order_acquire) <
           registered &&
       seconds_since(w) < opt.timeout_s && !relay.gone();)
    sleep_s(0.01);
  const std::size_t reconnected = pc.reconnected.load();
  const std::size_t re_failed = pc.re_failed.load();
  const std::size_t resumed = pc.resumed.load();
  const double reconnect_s =
      reconnected > 0 ? static_cast<double>(pc.last_reconnected_ns.load() - re_t0) / 1e9 : NAN;
  const double relay_cpu_re = cpu_seconds(relay.pid()).value_or(0) - cpu_before_re;
  const double relay_resumed =
      metric(relay.metrics(), "kith_relay_handshakes_resumed_total").value_or(0) - resumed_before;
  std::cerr << "  " << grouped(reconnected) << " registered again in " << fmt("%.2f", reconnect_s)
            << " s (" << grouped(resumed) << " resumed), " << grouped(re_failed) << " failed\n";
  check(reconnected == registered && re_failed == 0,
        grouped(reconnected) + " of " + grouped(registered) + " peers registered again");
  const bool resume_ok = opt.no_resume ? resumed == 0 : resumed == reconnected;
  check(resume_ok && relay_resumed == static_cast<double>(resumed),
        grouped(resumed) + " of " + grouped(reconnected) + " reconnects resumed (the relay counts " +
            fmt("%.0f", relay_resumed) + ")");
  const bool procs_ok = stop_peer_procs(shm, peer_pids);
  check(procs_ok, "a peer process failed or had to be killed");
  std::string peer_reasons;
  for (std::size_t k = 0; k < opt.peer_procs; ++k)
    if (pc.why[k][0] != '\0')
      peer_reasons += (peer_reasons.empty() ? "" : " | ") + std::string(pc.why[k]);
  check(registered == n_peers, grouped(registered) + " of " + grouped(n_peers) +
                                   " peers registered: " + peer_reasons);
  check(dropped == 0, grouped(dropped) + " registered peers were dropped during the run: " +
                          peer_reasons);
  const auto t_close = steady::now();
  while (seconds_since(t_close) < 30) {
    const auto left = metric(relay.metrics(), "kith_relay_connections");
    if (left && *left == 0)
      break;
    sleep_s(0.05);
  }
  const double teardown_s = seconds_since(t_close);
  const bool stopped = relay.stop(15);
  check(stopped, "the relay did not exit with status 0 on SIGINT");
  const std::string log = relay.log();
  const bool fd_warning = log.find("open-file limit") != std::string::npos;

  // --- the report -------------------------------------------------------------------------------
  const double load_end = loadavg_1m();
  const bool peers_apply = opt.peers >= target_peers;
  const bool fd_capped = n_peers < opt.peers;
  const bool meets_peers = registered >= target_peers && reg_failed == 0 && dropped == 0;
  const bool meets_rss = bytes_per_peer <= target_bytes_per_peer;
  const bool meets_lookups = lookups.per_s() >= target_lookups_per_s;
  std::fprintf(stderr,
               "\nkith-relay under load (pid %d, 1 event-loop thread); peers in %zu processes, "
               "lookups on %zu threads\n",
               static_cast<int>(relay.pid()), opt.peer_procs, lthreads_n);
  row("figure", "measured", "target / baseline");
  row("registered peers held", grouped(registered) + (dropped ? ", " + grouped(dropped) + " dropped" : ""),
      peers_apply ? std::string(">= 20,000: ") + (meets_peers ? "met" : "MISSED")
                  : std::string("(target is for 20,000)"));
  row("time to register all", fmt("%.2f s", register_s),
      fmt("%.0f/s; ", static_cast<double>(registered) / register_s) +
          fmt("relay CPU %.0f us each", relay_cpu_reg * 1e6 / std::max<double>(1, static_cast<double>(registered))));
  row("registration failures", grouped(reg_failed), reg_failed ? peer_reasons : "");
  if (fd_capped)
    row("  capped by the relay's fd limit", grouped(n_peers) + " of " + grouped(opt.peers),
        "limit " + std::to_string(relay_fds.first) + ", " + std::to_string(relay_open_fds) +
            " fds of its own, " + std::to_string(opt.lookup_clients) + " lookup clients");
  row("relay RSS, no clients / N peers", fmt("%.1f", static_cast<double>(rss0_kib) / 1024) + " / " +
                                             fmt("%.1f MiB", static_cast<double>(rssN_kib) / 1024),
      fmt("peak %.1f MiB", static_cast<double>(hwm_kib) / 1024));
  row("RSS per idle registered peer", fmt("%.0f bytes", bytes_per_peer),
      std::string("<= 4 KiB: ") + (meets_rss ? "met" : "MISSED"));
  row("kernel TCP memory per peer", fmt("%.0f bytes", kernel_bytes_per_peer),
      "both ends' socket buffers (not in RSS)");
  row("lookups/s (verified)", fmt("%.0f", lookups.per_s()),
      std::string(">= 50,000: ") + (meets_lookups ? "met" : "MISSED"));
  row("  relay CPU per lookup", fmt("%.2f us", lookups.relay_cpu_s * 1e6 / std::max<double>(1, static_cast<double>(lookups.answered))),
      fmt("%.0f%% of a core", 100 * lookups.relay_cpu_s / std::max(lookups.seconds, 1e-9)));
  row("pings/s (same clients)", fmt("%.0f", pings.per_s()),
      fmt("relay CPU %.2f us each", pings.relay_cpu_s * 1e6 / std::max<double>(1, static_cast<double>(pings.answered))));
  row("circuit throughput", fmt("%.1f MB/s", circ.mb_per_s()),
      fmt("raw loopback TCP %.0f MB/s", tcp_mb_per_s));
  row("  relay hop work on one core", fmt("%.0f MB/s", hop_mb_per_s),
      "open + decode + encode + seal, no sockets");
  row("  relay CPU per circuit MB", fmt("%.2f ms", circ.relay_cpu_s * 1e3 / std::max<double>(1, static_cast<double>(opt.mb))),
      circ.ok ? fmt("%.0f%% of a core", 100 * circ.relay_cpu_s / circ.seconds) : std::string("n/a"));
  row("reconnect storm: all again", fmt("%.2f s", reconnect_s),
      grouped(resumed) + " resumed; " +
          fmt("relay CPU %.0f us each", relay_cpu_re * 1e6 / std::max<double>(1, static_cast<double>(reconnected))) +
          " (first registration above is the baseline)");
  row("teardown (N closes)", fmt("%.2f s", teardown_s), stopped ? "then SIGINT: exit 0" : "SIGINT: FAILED");

  json_line("relay_peers", opt.seed)
      .flag("quick", opt.quick)
      .num("peers_requested", opt.peers)
      .num("peers", n_peers)
      .flag("capped_by_relay_fd_limit", fd_capped)
      .num("registered", registered)
      .num("failed", reg_failed)
      .num("dropped", dropped)
      .num("relay_registrations_gauge", relay_regs ? static_cast<std::uint64_t>(*relay_regs) : 0)
      .num("relay_registrations_at_end", still ? static_cast<std::uint64_t>(*still) : 0)
      .real("held_s", held_s)
      .real("register_s", register_s)
      .real("registrations_per_s", static_cast<double>(registered) / register_s)
      .real("relay_cpu_us_per_registration",
            relay_cpu_reg * 1e6 / std::max<double>(1, static_cast<double>(registered)))
      .num("peer_procs", opt.peer_procs)
      .num("connect_window", opt.connect_window)
      .num("bench_nofile", fds_min->soft)
      .num("nofile_hard_before", fds_min->hard_before)
      .flag("nofile_hard_raised", fds_min->raised_hard)
      .num("relay_nofile_soft", relay_fds.first)
      .num("relay_nofile_hard", relay_fds.second)
      .num("relay_fds_idle", relay_open_fds)
      .num("relay_fds_with_peers", relay_fds_at_n)
      .num("relay_client_capacity", relay_capacity)
      .flag("relay_warned_fd_limit", fd_warning)
      .num("target_peers", target_peers)
      .flag("meets_target", peers_apply && meets_peers)
      .flag("target_applies", peers_apply)
      .num("cpus", std::thread::hardware_concurrency())
      .real("loadavg_start", load_start)
      .real("loadavg_end", load_end)
      .print();
  json_line("relay_rss_per_peer", opt.seed)
      .flag("quick", opt.quick)
      .num("peers", registered)
      .num("rss_no_clients_kib", rss0_kib)
      .num("rss_with_peers_kib", rssN_kib)
      .num("rss_end_kib", rss_end_kib)
      .num("rss_peak_kib", hwm_kib)
      .real("bytes_per_peer", bytes_per_peer)
      .real("kernel_tcp_bytes_per_peer", kernel_bytes_per_peer)
      .real("target_bytes_per_peer", target_bytes_per_peer)
      .flag("meets_target", meets_rss)
      .print();
  json_line("relay_lookups", opt.seed)
      .flag("quick", opt.quick)
      .num("peers", targets.size())
      .num("clients", opt.lookup_clients)
      .num("window", opt.window)
      .real("seconds", lookups.seconds)
      .num("answered", lookups.answered)
      .num("late", lookups.late)
      .num("verified", lookups.verified)
      .num("sig_checked", lookups.sig_checked)
      .num("verify_every", opt.verify_every)
      .num("bad", lookups.bad)
      .num("refused", lookups.refused)
      .num("lost", lookups.lost)
      .real("lookups_per_s", lookups.per_s())
      .real("relay_cpu_us_per_lookup",
            lookups.relay_cpu_s * 1e6 / std::max<double>(1, static_cast<double>(lookups.answered)))
      .real("baseline_pings_per_s", pings.per_s())
      .real("baseline_relay_cpu_us_per_ping",
            pings.relay_cpu_s * 1e6 / std::max<double>(1, static_cast<double>(pings.answered)))
      .real("target_lookups_per_s", target_lookups_per_s)
      .flag("meets_target", meets_lookups)
      .print();
  json_line("relay_reconnect", opt.seed)
      .flag("quick", opt.quick)
      .flag("relay_keeps_tickets", !opt.no_resume)
      .num("peers", registered)
      .num("reconnected", reconnected)
      .num("failed", re_failed)
      .num("resumed", resumed)
      .real("reconnect_s", reconnect_s)
      .real("relay_cpu_us_per_reconnect",
            relay_cpu_re * 1e6 / std::max<double>(1, static_cast<double>(reconnected)))
      .real("baseline_relay_cpu_us_per_registration",
            relay_cpu_reg * 1e6 / std::max<double>(1, static_cast<double>(registered)))
      .real("baseline_register_s", register_s)
      .flag("verified", reconnected == registered && re_failed == 0 && resume_ok)
      .print();
  json_line("relay_circuit", opt.seed)
      .flag("quick", opt.quick)
      .num("bytes", circ.bytes)
      .num("frame_bytes", frame_bytes)
      .flag("direction_one_way", true)
      .real("seconds", circ.seconds)
      .real("mb_per_s", circ.mb_per_s())
      .real("relay_cpu_ms_per_mb",
            circ.relay_cpu_s * 1e3 / std::max<double>(1, static_cast<double>(opt.mb)))
      .real("baseline_tcp_mb_per_s", tcp_mb_per_s)
      .real("baseline_hop_mb_per_s", hop_mb_per_s)
      .real("ratio_to_tcp", circ.mb_per_s() / tcp_mb_per_s)
      .flag("verified", circ.ok && circ.mismatches == 0)
      .print();

  std::cerr << "done in " << fmt("%.1f", seconds_since(t_run)) << " s"
            << (any_failure ? "; SOME CHECKS FAILED" : "; all verified") << '\n';
  return any_failure ? 1 : 0;
}
