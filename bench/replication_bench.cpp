// The replication benchmark: two real `kith run` daemons on loopback, one
// following the other, and a third node following many identities at once.
// It answers three questions, each against a target and a baseline
// measured in the same run:
//
// * How fast does a new follower replicate a feed of N ~100-byte documents
//   (entries/s, target >= 50,000), against raw loopback TCP moving the same
//   bytes and against the writer's own local write rate?
// * How many bytes cross the wire per entry, against the payload
//   (key + value bytes; target <= 1.5x)? And how much CPU does the follower
//   spend per entry?
// * What does a node pay in memory (and idle CPU) for 10,000 followed
//   peers that are not reachable (target < 100 MB RSS)?
//
//   kith-bench-replication [--quick] [--n N] [--peers P] [--batch B] [--kith PATH]
//                          [--dir DIR] [--port-base P] [--keep] [--seed S]
//                          [--log-level L] [--anti-entropy S] [--idle-s S]
//                          [--timeout-s S]
//
// Progress and the human-readable table go to stderr; stdout gets one JSON
// object (see docs/benchmarks.md). Exit status: 0; 1 when something did not
// verify (B did not converge, data read back wrong, a daemon failed); 2 on
// bad arguments.

#include "support/checks.hpp"
#include "support/json_line.hpp"
#include "support/node_proc.hpp"
#include "support/proc.hpp"
#include "kith/node/api_client.hpp"
#include "kith/node/data_dir.hpp"
#include "kith/protocol/crypto.hpp"
#include "kith/storage/store.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#ifndef KITH_BENCH_KITH_PATH
#define KITH_BENCH_KITH_PATH "kith"
#endif

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
using namespace kith;
using nlohmann::json;
using steady = std::chrono::steady_clock;
using kith::bench::json_line;
using kith::bench::describe_status;
using kith::bench::doc_key;
using kith::bench::doc_value;
using kith::bench::free_port;
using kith::bench::mib;
using kith::bench::node_proc;
using kith::bench::rss_kib;
using kith::bench::run_dir;
using kith::bench::wait_for;

constexpr std::uint64_t default_seed = 20261122;
constexpr double poll_s = 0.020;        // B's /v1/topics is polled this often

// Targets, printed beside the figures.
constexpr double target_entries_per_s = 50'000;
constexpr double target_wire_ratio = 1.5;
constexpr double target_idle_mb = 100;
constexpr std::size_t target_idle_peers = 10'000;

// --- command line ------------------------------------------------------------------

struct options {
  bool quick = false;
  bool keep = false;
  std::uint64_t seed = default_seed;
  std::size_t n = 100'000;
  std::size_t peers = 10'000;
  std::size_t batch = 1000; // ops per store::write: one signature each
  std::string kith = KITH_BENCH_KITH_PATH;
  std::string dir; // parent of the run's directory; empty: the system temp dir
  std::uint16_t port_base = 0; // 0: free ports picked by the OS
  std::string log_level = "info";
  std::uint32_t anti_entropy_s = 0; // 0: the daemon's default
  double idle_s = 3.0;
  double timeout_s = 600.0;
};

