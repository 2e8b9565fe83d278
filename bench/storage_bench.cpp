// The storage benchmark: signed local writes through store::write, opening
// a store that holds a million keys in a thousand topics, and the tag index
// over a million posts, each against a baseline measured in the same run.
//
// Prints one JSON object per line on stdout, one per measured configuration;
// progress and explanations go to stderr. docs/benchmarks.md explains every
// case and every field. Identities, replica nonces, post texts and tags
// all come from std::mt19937_64 generators seeded from --seed, so a run
// writes the same data on every build; times vary.
//
//   kith-bench-storage [--quick] [--seed N] [--case NAME]
//
// Stores live in a fresh directory under std::filesystem::temp_directory_path()
// that is removed at the end. Exit status: 0, or 1 when a verification
// failed (a store returned wrong data or refused a write), or 2 on bad
// arguments.
//
// Hidden mode, used by open_1e6 to measure a cold open in a process whose
// memory the build phase has not touched:
//   kith-bench-storage --open-only DIR --seed N --topic HEX --key HEX
//                      --expect HEX --expect-writes N
// opens the store of DIR (the identity comes from the seed), reads the key
// (hex, it holds a NUL) of the topic, expects the value and the topic's
// write count, and prints one line "name=value ..." on stdout.

#include "support/checks.hpp"
#include "support/json_line.hpp"
#include "support/page_cache.hpp"
#include "support/proc.hpp"
#include "kith/protocol/crypto.hpp"
#include "kith/protocol/signed_write.hpp"
#include "kith/storage/rocksdb_options.hpp"
#include "kith/storage/kv.hpp"
#include "kith/storage/store.hpp"

#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
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
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace kith;
using storage::store;
using storage::write_op;
using steady = std::chrono::steady_clock;
using kith::bench::drop_page_cache;

constexpr std::uint64_t default_seed = 20261122;

// --- command line -------------------------------------------------------------

struct options {
  bool quick = false;
  std::uint64_t seed = default_seed;
  std::string only; // empty: every case
};

/// The sizes of one run; --quick shrinks them for a smoke test.
struct sizes {
  // signed_writes: write calls per batch size (index: batch 1, 64, 1024),
  // for the memory kv / RocksDB without fsync, and for RocksDB with fsync;
  // a configuration stops early once it has run for write_time_cap_s.
  std::vector<std::size_t> batches;
  std::vector<std::size_t> calls_nosync;
  std::vector<std::size_t> calls_sync;
  int sign_reps;               // sign_batch calls timed per batch size
  // open_1e6
  std::size_t open_topics;
  std::size_t open_keys_per_topic;
  // tag_query
  std::size_t tag_posts;
  std::size_t tag_count;       // distinct tags
  int tag_queries;             // timed by_tag calls per tag
  int scan_reps;               // timed full scans per tag
};

sizes sizes_for(bool quick) {
  if (quick)
    return {{1, 64, 1024}, {300, 20, 3}, {20, 3, 2}, 300, 100, 100, 100'000, 1000, 50, 1};
  return {{1, 64, 1024}, {5000, 400, 50}, {1000, 200, 30}, 5000, 1000, 1000, 1'000'000, 1000,
          200, 3};
}

// --- output ------------------------------------------------------------------

using kith::bench::json_line;

using kith::bench::any_failure;
using kith::bench::check;

// --- timing and the process ------------------------------------------------------

using kith::bench::seconds_since;

/// The q-quantile (0..1) of v, nearest rank.
double quantile(std::vector<double> v, double q) {
  if (v.empty())
    return 0.0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
}

double median(std::vector<double> v) { return quantile(std::move(v), 0.5); }

/// A field of /proc/self/status in KiB (VmRSS, VmHWM), 0 if unknown.
std::uint64_t proc_status_kib(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  const std::size_t n = std::strlen(field);
  while (std::getline(status, line))
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':')
      return std::strtoull(line.c_str() + n + 1, nullptr, 10);
  return 0;
}

double mib(std::uint64_t kib) { return static_cast<double>(kib) / 1024.0; }

/// The file system the stores live on, as statfs names it.
std::string fs_type(const fs::path& p) {
  struct statfs s {};
  if (::statfs(p.c_str(), &s) != 0)
    return "unknown";
  switch (static_cast<unsigned long>(s.f_type)) {
    case 0xEF53: return "ext4";
    case 0x01021994: return "tmpfs";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x794c7630: return "overlayfs";
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "0x%lx", static_cast<unsigned long>(s.f_type));
      return buf;
    }
  }
}

/// Total size of the regular files under dir, and their count.
std::pair<std::uint64_t, std::uint64_t> dir_size(const fs::path& dir,
                                                 const std::string& ext = {}) {
  std::uint64_t bytes = 0, files = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file(ec) && (ext.empty() || e.path().extension() == ext)) {
      bytes += e.file_size(ec);
      ++files;
    }
  return {bytes, files};
}

/// A fresh directory under the system temp dir, removed at scope exit.
class temp_root {
public:
  temp_root() {
    path_ = fs::temp_directory_path() / ("kith-bench-storage-" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~temp_root() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  temp_root(const temp_root&) = delete;
  temp_root& operator=(const temp_root&) = delete;
  [[nodiscard]] const fs::path& path() const { return path_; }
  [[nodiscard]] std::string sub(const std::string& s) const { return (path_ / s).string(); }

private:
  fs::path path_;
};

std::string to_hex(std::string_view s) { return protocol::to_hex(s); }

std::optional<std::string> from_hex(std::string_view h) {
  if (h.size() % 2 != 0)
    return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < h.size(); i += 2) {
    auto nib = [](char c) -> int {
      if (c >= '0' && c <= '9')
        return c - '0';
      if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
      return -1;
    };
    const int a = nib(h[i]), b = nib(h[i + 1]);
    if (a < 0 || b < 0)
      return std::nullopt;
    out.push_back(static_cast<char>(a * 16 + b));
  }
  return out;
}

// --- identities and posts ---------------------------------------------------------

/// An identity and a replica nonce derived from (seed, which): every store
/// of a run has its own author, reproducible from the printed seed.
struct author {
  protocol::identity id;
  std::uint64_t nonce;
  std::string text; // the id's text form, the subject prefix of its keys
};

author make_author(std::uint64_t seed, std::uint64_t which) {
  std::mt19937_64 rng{seed ^ (0x9e3779b97f4a7c15ULL * (which + 1))};
  protocol::key_seed ks{};
  for (std::size_t i = 0; i < ks.size(); i += 8) {
    const auto v = rng();
    for (std::size_t j = 0; j < 8; ++j)
      ks[i + j] = static_cast<std::uint8_t>(v >> (8 * j));
  }
  auto id = protocol::identity::from_seed(ks);
  std::uint64_t nonce = rng() | 1; // 0 would mean "draw from the OS"
  auto text = protocol::to_text(id.pub());
  return {std::move(id), nonce, std::move(text)};
}

/// A feed post's text key: "<author id>/statuses/<n>\0text", as the node
/// and the tests name them.
std::string post_key(const std::string& author_text, std::uint64_t n) {
  std::string k = author_text + "/statuses/" + std::to_string(n);
  k.push_back('\0');
  k += "text";
  return k;
}

std::string tag_name(std::size_t rank) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "tag%04zu", rank);
  return buf;
}

