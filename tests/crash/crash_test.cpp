// Crash safety of the RocksDB-backed store (issue 3).
//
// Many times: start kith-crash-writer on one store directory, let it commit
// steps of the crash workload for a random few milliseconds, kill it with
// SIGKILL, collect the steps it acknowledged, reopen the store here and
// check it against a model of the workload:
//   - every acknowledged step is present, with exactly the values, dots and
//     times the writer committed (and nothing else is stored);
//   - the one step that may have been committed but not acknowledged (the
//     kill came between write() returning and the ack) is wholly present or
//     wholly absent, never half-applied;
//   - the own clock entry counts exactly the dots issued, without gaps, and
//     covers every stored dot; check_topic passes;
//   - the incrementally maintained index rows equal a rebuild (reindex) and
//     the count the model predicts.
// The next round continues the workload on the same store, so it grows
// across rounds and later kills land in WAL recovery, flushes and
// compactions too; every KITH_CRASH_STORE_ROUNDS rounds (default 25) a
// fresh store starts, so a long soak stays fast. Rounds: KITH_CRASH_ROUNDS
// (default 25); seed: KITH_TEST_SEED (support/seed.hpp). On failure the
// store is kept and its path printed.

#include "crash_workload.hpp"

#include "kith/protocol/signed_write.hpp"
#include "kith/storage/store.hpp"
#include "support/seed.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#ifndef KITH_CRASH_WRITER
#error "KITH_CRASH_WRITER (path of kith-crash-writer) must be defined by the build"
#endif

extern char** environ;

using namespace kith;
using storage::dot;
using storage::replica_id;
using Clock = std::chrono::steady_clock;

namespace {

int env_int(const char* name, int fallback) {
  if (const char* env = std::getenv(name))
    return std::max(1, std::atoi(env));
  return fallback;
}

/// A scratch directory, removed at scope exit unless the test failed.
class scratch_dir {
public:
  scratch_dir() {
    path_ = std::filesystem::temp_directory_path() /
            ("kith-crash-" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~scratch_dir() {
    if (!passed) {
      std::cerr << "crash test: store kept for inspection in " << store() << "\n";
      return;
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  /// A fresh store directory (the previous one is removed).
  [[nodiscard]] std::string next_store() {
    std::error_code ec;
    if (!store_.empty())
      std::filesystem::remove_all(store_, ec);
    store_ = (path_ / ("store-" + std::to_string(++n_))).string();
    return store_;
  }
  [[nodiscard]] const std::string& store() const { return store_; }
  bool passed = false;

private:
  std::filesystem::path path_;
  std::string store_;
  int n_ = 0;
};

// --- running the writer ---------------------------------------------------------

struct writer_run {
  std::vector<std::uint64_t> acks;
  std::vector<std::string> junk; // output lines that are not acks
  int status = 0;
  bool exited_early = false;  // stdout closed before the kill
  bool no_ack_in_time = false; // waited 30 s for the first ack
};

std::string describe_status(int st) {
  if (WIFSIGNALED(st))
    return std::string("killed by signal ") + std::to_string(WTERMSIG(st)) + " (" +
           strsignal(WTERMSIG(st)) + ")";
  if (WIFEXITED(st))
    return "exited with status " + std::to_string(WEXITSTATUS(st)) +
           " (see its message on stderr)";
  return "wait status " + std::to_string(st);
}

/// Runs the writer from step `start`, reading its acks while it runs, and
/// kills it with SIGKILL `kill_after` after it started or, with
/// after_first_ack, after its first ack (so the kill lands in the burst of
/// writes rather than in start-up).
writer_run run_writer(const std::string& dir, std::uint64_t seed, std::uint64_t start, bool sync,
                      std::chrono::microseconds kill_after, bool after_first_ack) {
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  std::vector<std::string> args{KITH_CRASH_WRITER, dir, std::to_string(seed),
                                std::to_string(start)};
  if (sync)
    args.emplace_back("--sync");
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  if (rc != 0)
    ::close(fds[0]);
  INFO("cannot start " << KITH_CRASH_WRITER << ": " << std::strerror(rc));
  REQUIRE(rc == 0);

  writer_run run;
  std::string out;
  bool eof = false;
  auto read_some = [&] {
    char buf[65536];
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0)
      out.append(buf, static_cast<std::size_t>(n));
    else if (n == 0 || errno != EINTR)
      eof = true;
  };
  // Drain the pipe while the writer runs, so it never blocks on a full pipe.
  const auto spawned = Clock::now();
  auto deadline = after_first_ack ? spawned + std::chrono::seconds(30) : spawned + kill_after;
  bool armed = !after_first_ack;
  while (!eof) {
    const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now());
    if (left.count() <= 0)
      break;
    pollfd p{fds[0], POLLIN, 0};
    timespec ts{static_cast<time_t>(left.count() / 1000000),
                static_cast<long>(left.count() % 1000000) * 1000};
    if (::ppoll(&p, 1, &ts, nullptr) > 0) {
      read_some();
      if (!armed && out.find('\n') != std::string::npos) {
        armed = true;
        deadline = Clock::now() + kill_after;
      }
    }
  }
  run.exited_early = eof;
  run.no_ack_in_time = !armed;
  ::kill(pid, SIGKILL);
  while (!eof)
    read_some();
  ::close(fds[0]);
  while (::waitpid(pid, &run.status, 0) < 0 && errno == EINTR) {
  }

  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    if (lines.eof())
      break; // a line without its newline: cannot happen (one write(2) per ack)
    if (line.rfind("ack ", 0) == 0 && line.size() > 4 &&
        line.find_first_not_of("0123456789", 4) == std::string::npos)
      run.acks.push_back(std::strtoull(line.c_str() + 4, nullptr, 10));
    else
      run.junk.push_back(line);
  }
  return run;
}

// --- the model ------------------------------------------------------------------

/// What one key must hold: its single value, the dot counter and time of
/// the write that put it there.
struct cell {
  std::string value;
  std::uint64_t n = 0;
  std::uint64_t time = 0;
};

/// The state the workload's first `steps` steps leave.
struct model {
  std::string owner;
  std::uint64_t seed = 0;
  std::map<std::string, cell> keys;
  std::uint64_t steps = 0;
  std::uint64_t dots = 0;