/// Fills opt from argv (--quick shrinks the sizes not given). Returns the
/// exit status when the program should stop: 0 after --help, 2 on a bad
/// argument (CLI11 has said what was wrong).
std::optional<int> read_options(int argc, char** argv, options& opt) {
  CLI::App app{"kith-bench-replication: two `kith run` daemons over loopback, a new follower "
               "pulls the feed; then a node following ids that never come online "
               "(docs/benchmarks.md)"};
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_flag("--quick", opt.quick, "N = 5000, peers = 500 (a smoke run; also the ctest)");
  auto* n = add_u64_option(app, "--n N", opt.n, 0, 9'999'999,
                           "documents in the followed feed (default 100000; 0 skips replication)");
  auto* peers = add_u64_option(app, "--peers P", opt.peers, 0, 1'000'000,
                               "identities the third node follows (default 10000)");
  add_u64_option(app, "--batch B", opt.batch, 1, 100'000,
                 "ops per signed store::write on the writer (default 1000)");
  add_text_option(app, "--kith PATH", opt.kith,
                  "the kith program (default " KITH_BENCH_KITH_PATH ")");
  add_text_option(app, "--dir DIR", opt.dir,
                  "where the run's directory is made (default: system temp dir)");
  add_u64_option(app, "--port-base P", opt.port_base, 1024, 65533,
                 "peer ports P, P+1, P+2 (default: free ports from the OS)");
  app.add_flag("--keep", opt.keep, "keep the data directories and daemon logs");
  add_u64_option(app, "--seed S", opt.seed, 0, UINT64_MAX,
                 "seeds the document texts and the followed ids (default 20261122)");
  add_text_option(app, "--log-level L", opt.log_level, "the daemons' log level (default info)");
  add_u64_option(app, "--anti-entropy S", opt.anti_entropy_s, 1, 86400,
                 "passed to `kith run` (default: the daemon's own)");
  add_positive_option(app, "--idle-s S", opt.idle_s,
                      "idle time before the last RSS reading (default 3)");
  add_positive_option(app, "--timeout-s S", opt.timeout_s,
                      "give up on convergence after S seconds (default 600)");
  if (auto stop = parse_command_line<CLI::ParseError>(app, argc, argv))
    return stop;
  quick_value(opt.quick, n, opt.n, 5000);
  quick_value(opt.quick, peers, opt.peers, 500);
  return std::nullopt;
}



/// Starts a node's daemon with this run's options.
bool start_node(node_proc& p, const options& opt, std::uint16_t port) {
  std::vector<std::string> extra;
  if (opt.anti_entropy_s != 0) {
    extra.push_back("--anti-entropy");
    extra.push_back(std::to_string(opt.anti_entropy_s));
  }
  return p.start(opt.kith, port, opt.log_level, extra);
}

// --- output and checks ----------------------------------------------------------------

using kith::bench::any_failure;
using kith::bench::check;

using kith::bench::seconds_since;



// --- other processes ------------------------------------------------------------------



struct prepared {
  std::vector<std::string> values; // kept to check B's copy
  std::uint64_t payload_bytes = 0;
  double write_s = 0;
  std::size_t calls = 0;
  std::uint64_t clock_writes = 0; // A's feed clock after the writes
  std::string feed_topic;
};

/// Writes the N documents into A's store with the daemon stopped.
std::optional<prepared> prepare_writer(const node_proc& a, const options& opt) {
  prepared out;
  auto id = node::data_dir(a.home().string()).load_identity();
  if (!id) {
    std::cerr << "A: " << id.err().message << '\n';
    return std::nullopt;
  }
  storage::store_options so;
  so.sync = false;
  auto opened = storage::store::open(node::data_dir(a.home().string()).store_dir(), *id, true, so);
  if (!opened) {
    std::cerr << "A: cannot open the store: " << opened.err().message << '\n';
    return std::nullopt;
  }
  auto st = std::move(opened.value());
  out.feed_topic = st->feed_topic_id();

  std::mt19937_64 rng{opt.seed};
  out.values.reserve(opt.n);
  for (std::size_t i = 0; i < opt.n; ++i)
    out.values.push_back(doc_value(rng));

  const auto now_ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  // The ops of a call are built outside the timed region, as a client
  // would have them ready; the timer covers signing and the store.
  std::vector<storage::write_op> ops;
  for (std::size_t first = 0; first < opt.n; first += opt.batch) {
    const std::size_t last = std::min(opt.n, first + opt.batch);
    ops.clear();
    for (std::size_t i = first; i < last; ++i) {
      storage::write_op w;
      w.key = doc_key(a.id(), i);
      w.value = out.values[i];
      out.payload_bytes += w.key.size() + w.value->size();
      ops.push_back(std::move(w));
    }
    const auto t0 = steady::now();
    auto r = st->write(out.feed_topic, ops, now_ms + out.calls);
    out.write_s += seconds_since(t0);
    ++out.calls;
    if (!check(r.ok(), "A: store::write failed: " + (r ? std::string() : r.err().message)))
      return std::nullopt;
  }
  if (auto c = st->clock_copy(out.feed_topic))
    out.clock_writes = c->dot_count();
  return out;
}