constexpr const char* vocabulary[] = {
  "the",     "a",      "morning", "coffee", "train",  "late",   "again",  "rain",
  "walked",  "dog",    "park",    "reading", "new",   "book",   "about",  "gardens",
  "friends", "dinner", "tonight", "music",  "loud",   "quiet",  "street", "photo",
  "sunset",  "over",   "river",   "bread",  "baked",  "today",  "still",  "thinking",
};

std::uint64_t uniform(std::mt19937_64& rng, std::uint64_t lo, std::uint64_t hi) {
  return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng);
}

/// A post's value: a JSON string of about 100 bytes, words from a small
/// vocabulary with "#<tag>" at a random word position.
std::string post_value(std::mt19937_64& rng, const std::string& tag) {
  constexpr std::size_t target = 98; // text bytes, quotes excluded
  std::vector<std::string_view> ws;
  std::size_t len = tag.size() + 1;
  while (len < target - 8) {
    std::string_view w = vocabulary[uniform(rng, 0, std::size(vocabulary) - 1)];
    ws.push_back(w);
    len += w.size() + 1;
  }
  const auto at = uniform(rng, 0, ws.size());
  std::string v = "\"";
  for (std::size_t i = 0; i <= ws.size(); ++i) {
    if (i == at) {
      if (v.size() > 1)
        v.push_back(' ');
      v += '#' + tag;
    }
    if (i < ws.size()) {
      if (v.size() > 1)
        v.push_back(' ');
      v += ws[i];
    }
  }
  v.push_back('"');
  return v;
}

/// Ranks 1..n with probability proportional to 1 / rank^s.
class zipf {
public:
  zipf(std::size_t n, double s) {
    double sum = 0;
    for (std::size_t r = 1; r <= n; ++r) {
      sum += 1.0 / std::pow(static_cast<double>(r), s);
      cdf_.push_back(sum);
    }
    for (auto& c : cdf_)
      c /= sum;
  }
  std::size_t operator()(std::mt19937_64& rng) const {
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    auto i = std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin();
    return std::min<std::size_t>(static_cast<std::size_t>(i), cdf_.size() - 1) + 1;
  }

private:
  std::vector<double> cdf_;
};

constexpr double zipf_s = 1.0;
/// signed_writes: a configuration stops after this long even if it has
/// not made all its calls (a slow disk with fsync), and says so.
constexpr double write_time_cap_s = 3.0;
constexpr std::uint64_t time_base_ms = 1'795'000'000'000; // late 2026

// --- a kv wrapper that times the database -----------------------------------------

/// Forwards to another kv_store and accumulates the time spent in it, so
/// a store::write can be split into database time and everything else.
/// (A scan's time includes the store's visitor, which runs inside it.)
class timed_kv final : public storage::kv_store {
public:
  explicit timed_kv(std::unique_ptr<kv_store> inner) : inner_(std::move(inner)) {}

  storage::result<std::optional<std::string>> get(std::string_view key) const override {
    const auto t0 = steady::now();
    auto r = inner_->get(key);
    read_s += seconds_since(t0);
    ++gets;
    return r;
  }
  storage::status scan(std::string_view from, std::string_view to,
                       const visitor& fn) const override {
    const auto t0 = steady::now();
    auto r = inner_->scan(from, to, fn);
    read_s += seconds_since(t0);
    ++scans;
    return r;
  }
  storage::result<std::optional<std::pair<std::string, std::string>>>
  floor(std::string_view key, std::string_view lo) const override {
    const auto t0 = steady::now();
    auto r = inner_->floor(key, lo);
    read_s += seconds_since(t0);
    return r;
  }
  storage::status commit(const storage::kv_batch& b, bool sync) override {
    const auto t0 = steady::now();
    auto r = inner_->commit(b, sync);
    commit_s += seconds_since(t0);
    ++commits;
    rows += b.ops().size();
    bytes += b.bytes();
    if (record != nullptr)
      record->push_back(b);
    return r;
  }
  std::uint64_t memory_usage() const override { return inner_->memory_usage(); }

  void reset() {
    read_s = commit_s = 0;
    gets = scans = commits = rows = bytes = 0;
  }

  mutable double read_s = 0;
  mutable std::uint64_t gets = 0, scans = 0;
  double commit_s = 0;
  std::uint64_t commits = 0, rows = 0, bytes = 0;
  /// When set, a copy of every committed batch is appended here (the raw
  /// RocksDB baseline replays them).
  std::vector<storage::kv_batch>* record = nullptr;

private:
  std::unique_ptr<kv_store> inner_;
};

std::unique_ptr<store> must_open(storage::result<std::unique_ptr<store>> r, const char* what) {
  if (!r) {
    check(false, std::string(what) + ": open failed: " + r.err().message);
    return nullptr;
  }
  return std::move(r.value());
}

// --- signed_writes -------------------------------------------------------------------

/// sign_batch of a batch of `leaves` random leaves: the signing cost of
/// one store::write call of that many ops (hashing the leaves, then one
/// ed25519 signature over the fixed-size batch message).
struct sign_cost {
  double us_per_call = 0;
  bool verified = false;
};

