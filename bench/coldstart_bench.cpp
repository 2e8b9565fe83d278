// The cold-start benchmark: how long does a node take from `kith run` to
// an answering API when its data directory holds a large store? Beside it,
// in the same run and on the same directory, the two floors under that
// time: opening the same store with storage::store::open (and reading one
// document) in a fresh process, and opening the bare RocksDB directory
// with rocksdb::DB::Open in a fresh process.
//
//   kith-bench-coldstart [--quick] [--n N] [--batch B] [--rounds R]
//                        [--kith PATH] [--dir DIR] [--keep] [--seed S]
//                        [--log-level L] [--warm-only]
//
// Each round measures, in order: kith run with the store's files dropped
// from the page cache ("cold"), kith run again at once ("warm"), then the
// store open and the RocksDB open, each cold and warm. The figures are the
// medians over the rounds. Only the store's own files are dropped from the
// cache (no root needed); the programs and libraries stay cached, as they
// would on a machine that runs kith every day.
//
// Progress and a table go to stderr; stdout gets one JSON object
// (docs/benchmarks.md). Exit status: 0; 1 when something did not verify
// (a daemon failed to start, did not count the N writes, or did not exit
// cleanly; an open failed or read back wrong); 2 on bad arguments.

#include "support/checks.hpp"
#include "support/json_line.hpp"
#include "support/node_proc.hpp"
#include "support/page_cache.hpp"
#include "support/proc.hpp"
#include "kith/node/data_dir.hpp"
#include "kith/protocol/crypto.hpp"
#include "kith/storage/rocksdb_options.hpp"
#include "kith/storage/store.hpp"

#include <CLI/CLI.hpp>

#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#ifndef KITH_BENCH_KITH_PATH
#define KITH_BENCH_KITH_PATH "kith"
#endif