// --- baseline: raw loopback TCP ----------------------------------------------------------

/// Seconds to push `bytes` through one TCP connection over 127.0.0.1 in
/// 64 KiB writes, read in 64 KiB reads by another thread; nullopt on a
/// socket error.
std::optional<double> loopback_push(std::uint64_t bytes) {
  const int ls = ::socket(AF_INET, SOCK_STREAM, 0);
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
  const int cs = ::socket(AF_INET, SOCK_STREAM, 0);
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
  constexpr std::size_t chunk = 64 * 1024;
  bool write_ok = true;
  const auto t0 = steady::now();
  std::thread writer([&] {
    std::vector<char> buf(chunk, 'x');
    std::uint64_t left = bytes;
    while (left > 0) {
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(left, chunk));
      const ssize_t w = ::send(cs, buf.data(), want, MSG_NOSIGNAL);
      if (w <= 0) {
        write_ok = false;
        break;
      }
      left -= static_cast<std::uint64_t>(w);
    }
    ::shutdown(cs, SHUT_WR);
  });
  std::vector<char> buf(chunk);
  std::uint64_t got = 0;
  for (;;) {
    const ssize_t r = ::recv(ss, buf.data(), buf.size(), 0);
    if (r <= 0)
      break;
    got += static_cast<std::uint64_t>(r);
  }
  const double s = seconds_since(t0);
  writer.join();
  ::close(cs);
  ::close(ss);
  if (!write_ok || got != bytes)
    return std::nullopt;
  return s;
}

// --- the replication phase ---------------------------------------------------------------

struct replication_figures {
  bool converged = false;
  std::uint64_t writes_seen = 0;
  double first_entry_s = -1; // follow -> A's feed first shows writes on B
  double converge_s = 0;     // follow -> writes == N on B
  std::size_t polls = 0;
  double follower_cpu_s = 0;
  double writer_cpu_s = 0;
  std::uint64_t bytes_in = 0, bytes_out = 0, entries_received = 0;
  std::uint64_t sender_bytes_in = 0, sender_bytes_out = 0; // A's view of B
  std::string peer_state;
  std::uint64_t follower_rss_kib = 0;  // B, just before the follow
  std::uint64_t follower_peak_kib = 0; // B's VmHWM at convergence
};

/// The peers entry for `id` in a /v1/peers answer.
std::optional<json> peer_entry(const std::optional<json>& peers, const std::string& id) {
  if (!peers || !peers->contains("peers"))
    return std::nullopt;
  for (const auto& p : (*peers)["peers"])
    if (p.value("id", std::string{}) == id)
      return p;
  return std::nullopt;
}

std::uint64_t topic_writes(const std::optional<json>& topics, const std::string& topic,
                           bool* present) {
  *present = false;
  if (!topics || !topics->contains("topics"))
    return 0;
  for (const auto& t : (*topics)["topics"])
    if (t.value("id", std::string{}) == topic) {
      *present = true;
      return t.value("writes", std::uint64_t{0});
    }
  return 0;
}