  using effect_t = std::vector<std::pair<std::string, std::optional<cell>>>;

  /// What step `steps + 1` leaves in each key it touches (nullopt: deleted).
  [[nodiscard]] effect_t next_effect() const {
    effect_t out;
    std::uint64_t n = dots;
    const std::uint64_t i = steps + 1;
    for (auto& op : crash::step_ops(owner, seed, i)) {
      ++n;
      if (op.value)
        out.emplace_back(op.key, cell{*op.value, n, crash::time_of(i)});
      else
        out.emplace_back(op.key, std::nullopt);
    }
    return out;
  }
  void advance() {
    const auto eff = next_effect();
    for (const auto& [k, c] : eff) {
      if (c)
        keys[k] = *c;
      else
        keys.erase(k);
    }
    dots += eff.size();
    ++steps;
  }
  [[nodiscard]] std::optional<cell> at(const std::string& k) const {
    auto i = keys.find(k);
    return i == keys.end() ? std::nullopt : std::optional<cell>(i->second);
  }
  /// Index rows the live posts must have: one by author, and two per
  /// hashtag (by tag, and by time for trending).
  [[nodiscard]] std::size_t index_rows() const {
    std::size_t rows = 0;
    for (const auto& [k, c] : keys)
      if (k.compare(k.find('\0') + 1, std::string::npos, "text") == 0)
        rows += 1 + 2 * storage::hashtags(c.value.substr(1, c.value.size() - 2)).size();
    return rows;
  }
};

std::string printable(const std::string& key, const std::string& owner) {
  std::string s = key;
  if (s.rfind(owner, 0) == 0)
    s = "<writer>" + s.substr(owner.size());
  for (auto& ch : s)
    if (ch == '\0')
      ch = '|';
  return s;
}

std::string show(const storage::key_view* v) {
  if (!v)
    return "absent";
  std::ostringstream os;
  os << v->siblings.size() << " sibling(s)";
  for (const auto& s : v->siblings)
    os << " [" << s.d << " t=" << s.time_ms << " " << s.value.substr(0, 48)
       << (s.value.size() > 48 ? "..." : "") << "]";
  return os.str();
}

std::string show(const std::optional<cell>& c) {
  if (!c)
    return "absent";
  std::ostringstream os;
  os << "[n=" << c->n << " t=" << c->time << " " << c->value.substr(0, 48)
     << (c->value.size() > 48 ? "..." : "") << "]";
  return os.str();
}

/// Checks the reopened store against the model of the acknowledged steps
/// (m.steps of them). If the following, unacknowledged step is wholly
/// present, advances the model past it. Returns every problem found.
std::vector<std::string> verify(storage::store& s, model& m, replica_id rid, bool& extra) {
  std::vector<std::string> problems;
  extra = false;
  const std::string feed = s.feed_topic_id();
  auto listed = s.read_prefix(feed, m.owner + "/");
  if (!listed)
    return {"read_prefix failed: " + listed.err().message};
  std::map<std::string, storage::key_view> actual;
  for (auto& [k, v] : *listed)
    actual.emplace(k, v);
  auto find = [&](const std::string& k) -> const storage::key_view* {
    auto i = actual.find(k);
    return i == actual.end() ? nullptr : &i->second;
  };
  auto same = [&](const storage::key_view* v, const std::optional<cell>& c) {
    if (!c)
      return v == nullptr;
    if (!v || v->siblings.size() != 1)
      return false;
    const auto& sib = v->siblings[0];
    return sib.value == c->value && sib.d == dot{rid, causality::counter{c->n}} &&
           sib.time_ms == c->time;
  };

  // The next step (not acknowledged): all of it or none of it.
  const auto next = m.next_effect();
  std::set<std::string> touched;
  std::size_t as_before = 0, as_after = 0;
  for (const auto& [k, c] : next) {
    touched.insert(k);
    as_before += same(find(k), m.at(k));
    as_after += same(find(k), c);
  }
  if (as_after == next.size()) {
    extra = true;
  } else if (as_before != next.size()) {
    std::ostringstream os;
    os << "step " << m.steps + 1 << " (not acknowledged) is half-applied:";
    for (const auto& [k, c] : next)
      os << "\n    " << printable(k, m.owner) << ": stored " << show(find(k)) << ", before "
         << show(m.at(k)) << ", after " << show(c);
    problems.push_back(os.str());
  }

  // Every other key holds exactly what the acknowledged steps wrote.
  for (const auto& [k, c] : m.keys)
    if (!touched.count(k) && !same(find(k), c))
      problems.push_back("key " + printable(k, m.owner) + " (acknowledged): stored " +
                         show(find(k)) + ", expected " + show(c));
  for (const auto& [k, v] : actual)
    if (!touched.count(k) && !m.keys.count(k))
      problems.push_back("key " + printable(k, m.owner) + " is stored (" + show(&v) +
                         ") but no step up to " + std::to_string(m.steps + 1) + " leaves it");
  if (extra)
    m.advance();

  // The clock: the own entry counts every dot issued, with no gaps, and
  // covers every stored dot; nobody else's entry exists.
  const auto* clk = s.clock(feed);
  if (!clk)
    return problems.push_back("no clock for the feed"), problems;
  if (clk->base(rid) != m.dots)
    problems.push_back("own clock base " + std::to_string(clk->base(rid)) + " but " +
                       std::to_string(m.dots) + " dots were issued by steps 1.." +
                       std::to_string(m.steps));
  if (const auto* own = clk->find(rid); own && !own->bits().empty())
    problems.push_back("own clock entry has gaps (bits beyond base " +
                       std::to_string(own->base()) + ")");
  if (clk->size() > 1)
    problems.push_back("the clock has " + std::to_string(clk->size()) +
                       " entries; only the writer's replica ever wrote");
  for (const auto& [k, v] : actual)
    for (const auto& sib : v.siblings)
      if (!clk->contains(sib.d))
        problems.push_back("stored dot of " + printable(k, m.owner) + " not covered by the clock");
  if (auto st = s.check_topic(feed); !st)
    problems.push_back("check_topic: " + st.err().message);

  // Indexes maintained write by write equal a rebuild from the containers.
  auto before = s.index_rows();
  if (!before)
    return problems.push_back("index_rows failed: " + before.err().message), problems;
  auto rebuilt = s.reindex();
  if (!rebuilt)
    return problems.push_back("reindex failed: " + rebuilt.err().message), problems;
  auto after = s.index_rows();
  if (!after)
    return problems.push_back("index_rows failed: " + after.err().message), problems;
  if (*before != *after) {
    std::size_t missing = 0, stale = 0;
    std::set<std::string> a(after->begin(), after->end()), b(before->begin(), before->end());
    for (const auto& r : a)
      missing += !b.count(r);
    for (const auto& r : b)
      stale += !a.count(r);
    problems.push_back("incremental index rows differ from a rebuild: " +
                       std::to_string(missing) + " missing, " + std::to_string(stale) +
                       " stale (of " + std::to_string(after->size()) + ")");
  }
  if (*rebuilt != after->size() || after->size() != m.index_rows())
    problems.push_back("index rows: reindex wrote " + std::to_string(*rebuilt) + ", " +
                       std::to_string(after->size()) + " stored, the model expects " +
                       std::to_string(m.index_rows()));
  return problems;
}

} // namespace

TEST_CASE("a writer killed with SIGKILL loses no acknowledged write and half-applies none",
          "[crash][storage]") {
  const std::uint64_t seed = test::base_seed();
  const int rounds = env_int("KITH_CRASH_ROUNDS", 25);
  // A fresh store every this many rounds: the checks read the whole store
  // each round (and store::check_topic is slow on big stores), so a long
  // soak is a series of growing stores rather than one huge one.
  const int per_store = env_int("KITH_CRASH_STORE_ROUNDS", 25);
  test::rng g(seed ^ 0x6b696c6c6b696c6cULL);
  scratch_dir dir;
  std::optional<protocol::identity> me;
  replica_id rid;
  model m;

  std::uint64_t acked_total = 0, durable_unacked = 0, empty_rounds = 0, sync_rounds = 0;
  std::uint64_t dots_total = 0;
  double writer_secs = 0;
  const auto t0 = Clock::now();
  for (int round = 0; round < rounds; ++round) {
    if (round % per_store == 0) {
      // The writer's identity and content follow from the store's seed.
      dots_total += m.dots;
      const std::uint64_t store_seed =
          round == 0 ? seed : crash::mix(seed + static_cast<std::uint64_t>(round));
      me = crash::identity_for(store_seed);
      rid = protocol::derive_replica_id(me->pub(), crash::replica_nonce);
      m = model{};
      m.owner = protocol::to_text(me->pub());
      m.seed = store_seed;
      (void) dir.next_store();
    }
    // Most kills land in a burst of writes, 5-150 ms after the first ack
    // (mostly short bursts, so the store stays small enough to check
    // quickly); the others 1-40 ms after the start, in RocksDB's open, WAL
    // recovery and flush, or the first writes.
    const bool in_burst = test::chance(g, 0.7);
    const auto kill_after = std::chrono::microseconds(
        !in_burst              ? test::pick(g, 1'000, 40'000)
        : test::chance(g, 0.75) ? test::pick(g, 5'000, 50'000)
                               : test::pick(g, 50'000, 150'000));
    const bool sync = test::chance(g, 0.2);
    const std::uint64_t start = m.steps + 1;
    CAPTURE(seed, round, m.seed, dir.store(), start, in_burst, kill_after.count(), sync);

    const auto w0 = Clock::now();
    auto run = run_writer(dir.store(), m.seed, start, sync, kill_after, in_burst);
    writer_secs += std::chrono::duration<double>(Clock::now() - w0).count();
    INFO("writer " << describe_status(run.status));
    REQUIRE_FALSE(run.exited_early);
    REQUIRE_FALSE(run.no_ack_in_time);
    REQUIRE(WIFSIGNALED(run.status));
    REQUIRE(WTERMSIG(run.status) == SIGKILL);
    INFO("first unexpected output line: " << (run.junk.empty() ? "" : run.junk.front()));
    REQUIRE(run.junk.empty());
    for (std::size_t k = 0; k < run.acks.size(); ++k)
      REQUIRE(run.acks[k] == start + k);
    for (std::size_t k = 0; k < run.acks.size(); ++k)
      m.advance();
    acked_total += run.acks.size();
    empty_rounds += run.acks.empty();
    sync_rounds += sync;

    storage::store_options o;
    o.sync = false;
    o.replica_nonce = crash::replica_nonce; // used only if the writer never created it
    auto opened = storage::store::open(dir.store(), *me, true, o);
    INFO("reopening after the kill: " << (opened ? std::string() : opened.err().message));
    REQUIRE(opened);
    auto& s = *opened.value();
    REQUIRE(s.self_id() == rid);
    bool extra = false;
    const auto problems = verify(s, m, rid, extra);
    durable_unacked += extra;
    std::ostringstream report;
    report << problems.size() << " problem(s) after round " << round << " (seed " << seed
           << ", " << run.acks.size() << " acks, steps " << start << ".."
           << (start + run.acks.size() - 1) << " acknowledged):";
    for (std::size_t k = 0; k < problems.size() && k < 20; ++k)
      report << "\n  " << problems[k];
    INFO(report.str());
    REQUIRE(problems.empty());
  }
  const auto secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::cerr << "crash test: seed " << seed << ", " << rounds << " kills (" << sync_rounds
            << " with sync), " << acked_total << " acknowledged steps, " << empty_rounds
            << " rounds killed before the first ack, " << durable_unacked
            << " unacknowledged steps found whole, " << dots_total + m.dots << " dots in "
            << (rounds + per_store - 1) / per_store << " store(s), " << secs << " s ("
            << writer_secs << " s in the writer)\n";
  dir.passed = true;
}