sign_cost measure_sign(const options& opt, std::size_t leaves, int reps) {
  const auto a = make_author(opt.seed, 10 + leaves);
  std::mt19937_64 rng{opt.seed ^ (leaves * 7919)};
  std::vector<protocol::hash256> ls(leaves);
  for (auto& l : ls)
    for (auto& byte : l)
      byte = static_cast<std::uint8_t>(rng());
  const auto topic = protocol::feed_topic(a.id.pub()).id;
  const auto rid = protocol::derive_replica_id(a.id.pub(), a.nonce);
  double total = 0;
  protocol::signed_batch last;
  for (int i = 0; i < reps; ++i) {
    auto copy = ls; // sign_batch takes the leaves by value, as store::write moves them
    const auto t0 = steady::now();
    last = protocol::sign_batch(a.id, topic, rid, 1 + static_cast<std::uint64_t>(i) * leaves,
                                std::move(copy));
    total += seconds_since(t0);
  }
  sign_cost c;
  c.us_per_call = total / reps * 1e6;
  c.verified = protocol::check_batch(last, a.id.pub());
  return c;
}

/// The physical limit under signed_writes: the very rows a store::write
/// run committed, written again through rocksdb::DB::Write on a fresh
/// database opened with the options storage::open_rocksdb uses (see
/// storage/src/kv.cpp). No signing, no store logic, no reads.
struct raw_replay {
  double seconds = 0;
  std::uint64_t rows = 0, bytes = 0;
  bool ok = false;
};

raw_replay replay_raw_rocksdb(const std::string& dir,
                              const std::vector<storage::kv_batch>& batches, bool sync) {
  raw_replay out;
  const rocksdb::Options o = storage::store_rocksdb_options(true);
  rocksdb::DB* raw = nullptr;
  const auto st = rocksdb::DB::Open(o, dir, &raw);
  std::unique_ptr<rocksdb::DB> db(raw);
  if (!st.ok()) {
    check(false, "signed_writes: raw RocksDB open " + dir + ": " + st.ToString());
    return out;
  }
  // The WriteBatches are built before the clock starts, as the ops were.
  std::vector<rocksdb::WriteBatch> wbs(batches.size());
  for (std::size_t i = 0; i < batches.size(); ++i)
    for (const auto& op : batches[i].ops()) {
      if (op.erase)
        (void)wbs[i].Delete(op.key);
      else
        (void)wbs[i].Put(op.key, op.value);
      ++out.rows;
      out.bytes += op.key.size() + op.value.size();
    }
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  out.ok = true;
  const auto t0 = steady::now();
  for (auto& wb : wbs)
    out.ok = db->Write(wo, &wb).ok() && out.ok;
  out.seconds = seconds_since(t0);
  // Verified: the last batch's rows read back as written.
  if (!batches.empty())
    for (const auto& op : batches.back().ops()) {
      std::string v;
      const auto g = db->Get(rocksdb::ReadOptions{}, op.key, &v);
      out.ok = out.ok && (op.erase ? g.IsNotFound() : (g.ok() && v == op.value));
    }
  return out;
}

struct write_config {
  std::string backend; // memory, rocksdb
  bool sync;
  std::size_t batch;
  std::size_t calls;
};