replication_figures replicate(node_proc& a, node_proc& b, const prepared& data,
                              const options& opt, const fs::path& trace_path) {
  replication_figures f;
  f.follower_rss_kib = rss_kib(b.pid());
  const auto cpu_b0 = cpu_seconds(b.pid());
  const auto cpu_a0 = cpu_seconds(a.pid());
  const json follow{{"id", a.id()}, {"address", a.address()}};
  const auto t0 = steady::now();
  if (!b.call("POST", "/v1/follow", follow.dump(), false)) {
    check(false, "B refused to follow A");
    return f;
  }
  std::uint64_t last_report = 0;
  auto next_report = steady::now() + std::chrono::seconds(5);
  std::ofstream trace(trace_path);
  trace << "sent_s,answered_s,writes\n";
  for (;;) {
    bool present = false;
    const double sent = seconds_since(t0);
    const auto writes = topic_writes(b.call("GET", "/v1/topics"), data.feed_topic, &present);
    ++f.polls;
    const double now = seconds_since(t0);
    trace << sent << ',' << now << ',' << writes << '\n';
    if (present && writes > 0 && f.first_entry_s < 0)
      f.first_entry_s = now;
    f.writes_seen = std::max(f.writes_seen, writes);
    if (writes >= opt.n) {
      f.converge_s = now;
      f.converged = writes == opt.n;
      break;
    }
    if (now > opt.timeout_s || !a.alive() || !b.alive()) {
      f.converge_s = now;
      break;
    }
    if (steady::now() >= next_report) {
      std::cerr << "  " << fmt("%.1f", now) << " s: B holds " << grouped(writes) << " of "
                << grouped(opt.n) << " writes ("
                << fmt("%.0f", static_cast<double>(writes - last_report) / 5.0) << "/s)\n";
      last_report = writes;
      next_report += std::chrono::seconds(5);
    }
    sleep_s(poll_s);
  }
  const auto cpu_b1 = cpu_seconds(b.pid());
  f.follower_peak_kib = status_kib(b.pid(), "VmHWM");
  const auto cpu_a1 = cpu_seconds(a.pid());
  if (cpu_b0 && cpu_b1)
    f.follower_cpu_s = *cpu_b1 - *cpu_b0;
  if (cpu_a0 && cpu_a1)
    f.writer_cpu_s = *cpu_a1 - *cpu_a0;
  if (auto p = peer_entry(b.call("GET", "/v1/peers"), a.id())) {
    f.bytes_in = p->value("bytes_in", std::uint64_t{0});
    f.bytes_out = p->value("bytes_out", std::uint64_t{0});
    f.entries_received = p->value("entries_received", std::uint64_t{0});
    f.peer_state = p->value("state", std::string{});
  }
  if (auto p = peer_entry(a.call("GET", "/v1/peers"), b.id())) {
    f.sender_bytes_in = p->value("bytes_in", std::uint64_t{0});
    f.sender_bytes_out = p->value("bytes_out", std::uint64_t{0});
  }
  check(f.bytes_in > 0 && f.peer_state == "connected",
        "B's /v1/peers shows no connected peer entry for A with traffic");
  check(!f.converged || f.entries_received == opt.n,
        "B's peer entry for A counts " + std::to_string(f.entries_received) +
            " entries received, not N");
  check(f.converged, "B holds " + std::to_string(f.writes_seen) + " of A's " +
                         std::to_string(opt.n) + " writes after " + fmt("%.1f", f.converge_s) +
                         " s" + (a.alive() && b.alive() ? "" : " (a daemon died)"));
  return f;
}

/// After B has stopped: opens B's store and reads back a sample of A's
/// documents (the first, the last and 200 seeded ones) and checks the
/// topic. Returns the number of keys compared.
std::size_t verify_follower_copy(const node_proc& b, const node_proc& a, const prepared& data,
                                 const options& opt) {
  auto id = node::data_dir(b.home().string()).load_identity();
  if (!check(id.ok(), "B: cannot load the identity"))
    return 0;
  auto opened = storage::store::open(node::data_dir(b.home().string()).store_dir(), *id, false);
  if (!check(opened.ok(), "B: cannot open the store: " + (opened ? "" : opened.err().message)))
    return 0;
  auto& st = *opened.value();
  std::vector<std::size_t> sample{0, opt.n - 1};
  std::mt19937_64 rng{opt.seed ^ 0x5eedULL};
  for (int i = 0; i < 200; ++i)
    sample.push_back(static_cast<std::size_t>(rng() % opt.n));
  std::size_t compared = 0;
  for (auto i : sample) {
    auto r = st.read(data.feed_topic, doc_key(a.id(), i));
    const bool ok = r.ok() && r->siblings.size() == 1 && r->siblings[0].value == data.values[i];
    if (!check(ok, "B's copy of document " + std::to_string(i) + " is missing or differs"))
      break;
    ++compared;
  }
  auto c = st.clock_copy(data.feed_topic);
  check(c && c->dot_count() == opt.n, "B's clock of A's feed does not count N writes");
  auto topic_ok = st.check_topic(data.feed_topic);
  check(topic_ok.ok(), "check_topic on B's copy of A's feed: " +
                           (topic_ok ? std::string() : topic_ok.err().message));
  return compared;
}