namespace {

using namespace kith;
using namespace kith::bench;
namespace fs = std::filesystem;

constexpr std::uint64_t default_seed = 20261122;
/// How often the API is polled while the daemon starts: the start figure
/// is at most this late.
constexpr double api_poll_s = 0.005;

struct options {
  bool quick = false;
  bool keep = false;
  bool warm_only = false;
  std::uint64_t seed = default_seed;
  std::size_t n = 1'000'000;
  std::size_t batch = 1000;
  std::size_t rounds = 5;
  std::string kith = KITH_BENCH_KITH_PATH;
  std::string dir;
  std::string log_level = "info";
};

/// Fills opt from argv (--quick shrinks the sizes not given). Returns the
/// exit status when the program should stop: 0 after --help, 2 on a bad
/// argument (CLI11 has said what was wrong).
std::optional<int> read_options(int argc, char** argv, options& opt) {
  CLI::App app{"kith-bench-coldstart: `kith run` on a large store until its API answers, "
               "beside opening the same store in a fresh process (docs/benchmarks.md)"};
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_flag("--quick", opt.quick, "N = 20000, 2 rounds (a smoke run)");
  auto* n = add_u64_option(app, "--n N", opt.n, 1, 9'999'999,
                           "documents in the node's feed (default 1000000)");
  add_u64_option(app, "--batch B", opt.batch, 1, 4096,
                 "ops per signed store::write while filling it (default 1000)");
  auto* rounds = add_u64_option(app, "--rounds R", opt.rounds, 1, 100,
                                "measurements of each kind; medians are printed (default 5)");
  add_text_option(app, "--kith PATH", opt.kith,
                  "the kith program (default " KITH_BENCH_KITH_PATH ")");
  add_text_option(app, "--dir DIR", opt.dir,
                  "where the run's directory is made (default: system temp dir)");
  app.add_flag("--keep", opt.keep, "keep the data directory and the daemon's log");
  add_u64_option(app, "--seed S", opt.seed, 0, UINT64_MAX,
                 "seeds the document texts and the probed key (default 20261122)");
  add_text_option(app, "--log-level L", opt.log_level, "the daemon's log level (default info)");
  app.add_flag("--warm-only", opt.warm_only,
               "do not drop the store's files from the page cache");
  if (auto stop = parse_command_line<CLI::ParseError>(app, argc, argv))
    return stop;
  quick_value(opt.quick, n, opt.n, 20'000);
  quick_value(opt.quick, rounds, opt.rounds, 2);
  return std::nullopt;
}

double median(std::vector<double> v) {
  if (v.empty())
    return NAN;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// --- the measuring child: a fresh process opens the store ------------------------------

/// The store's own options, so the bare open reads the same files the
/// same way.
rocksdb::Options store_like_options() { return storage::store_rocksdb_options(false); }

/// `--open-only store|rocksdb HOME INDEX`: opens HOME's store, reads
/// document INDEX (store) or the first key (rocksdb), prints
/// "open_ms=.. read_ms=.. ok=0|1 writes=.. rss_kib=.." and exits.
int open_only_main(const std::string& mode, const std::string& home, std::uint64_t index) {
  const node::data_dir dd(home);
  std::ostringstream out;
  if (mode == "store") {
    auto id = dd.load_identity();
    if (!id) {
      std::cerr << "open-only: " << id.err().message << '\n';
      return 1;
    }
    storage::store_options so;
    so.sync = false;
    const auto t0 = steady::now();
    auto st = storage::store::open(dd.store_dir(), *id, false, so);
    const double open_s = seconds_since(t0);
    if (!st) {
      std::cerr << "open-only: " << st.err().message << '\n';
      return 1;
    }
    const auto t1 = steady::now();
    auto& s = *st.value();
    const auto feed = s.feed_topic_id();
    auto clk = s.clock_copy(feed);
    auto v = s.read(feed, doc_key(protocol::to_text(id->pub()), index));
    const double read_s = seconds_since(t1);
    const bool ok = clk.has_value() && v.ok() && v->siblings.size() == 1;
    out << "open_ms=" << open_s * 1e3 << " read_ms=" << read_s * 1e3 << " ok=" << ok
        << " writes=" << (clk ? clk->dot_count() : 0);
  } else if (mode == "rocksdb") {
    rocksdb::DB* raw = nullptr;
    const auto t0 = steady::now();
    const auto st = rocksdb::DB::Open(store_like_options(), dd.store_dir(), &raw);
    const double open_s = seconds_since(t0);
    std::unique_ptr<rocksdb::DB> db(raw);
    if (!st.ok()) {
      std::cerr << "open-only: " << st.ToString() << '\n';
      return 1;
    }
    const auto t1 = steady::now();
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions{}));
    it->SeekToFirst();
    const bool ok = it->Valid() && it->status().ok();
    const double read_s = seconds_since(t1);
    out << "open_ms=" << open_s * 1e3 << " read_ms=" << read_s * 1e3 << " ok=" << ok
        << " writes=0";
  } else if (mode == "none") {
    // The process alone: exec, dynamic linking, exit (the parent times it).
    out << "open_ms=0 read_ms=0 ok=1 writes=0";
  } else {
    std::cerr << "open-only: unknown mode " << mode << '\n';
    return 2;
  }
  out << " rss_kib=" << status_kib(::getpid(), "VmRSS");
  std::cout << out.str() << std::endl;
  return 0;
}

struct open_sample {
  double wall_ms = NAN; // spawn to exit of the measuring process
  double open_ms = NAN;
  double read_ms = NAN;
  std::uint64_t writes = 0;
  std::uint64_t rss_kib = 0;
  bool ok = false;
};

/// Runs this program with --open-only in a fresh process and reads its line.
open_sample measure_open(const std::string& mode, const fs::path& home, std::uint64_t index) {
  open_sample r;
  int fds[2];
  if (::pipe(fds) != 0)
    return r;
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  const std::string idx = std::to_string(index);
  std::vector<std::string> args{self, "--open-only", mode, home.string(), idx};
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  pid_t pid = -1;
  const auto t0 = steady::now();
  const int rc = ::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    return r;
  }
  std::string text;
  char buf[512];
  for (ssize_t k; (k = ::read(fds[0], buf, sizeof buf)) > 0;)
    text.append(buf, static_cast<std::size_t>(k));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.wall_ms = seconds_since(t0) * 1e3;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return r;
  std::map<std::string, std::string> kv;
  std::istringstream in(text);
  for (std::string field; in >> field;)
    if (auto eq = field.find('='); eq != std::string::npos)
      kv[field.substr(0, eq)] = field.substr(eq + 1);
  auto num = [&](const char* k) { return kv.count(k) ? std::strtod(kv[k].c_str(), nullptr) : NAN; };
  r.open_ms = num("open_ms");
  r.read_ms = num("read_ms");
  r.writes = static_cast<std::uint64_t>(num("writes"));
  r.rss_kib = static_cast<std::uint64_t>(num("rss_kib"));
  r.ok = kv["ok"] == "1";
  return r;
}