void run_signed_writes(const options& opt, const sizes& sz, const temp_root& root) {
  const std::string fst = fs_type(root.path());
  std::cerr << "signed_writes: stores under " << root.path().string() << " (" << fst << ")\n";

  // Baseline: the signature alone, per write call of each batch size.
  std::map<std::size_t, double> sign_us;
  for (auto b : sz.batches) {
    const int reps = b >= 1024 ? std::max(20, sz.sign_reps / 5) : sz.sign_reps;
    const auto c = measure_sign(opt, b, reps);
    sign_us[b] = c.us_per_call;
    check(c.verified, "signed_writes: a signed batch does not verify");
    json_line("signed_writes", opt.seed)
      .str("backend", "sign_only")
      .num("batch", b)
      .num("calls", static_cast<std::uint64_t>(reps))
      .real("sign_us_per_call", c.us_per_call)
      .real("calls_per_s", 1e6 / c.us_per_call)
      .real("writes_per_s", static_cast<double>(b) * 1e6 / c.us_per_call)
      .flag("verified", c.verified)
      .print();
  }

  std::vector<write_config> configs;
  for (std::size_t i = 0; i < sz.batches.size(); ++i)
    configs.push_back({"memory", false, sz.batches[i], sz.calls_nosync[i]});
  for (std::size_t i = 0; i < sz.batches.size(); ++i)
    configs.push_back({"rocksdb", false, sz.batches[i], sz.calls_nosync[i]});
  for (std::size_t i = 0; i < sz.batches.size(); ++i)
    configs.push_back({"rocksdb", true, sz.batches[i], sz.calls_sync[i]});

  const zipf tags(1000, zipf_s);
  for (std::size_t ci = 0; ci < configs.size(); ++ci) {
    const auto& cfg = configs[ci];
    const auto a = make_author(opt.seed, 100 + ci);
    std::mt19937_64 rng{opt.seed + 1000 * (ci + 1)};
    // The ops, generated before the clock starts.
    std::vector<std::vector<write_op>> calls(cfg.calls);
    std::uint64_t n = 0; // post number, the <n> of the keys
    for (auto& ops : calls) {
      ops.reserve(cfg.batch);
      for (std::size_t j = 0; j < cfg.batch; ++j) {
        ++n;
        ops.push_back({post_key(a.text, n), post_value(rng, tag_name(tags(rng))), {}});
      }
    }

    storage::store_options o;
    o.sync = cfg.sync;
    o.replica_nonce = a.nonce;
    const std::string dir = root.sub("writes-" + std::to_string(ci));
    std::unique_ptr<storage::kv_store> inner;
    if (cfg.backend == "memory") {
      inner = storage::make_memory_kv();
    } else {
      auto kv = storage::open_rocksdb(dir, true);
      if (!check(kv.ok(), "signed_writes: open_rocksdb " + dir +
                              (kv ? std::string() : ": " + kv.err().message)))
        continue;
      inner = std::move(kv.value());
    }
    auto tkv = std::make_unique<timed_kv>(std::move(inner));
    timed_kv* meter = tkv.get();
    auto s = must_open(store::open(std::move(tkv), a.id, o), "signed_writes");
    if (!s)
      continue;
    const auto feed = s->feed_topic_id();
    (void)s->clock(feed); // load the topic's state before timing
    meter->reset();
    std::vector<storage::kv_batch> committed;
    if (cfg.backend == "rocksdb")
      meter->record = &committed;

    std::vector<double> per_call;
    per_call.reserve(cfg.calls);
    bool ok = true;
    std::optional<protocol::signed_batch> first_batch, last_batch;
    std::size_t done = 0;
    const auto t0 = steady::now();
    bool capped = false;
    for (std::size_t i = 0; i < calls.size(); ++i) {
      if (i > 0 && seconds_since(t0) > write_time_cap_s) {
        capped = true;
        break;
      }
      const auto tc = steady::now();
      auto push = s->write(feed, calls[i], time_base_ms + i);
      per_call.push_back(seconds_since(tc));
      if (!push) {
        check(false, "signed_writes: write failed: " + push.err().message);
        ok = false;
        break;
      }
      ++done;
      ok = ok && push->batches.size() == 1 && push->batches[0].leaves.size() == cfg.batch;
      if (i == 0)
        first_batch = push->batches.at(0);
      last_batch = push->batches.at(0);
    }
    const double elapsed = seconds_since(t0);
    const std::uint64_t total_ops = done * cfg.batch;
    const double commit_s = meter->commit_s, read_s = meter->read_s;
    const auto kv_rows = meter->rows, kv_bytes = meter->bytes, kv_gets = meter->gets;
    meter->record = nullptr;

    // Verification (untimed): the clock counts every op, the pushed
    // batches verify, a sample of keys reads back, the topic cross-checks.
    const auto* clk = s->clock(feed);
    ok = ok && clk != nullptr && clk->base(s->self_id()) == total_ops;
    ok = ok && first_batch && last_batch && protocol::check_batch(*first_batch, a.id.pub()) &&
         protocol::check_batch(*last_batch, a.id.pub());
    std::mt19937_64 vr{opt.seed ^ ci};
    for (int k = 0; k < 64 && ok; ++k) {
      if (done == 0)
        break;
      const auto& op = calls[uniform(vr, 0, done - 1)][uniform(vr, 0, cfg.batch - 1)];
      auto v = s->read(feed, op.key);
      ok = v && v->siblings.size() == 1 && v->siblings[0].value == *op.value;
    }
    ok = ok && s->check_topic(feed).ok();
    check(ok, "signed_writes " + cfg.backend + " sync=" + (cfg.sync ? "1" : "0") +
                  " batch=" + std::to_string(cfg.batch));
    s.reset();
    std::error_code ec;
    fs::remove_all(dir, ec);

    const double ops = static_cast<double>(total_ops);
    const double cl = static_cast<double>(done);
    const double sign_s = sign_us[cfg.batch] * 1e-6 * cl;
    const double wps = ops / elapsed;
    std::cerr << "  " << cfg.backend << (cfg.sync ? " sync" : "") << " batch " << cfg.batch
              << ": " << total_ops << " writes in " << elapsed << " s, " << wps << " writes/s\n";
    json_line("signed_writes", opt.seed)
      .str("backend", cfg.backend)
      .flag("sync", cfg.sync)
      .str("fs", cfg.backend == "memory" ? std::string("none") : fst)
      .num("batch", cfg.batch)
      .num("calls", done)
      .flag("capped", capped)
      .num("writes", total_ops)
      .real("seconds", elapsed)
      .real("writes_per_s", wps)
      .real("calls_per_s", cl / elapsed)
      .real("us_per_call_median", median(per_call) * 1e6)
      .real("us_per_call_p99", quantile(per_call, 0.99) * 1e6)
      .real("us_per_write", elapsed / ops * 1e6)
      .real("sign_us_per_write", sign_s / ops * 1e6)
      .real("kv_commit_us_per_write", commit_s / ops * 1e6)
      .real("kv_read_us_per_write", read_s / ops * 1e6)
      .real("other_us_per_write", (elapsed - sign_s - commit_s - read_s) / ops * 1e6)
      .real("kv_gets_per_write", static_cast<double>(kv_gets) / ops)
      .real("kv_rows_per_write", static_cast<double>(kv_rows) / ops)
      .real("kv_bytes_per_write", static_cast<double>(kv_bytes) / ops)
      .flag("meets_50k", wps >= 50'000)
      .flag("verified", ok)
      .print();

    if (cfg.backend == "rocksdb" && !committed.empty()) {
      const std::string raw_dir = root.sub("writes-raw-" + std::to_string(ci));
      const auto r = replay_raw_rocksdb(raw_dir, committed, cfg.sync);
      fs::remove_all(raw_dir, ec);
      check(r.ok, "signed_writes: raw RocksDB replay sync=" + std::string(cfg.sync ? "1" : "0") +
                      " batch=" + std::to_string(cfg.batch));
      const double raw_wps = ops / r.seconds;
      std::cerr << "    raw RocksDB, the same " << committed.size() << " batches: " << raw_wps
                << " writes/s\n";
      json_line("signed_writes", opt.seed)
        .str("backend", "rocksdb_raw")
        .flag("sync", cfg.sync)
        .str("fs", fst)
        .num("batch", cfg.batch)
        .num("calls", committed.size())
        .num("writes", total_ops)
        .real("seconds", r.seconds)
        .real("writes_per_s", raw_wps)
        .real("us_per_write", r.seconds / ops * 1e6)
        .real("kv_rows_per_write", static_cast<double>(r.rows) / ops)
        .real("kv_bytes_per_write", static_cast<double>(r.bytes) / ops)
        .real("store_fraction_of_raw", wps / raw_wps)
        .flag("verified", r.ok)
        .print();
    }
  }
}

// --- open_1e6 --------------------------------------------------------------------------

constexpr std::uint64_t open_author = 1000;

/// What the measuring process reports, "name=value" pairs.
using child_report = std::map<std::string, std::string>;

std::optional<child_report> parse_report(const std::string& text) {
  child_report r;
  std::istringstream in(text);
  std::string tok;
  while (in >> tok) {
    auto eq = tok.find('=');
    if (eq == std::string::npos)
      return std::nullopt;
    r[tok.substr(0, eq)] = tok.substr(eq + 1);
  }
  if (r.count("ok") == 0)
    return std::nullopt;
  return r;
}

struct probe {
  std::string topic, key, value;
  std::uint64_t topic_writes = 0; // own dots in the probe's topic
};

/// The measurement itself: open, first read, first use of the topic, RSS.
/// Runs in the child (the hidden --open-only mode) or, if exec fails, here.
child_report measure_open(const std::string& dir, std::uint64_t seed, const probe& p) {
  child_report r;
  const auto a = make_author(seed, open_author);
  storage::store_options o;
  o.sync = false;
  r["rss_start_kib"] = std::to_string(proc_status_kib("VmRSS"));
  auto t0 = steady::now();
  auto s = store::open(dir, a.id, false, o);
  const double open_s = seconds_since(t0);
  if (!s) {
    r["ok"] = "0";
    r["error"] = "open";
    std::cerr << "open_1e6: open failed: " << s.err().message << '\n';
    return r;
  }
  r["rss_open_kib"] = std::to_string(proc_status_kib("VmRSS"));
  t0 = steady::now();
  auto v = (*s)->read(p.topic, p.key);
  const double read_s = seconds_since(t0);
  bool ok = v && v->siblings.size() == 1 && v->siblings[0].value == p.value;
  r["rss_read_kib"] = std::to_string(proc_status_kib("VmRSS"));
  t0 = steady::now();
  const auto* clk = (*s)->clock(p.topic);
  const double state_s = seconds_since(t0);
  ok = ok && clk != nullptr && clk->base((*s)->self_id()) == p.topic_writes;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f", open_s * 1e3);
  r["open_ms"] = buf;
  std::snprintf(buf, sizeof buf, "%.6f", read_s * 1e3);
  r["read_ms"] = buf;
  std::snprintf(buf, sizeof buf, "%.6f", state_s * 1e3);
  r["state_ms"] = buf;
  r["rss_state_kib"] = std::to_string(proc_status_kib("VmRSS"));
  r["hwm_kib"] = std::to_string(proc_status_kib("VmHWM"));
  r["store_mem_bytes"] = std::to_string((*s)->memory_usage());
  r["ok"] = ok ? "1" : "0";
  return r;
}

int open_only_main(const std::string& dir, std::uint64_t seed, const probe& p) {
  const auto r = measure_open(dir, seed, p);
  for (const auto& [k, v] : r)
    std::cout << k << '=' << v << ' ';
  std::cout << std::endl;
  return r.at("ok") == "1" ? 0 : 1;
}

/// Runs measure_open in a fresh process (this program, exec'd again with
/// --open-only), so its RSS is that of an open store only.
std::optional<child_report> measure_open_in_child(const std::string& dir, std::uint64_t seed,
                                                  const probe& p) {
  int fds[2];
  if (::pipe(fds) != 0)
    return std::nullopt;
  std::vector<std::string> args = {"kith-bench-storage", "--open-only", dir,
                                   "--seed", std::to_string(seed),
                                   "--topic", to_hex(p.topic),
                                   "--key", to_hex(p.key),
                                   "--expect", to_hex(p.value),
                                   "--expect-writes", std::to_string(p.topic_writes)};
  std::vector<char*> argv;
  for (auto& s : args)
    argv.push_back(s.data());
  argv.push_back(nullptr);
  std::cout.flush();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return std::nullopt;
  }
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    ::execv("/proc/self/exe", argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  for (;;) {
    const auto n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0)
      break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) == 127)
    return std::nullopt;
  return parse_report(out);
}