// --- the idle-peers phase ---------------------------------------------------------------

struct idle_figures {
  std::size_t followed = 0;
  double follow_s = 0;
  std::uint64_t rss_start_kib = 0, rss_followed_kib = 0, rss_idle_kib = 0;
  double idle_cpu_s = 0, idle_window_s = 0;
  std::uint64_t status_follows = 0, status_peers = 0;
  std::optional<double> stop_s;
};

/// The id of the i-th followed identity (never online).
std::string stranger_id(std::uint64_t seed, std::size_t i) {
  std::mt19937_64 rng{seed ^ (0xc0ffeeULL + 0x9e3779b97f4a7c15ULL * (i + 1))};
  protocol::key_seed ks{};
  for (std::size_t k = 0; k < ks.size(); k += 8) {
    const auto v = rng();
    for (std::size_t j = 0; j < 8; ++j)
      ks[k + j] = static_cast<std::uint8_t>(v >> (8 * j));
  }
  return protocol::to_text(protocol::identity::from_seed(ks).pub());
}

idle_figures idle_peers(node_proc& c, const options& opt) {
  idle_figures f;
  std::vector<std::string> ids;
  ids.reserve(opt.peers);
  for (std::size_t i = 0; i < opt.peers; ++i)
    ids.push_back(stranger_id(opt.seed, i));
  sleep_s(1.0); // let the fresh daemon settle before the first reading
  f.rss_start_kib = rss_kib(c.pid());
  const auto t0 = steady::now();
  const std::size_t step = std::max<std::size_t>(1, opt.peers / 10);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (!c.call("POST", "/v1/follow", json{{"id", ids[i]}}.dump(), false)) {
      check(false, "C refused to follow identity " + std::to_string(i));
      break;
    }
    ++f.followed;
    if ((i + 1) % step == 0)
      std::cerr << "  C follows " << grouped(i + 1) << " (" << fmt("%.1f", seconds_since(t0))
                << " s, RSS " << fmt("%.1f", mib(rss_kib(c.pid()))) << " MiB)\n";
  }
  f.follow_s = seconds_since(t0);
  f.rss_followed_kib = rss_kib(c.pid());
  // The idle window, read once a second so a transient (a flush after
  // the follows) shows in the progress lines.
  const auto cpu0 = cpu_seconds(c.pid());
  const auto w0 = steady::now();
  auto prev_cpu = cpu0;
  auto prev_t = w0;
  while (seconds_since(w0) < opt.idle_s) {
    sleep_s(std::min(1.0, opt.idle_s - seconds_since(w0)));
    const auto cpu = cpu_seconds(c.pid());
    if (cpu && prev_cpu)
      std::cerr << "  idle " << fmt("%.0f", seconds_since(w0)) << " s: C used "
                << fmt("%.0f %%", 100.0 * (*cpu - *prev_cpu) / seconds_since(prev_t))
                << " of a core, RSS " << fmt("%.1f MiB", mib(rss_kib(c.pid()))) << '\n';
    prev_cpu = cpu;
    prev_t = steady::now();
  }
  const auto cpu1 = cpu_seconds(c.pid());
  f.idle_window_s = seconds_since(w0);
  if (cpu0 && cpu1)
    f.idle_cpu_s = *cpu1 - *cpu0;
  f.rss_idle_kib = rss_kib(c.pid());
  if (auto s = c.call("GET", "/v1/status")) {
    f.status_follows = s->value("follows", std::uint64_t{0});
    f.status_peers = s->value("peers", std::uint64_t{0});
  }
  check(f.status_follows == opt.peers,
        "C's status counts " + std::to_string(f.status_follows) + " follows, not " +
            std::to_string(opt.peers));
  return f;
}

// --- the report ----------------------------------------------------------------------------