// --- filling the store --------------------------------------------------------------------

struct filled {
  std::string feed_topic;
  double write_s = 0;
  std::uint64_t clock_writes = 0;
};

/// Writes N documents into the node's feed with the daemon stopped, in
/// calls of `batch` ops (one signature each).
std::optional<filled> fill_store(const node_proc& node, const options& opt) {
  filled out;
  auto id = node::data_dir(node.home().string()).load_identity();
  if (!id) {
    std::cerr << "cannot load the identity: " << id.err().message << '\n';
    return std::nullopt;
  }
  storage::store_options so;
  so.sync = false;
  auto opened = storage::store::open(node::data_dir(node.home().string()).store_dir(), *id, true, so);
  if (!opened) {
    std::cerr << "cannot open the store: " << opened.err().message << '\n';
    return std::nullopt;
  }
  auto st = std::move(opened.value());
  out.feed_topic = st->feed_topic_id();
  std::mt19937_64 rng{opt.seed};
  const auto now_ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  std::vector<storage::write_op> ops;
  std::size_t calls = 0;
  const std::size_t step = std::max<std::size_t>(opt.batch, opt.n / 10 / opt.batch * opt.batch);
  for (std::size_t first = 0; first < opt.n; first += opt.batch) {
    const std::size_t last = std::min(opt.n, first + opt.batch);
    ops.clear();
    for (std::size_t i = first; i < last; ++i) {
      storage::write_op w;
      w.key = doc_key(node.id(), i);
      w.value = doc_value(rng);
      ops.push_back(std::move(w));
    }
    const auto t0 = steady::now();
    auto r = st->write(out.feed_topic, ops, now_ms + calls);
    out.write_s += seconds_since(t0);
    ++calls;
    if (!check(r.ok(), "store::write failed: " + (r ? std::string() : r.err().message)))
      return std::nullopt;
    if (last % step == 0 && last < opt.n)
      std::cerr << "  " << grouped(last) << " written\n";
  }
  if (auto c = st->clock_copy(out.feed_topic))
    out.clock_writes = c->dot_count();
  return out;
}

std::pair<std::uint64_t, std::uint64_t> dir_bytes(const fs::path& dir) {
  std::uint64_t total = 0, files = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file(ec)) {
      total += e.file_size(ec);
      ++files;
    }
  return {total, files};
}

// --- one start of the daemon ------------------------------------------------------------------

struct start_sample {
  double ready_ms = NAN; // spawn -> first right /v1/status answer
  double topics_ms = NAN; // then GET /v1/topics showing the N writes
  std::uint64_t rss_kib = 0;
  double stop_s = NAN;
  bool ok = false;
};

start_sample start_once(node_proc& node, const options& opt, const std::string& feed) {
  start_sample s;
  node.poll_s = api_poll_s;
  node.ready_timeout_s = 600;
  if (!node.start(opt.kith, free_port(), opt.log_level))
    return s;
  s.ready_ms = node.ready_s() * 1e3;
  s.rss_kib = rss_kib(node.pid());
  const auto t0 = steady::now();
  std::uint64_t writes = 0;
  if (auto t = node.call("GET", "/v1/topics", std::nullopt, false); t && t->contains("topics"))
    for (const auto& x : (*t)["topics"])
      if (x.value("id", std::string{}) == feed)
        writes = x.value("writes", std::uint64_t{0});
  s.topics_ms = seconds_since(t0) * 1e3;
  check(writes == opt.n, "the daemon's /v1/topics counts " + std::to_string(writes) +
                             " writes in the feed, not " + std::to_string(opt.n));
  const auto stop = node.stop();
  check(stop.has_value(), "the daemon did not stop cleanly on SIGTERM");
  s.stop_s = stop.value_or(NAN);
  s.ok = writes == opt.n && stop.has_value();
  return s;
}