double report_num(const child_report& r, const char* k) {
  auto i = r.find(k);
  return i == r.end() ? std::nan("") : std::strtod(i->second.c_str(), nullptr);
}

void run_open_1e6(const options& opt, const sizes& sz, const temp_root& root) {
  const std::size_t topics = sz.open_topics, per_topic = sz.open_keys_per_topic;
  const std::size_t keys = topics * per_topic;
  std::cerr << "open_1e6: building a RocksDB store of " << keys << " keys in " << topics
            << " open topics\n";
  const auto a = make_author(opt.seed, open_author);
  const std::string dir = root.sub("open");
  std::mt19937_64 rng{opt.seed ^ 0x6f70656eULL};
  const zipf tags(1000, zipf_s);

  // The probe read by the measuring process, and a sample checked here.
  const auto probe_topic = uniform(rng, 0, topics - 1);
  const auto probe_key = uniform(rng, 0, per_topic - 1);
  probe p;
  struct sample {
    std::string topic, key, value;
  };
  std::vector<sample> samples;

  storage::store_options o;
  o.sync = false;
  o.replica_nonce = a.nonce;
  auto s = must_open(store::open(dir, a.id, true, o), "open_1e6");
  if (!s)
    return;
  bool ok = true;
  const auto t0 = steady::now();
  std::uint64_t n = 0;
  for (std::size_t t = 0; t < topics && ok; ++t) {
    const auto desc = protocol::make_topic(a.id, protocol::topic_kind::open,
                                           "bench-topic-" + std::to_string(t), {}, t + 1);
    if (auto st = s->add_topic(desc); !st) {
      ok = check(false, "open_1e6: add_topic: " + st.err().message);
      break;
    }
    std::size_t written = 0;
    while (written < per_topic) {
      const std::size_t b = std::min<std::size_t>(1000, per_topic - written);
      std::vector<write_op> ops;
      ops.reserve(b);
      for (std::size_t j = 0; j < b; ++j) {
        ++n;
        ops.push_back({post_key(a.text, n), post_value(rng, tag_name(tags(rng))), {}});
        const std::size_t idx = written + j;
        if (t == probe_topic && idx == probe_key)
          p = {desc.id, ops.back().key, *ops.back().value, per_topic};
        if (n % 9973 == 0)
          samples.push_back({desc.id, ops.back().key, *ops.back().value});
      }
      auto w = s->write(desc.id, ops, time_base_ms + n);
      if (!w) {
        ok = check(false, "open_1e6: write: " + w.err().message);
        break;
      }
      written += b;
    }
    if ((t + 1) % 100 == 0)
      std::cerr << "  " << (t + 1) << " topics, " << n << " keys, " << seconds_since(t0)
                << " s\n";
  }
  const double build_s = seconds_since(t0);
  ok = ok && s->topics().size() == topics + 1; // the open topics and the feed
  s.reset();                                    // close
  const auto [bytes, files] = dir_size(dir);
  const auto [sst_bytes, sst_files] = dir_size(dir, ".sst");
  const auto wal_bytes = dir_size(dir, ".log").first; // replayed by the next open
  std::cerr << "  built in " << build_s << " s; " << bytes / (1 << 20) << " MiB in " << files
            << " files\n";

  // cold: the first open after the build, as after a node's shutdown: the
  // dir's pages dropped from the page cache, and the write-ahead log of
  // the last memtable still to replay. cold_again: the same with the log
  // already replayed by the first open. warm: right after, pages cached.
  for (const std::string mode : {"cold", "cold_again", "warm"}) {
    const auto [files_now, wal_now] =
      std::make_pair(dir_size(dir).second, dir_size(dir, ".log").first);
    const double resident = mode != "warm" ? drop_page_cache(dir) : 1.0;
    bool fresh = true;
    auto r = measure_open_in_child(dir, opt.seed, p);
    if (!r) {
      std::cerr << "  could not run a child process; measuring in this one\n";
      fresh = false;
      r = measure_open(dir, opt.seed, p);
    }
    const bool child_ok = r->count("ok") != 0 && r->at("ok") == "1";
    check(child_ok, "open_1e6 " + mode + ": the probe key did not read back");
    const double open_ms = report_num(*r, "open_ms");
    json_line j("open_1e6", opt.seed);
    j.str("mode", mode)
      .num("topics", topics)
      .num("keys", keys)
      .str("fs", fs_type(root.path()))
      .flag("fresh_process", fresh);
    if (mode != "warm")
      j.real("page_cache_resident_before", resident);
    j.num("dir_files_before", files_now).real("wal_mib_before", static_cast<double>(wal_now) / (1 << 20));
    j.real("open_ms", open_ms)
      .real("first_read_ms", report_num(*r, "read_ms"))
      .real("topic_state_ms", report_num(*r, "state_ms"))
      .real("open_plus_read_ms", open_ms + report_num(*r, "read_ms"))
      .real("rss_mib_start", mib(static_cast<std::uint64_t>(report_num(*r, "rss_start_kib"))))
      .real("rss_mib_after_open", mib(static_cast<std::uint64_t>(report_num(*r, "rss_open_kib"))))
      .real("rss_mib_after_read", mib(static_cast<std::uint64_t>(report_num(*r, "rss_read_kib"))))
      .real("rss_mib_after_state",
            mib(static_cast<std::uint64_t>(report_num(*r, "rss_state_kib"))))
      .real("peak_rss_mib", mib(static_cast<std::uint64_t>(report_num(*r, "hwm_kib"))))
      .real("store_memory_usage_mib", report_num(*r, "store_mem_bytes") / (1 << 20))
      .real("build_s", build_s)
      .real("build_writes_per_s", static_cast<double>(keys) / build_s)
      .real("dir_mib", static_cast<double>(bytes) / (1 << 20))
      .num("dir_files", files)
      .num("sst_files", sst_files)
      .real("sst_mib", static_cast<double>(sst_bytes) / (1 << 20))
      .real("wal_mib_after_build", static_cast<double>(wal_bytes) / (1 << 20))
      .flag("meets_1s", open_ms + report_num(*r, "read_ms") < 1000)
      .flag("verified", ok && child_ok)
      .print();
  }

  // A reopen here checks a sample of keys across the topics.
  auto again = must_open(store::open(dir, a.id, false, o), "open_1e6 reopen");
  bool sample_ok = again != nullptr;
  for (const auto& smp : samples) {
    if (!sample_ok)
      break;
    auto v = again->read(smp.topic, smp.key);
    sample_ok = v && v->siblings.size() == 1 && v->siblings[0].value == smp.value;
  }
  sample_ok = sample_ok && again->topics().size() == topics + 1;
  check(ok && sample_ok, "open_1e6: stored keys did not read back after a reopen");
  std::cerr << "  reopened here: " << samples.size() << " sampled keys "
            << (sample_ok ? "read back" : "DID NOT read back") << '\n';
  again.reset();
  std::error_code ec;
  fs::remove_all(dir, ec);
}