void row(const std::string& what, const std::string& measured, const std::string& against) {
  std::fprintf(stderr, "  %-34s %-26s %s\n", what.c_str(), measured.c_str(), against.c_str());
}

} // namespace

int main(int argc, char** argv) {
  options opt;
  if (const auto stop = read_options(argc, argv, opt))
    return *stop;
  if (opt.n == 0 && opt.peers == 0) {
    std::cerr << "--n 0 and --peers 0 leave nothing to measure\n";
    return 2;
  }
  if (::access(opt.kith.c_str(), X_OK) != 0) {
    std::cerr << "cannot run " << opt.kith << " (build the kith target, or pass --kith)\n";
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);

  const auto t_run = steady::now();
  std::cerr << "kith-bench-replication: n " << grouped(opt.n) << ", peers " << grouped(opt.peers)
            << ", seed " << opt.seed << (opt.quick ? " (quick)" : "") << "\n  kith: " << opt.kith
            << '\n';

  run_dir root(opt.dir, "kith-bench-replication", opt.keep);
  std::cerr << "  directory: " << root.path().string() << '\n';
  // Declared after root so they stop before it is removed.
  node_proc a("A", root.path() / "A", root.path() / "A.log");
  node_proc b("B", root.path() / "B", root.path() / "B.log");
  node_proc c("C", root.path() / "C", root.path() / "C.log");
  const bool replicating = opt.n > 0; // --n 0: only the idle part
  if ((replicating && (!a.init(opt.kith) || !b.init(opt.kith))) ||
      (opt.peers > 0 && !c.init(opt.kith)))
    return 1;
  auto port_of = [&](int k) {
    return opt.port_base != 0 ? static_cast<std::uint16_t>(opt.port_base + k) : free_port();
  };

  std::optional<prepared> data;
  replication_figures rep;
  double payload_per_entry = 0, local_writes_per_s = 0, wire_per_entry = 0, wire_ratio = 0;
  double cpu_us_per_entry = 0, writer_cpu_us_per_entry = 0, entries_per_s = 0, tcp_s = NAN;
  std::uint64_t wire = 0;
  std::size_t compared = 0;
  if (replicating) {
    // 1. The writer's data, offline.
    std::cerr << "writing " << grouped(opt.n) << " documents into A's store (offline, calls of "
              << opt.batch << ")...\n";
    data = prepare_writer(a, opt);
    if (!data)
      return 1;
    check(data->clock_writes == opt.n,
          "A's feed clock counts " + std::to_string(data->clock_writes) +
              " writes after the offline load, not " + std::to_string(opt.n));
    payload_per_entry = static_cast<double>(data->payload_bytes) / static_cast<double>(opt.n);
    local_writes_per_s = static_cast<double>(opt.n) / data->write_s;
    std::cerr << "  " << fmt("%.2f", data->write_s) << " s (" << fmt("%.0f", local_writes_per_s)
              << " writes/s); payload " << grouped(data->payload_bytes) << " bytes ("
              << fmt("%.1f", payload_per_entry) << " per entry)\n";

    // 2. Both daemons, then B follows A.
    if (!start_node(a, opt, port_of(0)) || !start_node(b, opt, port_of(1)))
      return 1;
    std::cerr << "A (pid " << a.pid() << ") listens on " << a.address() << ", B (pid " << b.pid()
              << ") on " << b.address() << "; B follows A...\n";
    rep = replicate(a, b, *data, opt, root.path() / "polls.csv");
    entries_per_s = rep.converged ? static_cast<double>(opt.n) / rep.converge_s : 0.0;
    wire = rep.bytes_in + rep.bytes_out;
    wire_per_entry = static_cast<double>(wire) / static_cast<double>(opt.n);
    wire_ratio = wire_per_entry / payload_per_entry;
    cpu_us_per_entry = rep.follower_cpu_s * 1e6 / static_cast<double>(opt.n);
    writer_cpu_us_per_entry = rep.writer_cpu_s * 1e6 / static_cast<double>(opt.n);

    const auto stop_a = a.stop();
    const auto stop_b = b.stop();
    check(stop_a.has_value(), "A did not stop cleanly on SIGTERM");
    check(stop_b.has_value(), "B did not stop cleanly on SIGTERM");
    if (rep.converged && stop_b)
      compared = verify_follower_copy(b, a, *data, opt);

    // 3. Baseline: the same bytes over raw loopback TCP (median of 3).
    std::vector<double> tcp;
    for (int i = 0; i < 3; ++i)
      if (auto s = loopback_push(std::max<std::uint64_t>(wire, 1)))
        tcp.push_back(*s);
    std::sort(tcp.begin(), tcp.end());
    if (!tcp.empty())
      tcp_s = tcp[tcp.size() / 2];
    check(!tcp.empty(), "the loopback TCP baseline failed");
  }

  // 4. Idle cost of followed peers.
  idle_figures idle;
  if (opt.peers > 0) {
    if (!start_node(c, opt, port_of(2)))
      return 1;
    std::cerr << "C (pid " << c.pid() << ") follows " << grouped(opt.peers)
              << " identities that are never online...\n";
    idle = idle_peers(c, opt);
    idle.stop_s = c.stop();
    check(idle.stop_s.has_value(), "C did not stop cleanly on SIGTERM");
  }
  const double idle_delta_mb = mib(idle.rss_idle_kib) - mib(idle.rss_start_kib);
  const double kib_per_peer =
      opt.peers > 0 ? (static_cast<double>(idle.rss_idle_kib) - static_cast<double>(idle.rss_start_kib)) /
                          static_cast<double>(opt.peers)
                    : 0.0;
  const double idle_cpu_pct =
      idle.idle_window_s > 0 ? 100.0 * idle.idle_cpu_s / idle.idle_window_s : 0.0;
  const bool idle_target_applies = opt.peers >= target_idle_peers;

  // The report.
  const bool meets_rate = entries_per_s >= target_entries_per_s;
  const bool meets_wire = wire > 0 && wire_ratio <= target_wire_ratio;
  // The target is in MB (10^6 bytes); RSS is printed in MiB.
  const bool meets_idle = static_cast<double>(idle.rss_idle_kib) * 1024.0 / 1e6 < target_idle_mb;
  if (replicating) {
    std::fprintf(stderr, "\nreplication of %s documents (%.1f payload bytes each), B follows A\n",
                 grouped(opt.n).c_str(), payload_per_entry);
    row("figure", "measured", "target / baseline");
    row("converged", rep.converged ? "yes, " + fmt("%.2f s", rep.converge_s)
                                   : "NO (" + grouped(rep.writes_seen) + " writes)",
        "first writes on B after " + fmt("%.3f s", rep.first_entry_s));
    row("entries/s", fmt("%.0f", entries_per_s),
        std::string(">= 50,000: ") + (meets_rate ? "met" : "MISSED"));
    row("local write ceiling (A, offline)", fmt("%.0f writes/s", local_writes_per_s),
        fmt("%.2f s for N", data->write_s));
    row("raw loopback TCP, same bytes", fmt("%.1f ms", tcp_s * 1e3),
        fmt("%.0f MiB/s; ", static_cast<double>(wire) / tcp_s / 1048576.0) +
            fmt("replication took %.0fx longer", rep.converge_s / tcp_s));
    row("wire bytes (B in + out)", grouped(rep.bytes_in) + " + " + grouped(rep.bytes_out),
        "A counted " + grouped(rep.sender_bytes_out) + " sent to B");
    row("wire bytes per entry", fmt("%.1f", wire_per_entry),
        fmt("payload %.1f", payload_per_entry));
    row("wire / payload", fmt("%.2fx", wire_ratio),
        std::string("<= 1.5x: ") + (meets_wire ? "met" : "MISSED"));
    row("follower CPU per entry (B)", fmt("%.1f us", cpu_us_per_entry),
        fmt("B %.2f s CPU in all", rep.follower_cpu_s));
    row("follower peak RSS (B)", fmt("%.1f MiB", mib(rep.follower_peak_kib)),
        fmt("%.1f MiB before the follow", mib(rep.follower_rss_kib)));
    row("sender CPU per entry (A)", fmt("%.1f us", writer_cpu_us_per_entry),
        fmt("A %.2f s CPU in all", rep.writer_cpu_s));
  }
  if (opt.peers > 0) {
    std::fprintf(stderr, "\n%s followed identities on C (never online)\n",
                 grouped(opt.peers).c_str());
    row("RSS before / after follows", fmt("%.1f", mib(idle.rss_start_kib)) + " / " +
                                          fmt("%.1f MiB", mib(idle.rss_followed_kib)),
        fmt("%.1f s of follow calls", idle.follow_s) +
            fmt(" (%.0f/s)", static_cast<double>(idle.followed) / idle.follow_s));
    row("RSS after idle", fmt("%.1f MiB", mib(idle.rss_idle_kib)),
        idle_target_applies ? std::string("< 100 MB: ") + (meets_idle ? "met" : "MISSED")
                            : std::string("(target is for 10,000 peers)"));
    row("RSS growth", fmt("%.1f MiB", idle_delta_mb), fmt("%.2f KiB per followed peer", kib_per_peer));
    row("idle CPU", fmt("%.1f %% of a core", idle_cpu_pct),
        fmt("over %.1f s", idle.idle_window_s));
    row("shutdown", idle.stop_s ? fmt("%.2f s", *idle.stop_s) : std::string("FAILED"), "SIGTERM to exit");
  }

  json_line j("replication", opt.seed);
  j.flag("quick", opt.quick).num("n", opt.n);
  if (replicating)
    j.num("batch_ops", opt.batch)
      .num("payload_bytes", data->payload_bytes)
      .real("payload_bytes_per_entry", payload_per_entry)
      .real("local_write_s", data->write_s)
      .real("local_writes_per_s", local_writes_per_s)
      .flag("converged", rep.converged)
      .num("writes_seen", rep.writes_seen)
      .real("first_entry_s", rep.first_entry_s)
      .real("converge_s", rep.converge_s)
      .real("entries_per_s", entries_per_s)
      .flag("meets_50k", meets_rate)
      .num("bytes_in", rep.bytes_in)
      .num("bytes_out", rep.bytes_out)
      .num("sender_bytes_in", rep.sender_bytes_in)
      .num("sender_bytes_out", rep.sender_bytes_out)
      .num("entries_received", rep.entries_received)
      .real("wire_bytes_per_entry", wire_per_entry)
      .real("wire_ratio", wire_ratio)
      .flag("meets_1_5x", meets_wire)
      .real("follower_cpu_s", rep.follower_cpu_s)
      .real("follower_cpu_us_per_entry", cpu_us_per_entry)
      .real("follower_rss_mib", mib(rep.follower_rss_kib))
      .real("follower_peak_rss_mib", mib(rep.follower_peak_kib))
      .real("sender_cpu_s", rep.writer_cpu_s)
      .real("sender_cpu_us_per_entry", writer_cpu_us_per_entry)
      .real("tcp_baseline_ms", tcp_s * 1e3)
      .real("tcp_baseline_mib_per_s", static_cast<double>(wire) / tcp_s / 1048576.0)
      .num("polls", rep.polls);
  j.num("peers", opt.peers)
      .num("followed", idle.followed)
      .real("follow_s", idle.follow_s)
      .real("rss_start_mib", mib(idle.rss_start_kib))
      .real("rss_followed_mib", mib(idle.rss_followed_kib))
      .real("rss_idle_mib", mib(idle.rss_idle_kib))
      .real("rss_growth_mib", idle_delta_mb)
      .real("kib_per_peer", kib_per_peer)
      .real("idle_cpu_pct", idle_cpu_pct);
  if (idle_target_applies)
    j.flag("meets_100mb", meets_idle);
  else
    j.null("meets_100mb");
  j.num("keys_compared", compared).flag("verified", !any_failure);
  j.print();

  std::cerr << "done in " << fmt("%.1f", seconds_since(t_run)) << " s"
            << (any_failure ? "; SOME VERIFICATION FAILED" : "; all verified") << '\n';
  return any_failure ? 1 : 0;
}