void row(const std::string& what, const std::string& cold, const std::string& warm,
         const std::string& note) {
  std::fprintf(stderr, "  %-30s %-14s %-14s %s\n", what.c_str(), cold.c_str(), warm.c_str(),
               note.c_str());
}

std::string ms(double v) { return std::isfinite(v) ? fmt("%.1f ms", v) : std::string("-"); }

} // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--open-only") {
    std::uint64_t idx = 0;
    if (!parse_u64(argv[4], idx)) {
      std::cerr << "--open-only needs a document index\n";
      return 2;
    }
    return open_only_main(argv[2], argv[3], idx);
  }
  options opt;
  if (const auto stop = read_options(argc, argv, opt))
    return *stop;
  if (::access(opt.kith.c_str(), X_OK) != 0) {
    std::cerr << "cannot run " << opt.kith << " (build the kith target, or pass --kith)\n";
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);

  const auto t_run = steady::now();
  std::cerr << "kith-bench-coldstart: n " << grouped(opt.n) << ", rounds " << opt.rounds
            << ", seed " << opt.seed << (opt.quick ? " (quick)" : "") << "\n  kith: " << opt.kith
            << '\n';
  run_dir root(opt.dir, "kith-bench-coldstart", opt.keep);
  std::cerr << "  directory: " << root.path().string() << '\n';
  node_proc node("D", root.path() / "D", root.path() / "D.log");
  if (!node.init(opt.kith))
    return 1;

  std::cerr << "writing " << grouped(opt.n) << " documents into the store (offline, calls of "
            << opt.batch << ")...\n";
  const auto data = fill_store(node, opt);
  if (!data)
    return 1;
  check(data->clock_writes == opt.n, "the feed clock counts " +
                                         std::to_string(data->clock_writes) + " writes, not " +
                                         std::to_string(opt.n));
  const fs::path store_dir = node::data_dir(node.home().string()).store_dir();
  const auto [store_bytes, store_files] = dir_bytes(store_dir);
  std::cerr << "  " << fmt("%.1f s", data->write_s) << "; store " << fmt("%.1f MiB", mib(store_bytes / 1024))
            << " in " << store_files << " files\n";

  std::mt19937_64 rng{opt.seed ^ 0x5eedULL};
  const std::uint64_t probe = rng() % opt.n;

  // The first open after the fill (whatever the writer left for RocksDB
  // to recover or compact) is reported on its own, so the rounds all
  // start alike.
  if (!opt.warm_only)
    (void)drop_page_cache(store_dir);
  const auto first = measure_open("store", node.home(), probe);
  check(first.ok && first.writes == opt.n,
        "the first store open in a fresh process failed or read back wrong");
  std::cerr << "  first open after the fill: " << ms(first.open_ms) << '\n';

  std::vector<double> kith_cold, kith_warm, kith_rss_cold, kith_topics, kith_stop;
  std::vector<double> store_cold, store_warm, store_read_cold, store_read_warm, store_rss;
  std::vector<double> rocks_cold, rocks_warm, process_ms;
  std::vector<double> resident_after_drop;
  auto cold = [&] {
    if (!opt.warm_only)
      resident_after_drop.push_back(drop_page_cache(store_dir));
  };
  auto take_open = [&](const char* mode, std::vector<double>& open_v, std::vector<double>* read_v,
                       std::vector<double>* rss_v) {
    const auto s = measure_open(mode, node.home(), probe);
    check(s.ok && (std::string(mode) != "store" || s.writes == opt.n),
          std::string("the ") + mode + " open in a fresh process failed or read back wrong");
    open_v.push_back(s.open_ms + s.read_ms);
    if (read_v)
      read_v->push_back(s.read_ms);
    if (rss_v)
      rss_v->push_back(mib(s.rss_kib));
  };
  for (std::size_t r = 0; r < opt.rounds; ++r) {
    cold();
    const auto c = start_once(node, opt, data->feed_topic);
    kith_cold.push_back(c.ready_ms);
    kith_rss_cold.push_back(mib(c.rss_kib));
    kith_topics.push_back(c.topics_ms);
    kith_stop.push_back(c.stop_s);
    const auto w = start_once(node, opt, data->feed_topic);
    kith_warm.push_back(w.ready_ms);
    cold();
    take_open("store", store_cold, &store_read_cold, &store_rss);
    take_open("store", store_warm, &store_read_warm, nullptr);
    cold();
    take_open("rocksdb", rocks_cold, nullptr, nullptr);
    take_open("rocksdb", rocks_warm, nullptr, nullptr);
    process_ms.push_back(measure_open("none", node.home(), probe).wall_ms);
    std::cerr << "  round " << r + 1 << ": kith run " << ms(c.ready_ms) << " cold, "
              << ms(w.ready_ms) << " warm; store open+read " << ms(store_cold.back()) << " / "
              << ms(store_warm.back()) << "; rocksdb open " << ms(rocks_cold.back()) << " / "
              << ms(rocks_warm.back()) << '\n';
    if (!c.ok || !w.ok)
      break;
  }

  const char* cold_label = opt.warm_only ? "(not dropped)" : "cold";
  std::fprintf(stderr, "\ncold start with %s documents (%.1f MiB store), medians of %zu\n",
               grouped(opt.n).c_str(), mib(store_bytes / 1024), kith_cold.size());
  row("figure", cold_label, "warm", "");
  row("kith run -> /v1/status answers", ms(median(kith_cold)), ms(median(kith_warm)),
      fmt("RSS then %.1f MiB", median(kith_rss_cold)));
  row("store::open + one read (baseline)", ms(median(store_cold)), ms(median(store_warm)),
      fmt("fresh process, RSS %.1f MiB", median(store_rss)));
  row("RocksDB open + first key", ms(median(rocks_cold)), ms(median(rocks_warm)),
      "fresh process, the physical floor");
  row("a process that only starts", ms(median(process_ms)), "",
      "spawn to exit of this program (node libraries linked)");
  row("first open after the fill", ms(first.open_ms + first.read_ms), "",
      "after the writer closed the store");
  row("then GET /v1/topics", ms(median(kith_topics)), "", "");
  row("SIGTERM to exit", fmt("%.2f s", median(kith_stop)), "", "");

  json_line("cold_start", opt.seed)
      .flag("quick", opt.quick)
      .num("n", opt.n)
      .num("rounds", kith_cold.size())
      .flag("cache_dropped", !opt.warm_only)
      .num("store_bytes", store_bytes)
      .num("store_files", store_files)
      .real("fill_s", data->write_s)
      .real("fill_writes_per_s", static_cast<double>(opt.n) / data->write_s)
      .real("kith_ready_ms_cold", median(kith_cold))
      .real("kith_ready_ms_warm", median(kith_warm))
      .real("kith_rss_mib_at_ready", median(kith_rss_cold))
      .real("kith_topics_ms", median(kith_topics))
      .real("kith_stop_s", median(kith_stop))
      .real("store_open_read_ms_cold", median(store_cold))
      .real("store_open_read_ms_warm", median(store_warm))
      .real("store_read_ms_cold", median(store_read_cold))
      .real("store_rss_mib", median(store_rss))
      .real("rocksdb_open_ms_cold", median(rocks_cold))
      .real("rocksdb_open_ms_warm", median(rocks_warm))
      .real("process_spawn_exit_ms", median(process_ms))
      .real("first_open_ms", first.open_ms + first.read_ms)
      .real("page_cache_resident_after_drop",
            resident_after_drop.empty() ? NAN : median(resident_after_drop))
      .real("api_poll_ms", api_poll_s * 1e3)
      .flag("verified", !any_failure)
      .print();
  std::cerr << "done in " << fmt("%.1f", seconds_since(t_run)) << " s"
            << (any_failure ? "; SOME VERIFICATION FAILED" : "; all verified") << '\n';
  return any_failure ? 1 : 0;
}