// --- tag_query -----------------------------------------------------------------------

/// A post as the index orders it: newest time first, then dot.
struct post_ref {
  std::uint64_t time_ms;
  causality::dot d;
  std::string key;
};

bool newer_first(const post_ref& x, const post_ref& y) {
  if (x.time_ms != y.time_ms)
    return x.time_ms > y.time_ms;
  if (x.d.id.value() != y.d.id.value())
    return x.d.id.value() < y.d.id.value();
  return x.d.n.value() < y.d.n.value();
}

bool has_tag(std::string_view json_value, const std::string& tag) {
  // The values are JSON strings without escapes: the text is inside the quotes.
  auto text = json_value;
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"')
    text = text.substr(1, text.size() - 2);
  const auto tags = storage::hashtags(text);
  return std::find(tags.begin(), tags.end(), tag) != tags.end();
}

void run_tag_query(const options& opt, const sizes& sz, const temp_root& root) {
  const std::size_t posts = sz.tag_posts;
  constexpr std::size_t per_call = 1000;
  constexpr std::size_t limit = 32;
  std::cerr << "tag_query: " << posts << " posts in the feed topic, " << sz.tag_count
            << " tags (Zipf s = " << zipf_s << ")\n";
  const auto a = make_author(opt.seed, 2000);
  const std::string dir = root.sub("tags");
  std::mt19937_64 rng{opt.seed ^ 0x74616773ULL};
  const zipf tags(sz.tag_count, zipf_s);

  storage::store_options o;
  o.sync = false;
  o.replica_nonce = a.nonce;
  auto s = must_open(store::open(dir, a.id, true, o), "tag_query");
  if (!s)
    return;
  const auto feed = s->feed_topic_id();
  std::vector<std::uint16_t> rank_of(posts); // the model: post i has dot n = i + 1
  auto time_of = [&](std::size_t i) { return time_base_ms + (i / per_call) * 1000; };
  bool ok = true;
  const auto t0 = steady::now();
  for (std::size_t i = 0; i < posts && ok; i += per_call) {
    std::vector<write_op> ops;
    const std::size_t b = std::min(per_call, posts - i);
    ops.reserve(b);
    for (std::size_t j = 0; j < b; ++j) {
      const auto r = tags(rng);
      rank_of[i + j] = static_cast<std::uint16_t>(r);
      ops.push_back({post_key(a.text, i + j + 1), post_value(rng, tag_name(r)), {}});
    }
    auto w = s->write(feed, ops, time_of(i));
    if (!w)
      ok = check(false, "tag_query: write: " + w.err().message);
    if ((i + b) % 200'000 == 0)
      std::cerr << "  " << (i + b) << " posts, " << seconds_since(t0) << " s\n";
  }
  const double build_s = seconds_since(t0);
  const auto self = s->self_id();
  std::cerr << "  written in " << build_s << " s\n";

  // The expected answer of a query, from the model.
  std::vector<std::vector<std::uint32_t>> posts_of(sz.tag_count + 1);
  for (std::size_t i = 0; i < posts; ++i)
    posts_of[rank_of[i]].push_back(static_cast<std::uint32_t>(i));
  auto expected = [&](std::size_t rank) {
    std::vector<post_ref> refs;
    if (rank == 0 || rank > sz.tag_count)
      return refs;
    for (auto i : posts_of[rank])
      refs.push_back({time_of(i), causality::dot{self, causality::counter{i + 1ULL}},
                      post_key(a.text, i + 1)});
    std::sort(refs.begin(), refs.end(), newer_first);
    if (refs.size() > limit)
      refs.resize(limit);
    return refs;
  };
  // A result is right when it is exactly the model's newest `limit` posts,
  // and each hit reads back with that time and carries the tag.
  auto verify_hits = [&](const std::vector<storage::index_hit>& hits, const std::string& tag,
                         const std::vector<post_ref>& want) {
    if (hits.size() != want.size())
      return false;
    for (std::size_t i = 0; i < hits.size(); ++i) {
      const auto& h = hits[i];
      if (h.topic != feed || h.key != want[i].key || !(h.d == want[i].d) ||
          h.time_ms != want[i].time_ms)
        return false;
      if (i > 0 && h.time_ms > hits[i - 1].time_ms)
        return false;
      auto v = s->read(feed, h.key);
      if (!v || v->siblings.size() != 1 || v->siblings[0].time_ms != h.time_ms ||
          !has_tag(v->siblings[0].value, tag))
        return false;
    }
    return true;
  };

  // Popular to rare, and a tag nobody used.
  std::vector<std::size_t> ranks = {1, 2, 10, 100, sz.tag_count / 2, sz.tag_count, 0};
  std::map<std::size_t, double> index_median_us;
  std::map<std::size_t, std::vector<storage::index_hit>> index_result;
  for (auto rank : ranks) {
    const std::string tag = rank == 0 ? "nosuchtag" : tag_name(rank);
    const auto want = expected(rank);
    std::vector<double> times;
    std::vector<storage::index_hit> first_hits, last_hits;
    double first_us = 0;
    bool qok = true;
    // Query 0 is the first of this tag (reported apart); 1..n are timed.
    for (int q = 0; q <= sz.tag_queries; ++q) {
      const auto tq = steady::now();
      auto hits = s->by_tag(tag, limit);
      const double dt = seconds_since(tq);
      if (!hits) {
        qok = check(false, "tag_query: by_tag: " + hits.err().message);
        break;
      }
      if (q == 0) {
        first_us = dt * 1e6;
        first_hits = std::move(*hits);
      } else {
        times.push_back(dt);
        if (q == sz.tag_queries)
          last_hits = std::move(*hits);
      }
    }
    qok = qok && verify_hits(first_hits, tag, want) && verify_hits(last_hits, tag, want);
    check(qok, "tag_query: by_tag(" + tag + ") is not the newest posts with the tag");
    index_median_us[rank] = median(times) * 1e6;
    index_result[rank] = first_hits;
    json_line("tag_query", opt.seed)
      .str("method", "by_tag")
      .str("tag", tag)
      .num("rank", rank)
      .num("posts", posts)
      .num("tags", sz.tag_count)
      .real("zipf_s", zipf_s)
      .num("posts_with_tag", rank == 0 ? 0 : posts_of[rank].size())
      .num("limit", limit)
      .num("hits", first_hits.size())
      .num("queries", times.size())
      .real("first_query_us", first_us)
      .real("median_us", median(times) * 1e6)
      .real("p99_us", quantile(times, 0.99) * 1e6)
      .real("max_us", quantile(times, 1.0) * 1e6)
      .flag("meets_5ms", quantile(times, 0.99) < 5e-3)
      .flag("verified", qok)
      .print();
  }

  // by_author over the same store: the newest posts of the author.
  {
    std::vector<post_ref> want;
    // The newest posts are in the last write calls (one time per call):
    // the last two calls' posts hold every candidate.
    for (std::size_t i = posts; i-- > 0 && want.size() < 2 * per_call;)
      want.push_back({time_of(i), causality::dot{self, causality::counter{i + 1ULL}},
                      post_key(a.text, i + 1)});
    std::sort(want.begin(), want.end(), newer_first);
    want.resize(std::min(want.size(), limit));
    std::vector<double> times;
    bool qok = true;
    std::vector<storage::index_hit> last;
    for (int q = 0; q < sz.tag_queries; ++q) {
      const auto tq = steady::now();
      auto hits = s->by_author(a.id.pub(), limit);
      times.push_back(seconds_since(tq));
      if (!hits) {
        qok = check(false, "tag_query: by_author: " + hits.err().message);
        break;
      }
      last = std::move(*hits);
    }
    qok = qok && last.size() == want.size();
    for (std::size_t i = 0; qok && i < last.size(); ++i)
      qok = last[i].key == want[i].key && last[i].d == want[i].d;
    check(qok, "tag_query: by_author is not the author's newest posts");
    json_line("tag_query", opt.seed)
      .str("method", "by_author")
      .num("posts", posts)
      .num("limit", limit)
      .num("hits", last.size())
      .num("queries", times.size())
      .real("median_us", median(times) * 1e6)
      .real("p99_us", quantile(times, 0.99) * 1e6)
      .flag("verified", qok)
      .print();
  }

  // Baseline: no index, a scan of every stored post filtering by tag.
  for (auto rank : {std::size_t{1}, sz.tag_count}) {
    const std::string tag = tag_name(rank);
    std::vector<double> times;
    std::vector<post_ref> found;
    std::size_t scanned = 0;
    bool sok = true;
    for (int rep = 0; rep < sz.scan_reps; ++rep) {
      const auto ts = steady::now();
      auto all = s->read_prefix(feed, a.text + "/statuses/");
      if (!all) {
        sok = check(false, "tag_query: read_prefix: " + all.err().message);
        break;
      }
      found.clear();
      for (const auto& [k, view] : *all)
        for (const auto& sib : view.siblings)
          if (has_tag(sib.value, tag))
            found.push_back({sib.time_ms, sib.d, k});
      const auto keep = std::min(found.size(), limit);
      std::partial_sort(found.begin(), found.begin() + static_cast<std::ptrdiff_t>(keep),
                        found.end(), newer_first);
      found.resize(keep);
      times.push_back(seconds_since(ts));
      scanned = all->size();
    }
    const auto& via_index = index_result[rank];
    sok = sok && scanned == posts && found.size() == via_index.size();
    for (std::size_t i = 0; sok && i < found.size(); ++i)
      sok = found[i].key == via_index[i].key && found[i].d == via_index[i].d;
    check(sok, "tag_query: the full scan and the index disagree for " + tag);
    const double scan_ms = median(times) * 1e3; // the first scan is reported apart too
    json_line("tag_query", opt.seed)
      .str("method", "full_scan")
      .str("tag", tag)
      .num("rank", rank)
      .num("posts", posts)
      .num("posts_scanned", scanned)
      .num("limit", limit)
      .num("hits", found.size())
      .num("reps", times.size())
      .real("scan_ms", scan_ms)
      .real("scan_ms_first", times.empty() ? std::nan("") : times.front() * 1e3)
      .real("index_median_us", index_median_us[rank])
      .real("scan_vs_index", scan_ms * 1e3 / index_median_us[rank])
      .flag("verified", sok)
      .print();
  }
  const auto [bytes, files] = dir_size(dir);
  std::cerr << "  store: " << bytes / (1 << 20) << " MiB in " << files << " files; built at "
            << static_cast<double>(posts) / build_s << " posts/s\n";
  s.reset();
  std::error_code ec;
  fs::remove_all(dir, ec);
}

// --- main ------------------------------------------------------------------------------

struct bench_case {
  const char* name;
  void (*run)(const options&, const sizes&, const temp_root&);
  const char* what;
};

const bench_case cases[] = {
  {"signed_writes", run_signed_writes,
   "store::write throughput, batch 1/64/1024, memory kv and RocksDB with/without fsync"},
  {"open_1e6", run_open_1e6, "cold open + first read of a 1e6-key, 1e3-topic RocksDB store"},
  {"tag_query", run_tag_query, "by_tag(tag, 32) over 1e6 posts vs a full scan"},
};

void usage(std::ostream& os) {
  os << "usage: kith-bench-storage [--quick] [--seed N] [--case NAME]\n"
        "  --quick      small sizes, a smoke run of a few seconds\n"
        "  --seed N     seed of every generator (default "
     << default_seed
     << ")\n"
        "  --case NAME  run one case:\n";
  for (const auto& c : cases)
    os << "                 " << c.name << "  " << c.what << '\n';
}

using kith::bench::parse_u64;

} // namespace

int main(int argc, char** argv) {
  options opt;
  std::optional<std::string> open_only;
  probe p;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--quick") {
      opt.quick = true;
    } else if (a == "--seed" && has_value) {
      if (!parse_u64(argv[++i], opt.seed)) {
        std::cerr << "--seed needs a decimal number\n";
        return 2;
      }
    } else if (a == "--case" && has_value) {
      opt.only = argv[++i];
    } else if (a == "--help" || a == "-h") {
      usage(std::cout);
      return 0;
    } else if (a == "--open-only" && has_value) { // hidden: the open_1e6 child
      open_only = argv[++i];
    } else if ((a == "--topic" || a == "--key" || a == "--expect") && has_value) {
      auto v = from_hex(argv[++i]);
      if (!v) {
        std::cerr << a << " needs hex\n";
        return 2;
      }
      (a == "--topic" ? p.topic : a == "--key" ? p.key : p.value) = *v;
    } else if (a == "--expect-writes" && has_value) {
      if (!parse_u64(argv[++i], p.topic_writes)) {
        std::cerr << a << " needs a decimal number\n";
        return 2;
      }
    } else {
      std::cerr << "unknown argument: " << a << '\n';
      usage(std::cerr);
      return 2;
    }
  }
  if (open_only)
    return open_only_main(*open_only, opt.seed, p);

  bool found = opt.only.empty();
  for (const auto& c : cases)
    found = found || opt.only == c.name;
  if (!found) {
    std::cerr << "unknown case: " << opt.only << '\n';
    usage(std::cerr);
    return 2;
  }

  const sizes sz = sizes_for(opt.quick);
  std::cerr << "kith-bench-storage: seed " << opt.seed << (opt.quick ? ", quick sizes" : "")
            << '\n';
  const auto t0 = steady::now();
  {
    temp_root root;
    for (const auto& c : cases) {
      if (!opt.only.empty() && opt.only != c.name)
        continue;
      try {
        c.run(opt, sz, root);
      } catch (const std::exception& e) {
        check(false, std::string(c.name) + ": threw " + e.what());
      }
    }
  }
  std::cerr << "done in " << seconds_since(t0) << " s"
            << (any_failure ? "; SOME VERIFICATION FAILED" : "; all verified") << '\n';
  return any_failure ? 1 : 0;
}
