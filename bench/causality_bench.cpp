// The causality benchmark: clock algebra at a million dots, container merges,
// and one anti-entropy round between two replicas holding a million keys,
// NDC against the per-key DVV baseline with Merkle anti-entropy.
//
// Prints one JSON object per line on stdout, one per measured configuration;
// progress and explanations go to stderr. docs/benchmarks.md explains every
// case and every field. All randomness comes from one std::mt19937_64 per
// case seeded from --seed, so a run is reproducible on a given build.
//
//   kith-bench-causality [--quick] [--seed N] [--case NAME] [--no-warmup]
//
// Exit status: 0, or 1 when a verification failed (a case that did not
// compute the right answer or did not converge), or 2 on bad arguments.

#include "support/json_line.hpp"
#include "support/median.hpp"
#include "kith/causality/codec.hpp"
#include "kith/causality/container.hpp"
#include "kith/causality/node_clock.hpp"
#include "kith/causality/scheme.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

namespace {

using namespace kith::causality;
using steady = std::chrono::steady_clock;

constexpr std::uint64_t default_seed = 20261122;

// --- command line -------------------------------------------------------------

struct options {
  bool quick = false;
  std::uint64_t seed = default_seed;
  std::string only; // empty: every case
  bool warmup = true; // ae_round: periodic in-sync pulls during the setup
};

/// The sizes of one run; --quick shrinks them for a smoke test.
struct sizes {
  std::uint64_t clock_dots;            // dots per clock (entry or node clock)
  int clock_reps;                      // repetitions, median reported
  std::size_t container_pairs;         // distinct pairs in the pool
  std::uint64_t container_calls;       // timed sync calls
  std::size_t ae_keys;                 // n
  std::vector<std::size_t> ae_missing; // the values of d
};

sizes sizes_for(bool quick) {
  if (quick)
    return {100'000, 5, 4096, 200'000, 50'000, {10, 1000, 5000}};
  return {1'000'000, 15, 1u << 14, 4'000'000, 1'000'000, {10, 1000, 100'000}};
}

// --- output ------------------------------------------------------------------

using kith::bench::json_line;
using kith::bench::median;

/// Set when any verification fails; main() turns it into exit status 1.
bool any_failure = false;

void check(bool ok, const std::string& what) {
  if (!ok) {
    any_failure = true;
    std::cerr << "VERIFICATION FAILED: " << what << '\n';
  }
}

// --- timing ------------------------------------------------------------------

double seconds_since(steady::time_point t0) {
  return std::chrono::duration<double>(steady::now() - t0).count();
}

/// Runs prepare() untimed and then body() timed, reps times; the median in
/// seconds. prepare() is where copies of inputs that body() mutates are made.
template <class Prepare, class Body>
double median_time(int reps, Prepare prepare, Body body) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    prepare();
    const auto t0 = steady::now();
    body();
    t.push_back(seconds_since(t0));
  }
  return median(std::move(t));
}

/// Keeps a computed value alive so the optimiser cannot drop the work.
volatile std::uint64_t sink = 0;

/// Peak resident set size of the process so far, in MiB (0 if unknown).
std::uint64_t peak_rss_mib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0)
      return std::strtoull(line.c_str() + 6, nullptr, 10) / 1024;
  return 0;
}

// --- clocks with scattered gaps ------------------------------------------------

constexpr double p_present = 0.99;

/// ae_round: keys written between two in-sync pulls during the setup.
constexpr std::size_t setup_pull_every = 1'000;

/// A clock entry: counters 1..base, then `span` counters above it each
/// present with probability p_present (normalise() may fold a leading run
/// into the base).
clock_entry gappy_entry(std::mt19937_64& rng, std::uint64_t base, std::uint64_t span) {
  std::vector<std::uint64_t> words(static_cast<std::size_t>((span + 63) / 64), 0);
  std::bernoulli_distribution present(p_present);
  for (std::uint64_t i = 0; i < span; ++i)
    if (present(rng))
      words[i / 64] |= std::uint64_t{1} << (i % 64);
  return clock_entry{base, std::move(words)};
}

/// Span of bitmap that, with the base, gives about `dots` dots.
std::uint64_t span_for(std::uint64_t dots, std::uint64_t base) {
  return static_cast<std::uint64_t>(static_cast<double>(dots - base) / p_present);
}

/// The two inputs of the clock cases, as entries and as 4-id node clocks.
struct clock_inputs {
  clock_entry ea, eb;
  node_clock ca, cb;
  static constexpr std::uint64_t ids = 4;
};

clock_inputs make_clock_inputs(std::uint64_t seed, std::uint64_t dots) {
  std::mt19937_64 rng{seed};
  clock_inputs in;
  // Bases differ by an amount that is not a multiple of 64, so the join
  // must shift b's bitmap across word boundaries.
  const std::uint64_t base = 1000;
  in.ea = gappy_entry(rng, base, span_for(dots, base));
  in.eb = gappy_entry(rng, base + 37, span_for(dots, base + 37));
  const std::uint64_t per_id = dots / clock_inputs::ids;
  for (std::uint64_t id = 1; id <= clock_inputs::ids; ++id) {
    const std::uint64_t b = 100 * id;
    in.ca.join_entry(replica_id{id}, gappy_entry(rng, b, span_for(per_id, b)));
    in.cb.join_entry(replica_id{id}, gappy_entry(rng, b + 13 * id, span_for(per_id, b + 13 * id)));
  }
  return in;
}

/// Naive reference: |a ∪ b| and |a \ b| from the explicit counter lists.
std::pair<std::uint64_t, std::uint64_t> union_and_difference(const clock_entry& a,
                                                             const clock_entry& b) {
  const auto va = a.values();
  const auto vb = b.values();
  std::vector<std::uint64_t> u, d;
  std::set_union(va.begin(), va.end(), vb.begin(), vb.end(), std::back_inserter(u));
  std::set_difference(va.begin(), va.end(), vb.begin(), vb.end(), std::back_inserter(d));
  return {u.size(), d.size()};
}

std::pair<std::uint64_t, std::uint64_t> union_and_difference(const node_clock& a,
                                                             const node_clock& b) {
  static const clock_entry none;
  std::uint64_t u = 0, d = 0;
  for (const auto& [id, e] : a.entries()) {
    const auto* o = b.find(id);
    const auto [uu, dd] = union_and_difference(e, o != nullptr ? *o : none);
    u += uu;
    d += dd;
  }
  for (const auto& [id, e] : b.entries())
    if (a.find(id) == nullptr)
      u += e.count();
  return {u, d};
}

std::uint64_t bitmap_words(const clock_entry& e) { return e.bits().size(); }
std::uint64_t bitmap_words(const node_clock& c) {
  std::uint64_t w = 0;
  for (const auto& [id, e] : c.entries())
    w += e.bits().size();
  return w;
}
std::uint64_t dots_of(const clock_entry& e) { return e.count(); }
std::uint64_t dots_of(const node_clock& c) { return c.dot_count(); }
void join_into(clock_entry& x, const clock_entry& y) { x.join(y); }
void join_into(node_clock& x, const node_clock& y) { x.merge(y); }
bool is_normal(const clock_entry& e) { return e.normalised(); }
bool is_normal(const node_clock& c) { return c.check_invariant(); }

template <class Clock>
void clock_join_line(const options& opt, const sizes& sz, const char* shape, std::uint64_t ids,
                     const Clock& a, const Clock& b) {
  Clock x;
  const double t_ab = median_time(sz.clock_reps, [&] { x = a; }, [&] { join_into(x, b); });
  const Clock joined = x;
  const double t_ba = median_time(sz.clock_reps, [&] { x = b; }, [&] { join_into(x, a); });
  const Clock joined_ba = x;

  std::size_t enc = 0;
  const double t_enc = median_time(sz.clock_reps, [] {}, [&] { enc = encoded_size(a); });
  writer w;
  encode(w, a);
  const std::string bytes = w.take();
  Clock decoded;
  bool decoded_ok = false;
  const double t_dec =
    median_time(sz.clock_reps, [] {}, [&] { decoded_ok = decode_all(bytes, decoded); });

  const auto expect_union = union_and_difference(a, b).first;
  const bool ok = joined == joined_ba && is_normal(joined) && dots_of(joined) == expect_union &&
                  decoded_ok && decoded == a;
  check(ok, std::string("clock_join ") + shape);

  const auto dots = dots_of(a) + dots_of(b);
  json_line("clock_join", opt.seed)
    .str("shape", shape)
    .num("ids", ids)
    .real("p_present", p_present)
    .num("reps", static_cast<std::uint64_t>(sz.clock_reps))
    .num("dots_a", dots_of(a))
    .num("dots_b", dots_of(b))
    .num("dots_joined", dots_of(joined))
    .num("bitmap_words_a", bitmap_words(a))
    .real("join_ab_us", t_ab * 1e6)
    .real("join_ba_us", t_ba * 1e6)
    .real("dots_per_s", static_cast<double>(dots) / t_ab)
    .num("encoded_bytes_a", encoded_size(a))
    .num("encoded_bytes_b", encoded_size(b))
    .num("encoded_bytes_joined", encoded_size(joined))
    .num("raw_bitmap_bytes_a", bitmap_words(a) * 8)
    .real("encode_us_a", t_enc * 1e6)
    .real("decode_us_a", t_dec * 1e6)
    .flag("verified", ok)
    .print();
  sink = sink + enc;
}

template <class Clock>
void missing_dots_line(const options& opt, const sizes& sz, const char* shape, std::uint64_t ids,
                       const Clock& a, const Clock& b) {
  std::size_t n_ab = 0, n_ba = 0;
  const double t_ab =
    median_time(sz.clock_reps, [] {}, [&] { n_ab = a.missing_from(b).size(); });
  const double t_ba =
    median_time(sz.clock_reps, [] {}, [&] { n_ba = b.missing_from(a).size(); });
  const auto d_ab = union_and_difference(a, b).second;
  const auto d_ba = union_and_difference(b, a).second;
  const bool ok = n_ab == d_ab && n_ba == d_ba;
  check(ok, std::string("missing_dots ") + shape);
  json_line("missing_dots", opt.seed)
    .str("shape", shape)
    .num("ids", ids)
    .real("p_present", p_present)
    .num("reps", static_cast<std::uint64_t>(sz.clock_reps))
    .num("dots_a", dots_of(a))
    .num("dots_b", dots_of(b))
    .real("missing_ab_us", t_ab * 1e6)
    .num("missing_ab", n_ab)
    .real("missing_ba_us", t_ba * 1e6)
    .num("missing_ba", n_ba)
    .real("dots_scanned_per_s", static_cast<double>(dots_of(a)) / t_ab)
    .flag("verified", ok)
    .print();
}

void run_clock_join(const options& opt, const sizes& sz) {
  std::cerr << "clock_join: building two entries and two 4-id clocks of ~" << sz.clock_dots
            << " dots each\n";
  const auto in = make_clock_inputs(opt.seed, sz.clock_dots);
  clock_join_line(opt, sz, "entry", 1, in.ea, in.eb);
  clock_join_line(opt, sz, "node_clock", clock_inputs::ids, in.ca, in.cb);
}

void run_missing_dots(const options& opt, const sizes& sz) {
  std::cerr << "missing_dots: same inputs as clock_join\n";
  const auto in = make_clock_inputs(opt.seed, sz.clock_dots);
  missing_dots_line(opt, sz, "entry", 1, in.ea, in.eb);
  missing_dots_line(opt, sz, "node_clock", clock_inputs::ids, in.ca, in.cb);
}

// --- containers ----------------------------------------------------------------

constexpr std::uint64_t group_ids = 8;    // replica ids a context may name
constexpr std::size_t value_bytes = 64;

std::string random_value(std::mt19937_64& rng, std::size_t n = value_bytes) {
  static constexpr char alphabet[] =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::uniform_int_distribution<std::size_t> pick(0, sizeof alphabet - 2);
  std::string s(n, ' ');
  for (auto& c : s)
    c = alphabet[pick(rng)];
  return s;
}

std::uint64_t uniform(std::mt19937_64& rng, std::uint64_t lo, std::uint64_t hi) {
  return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng);
}

/// A filled container: a context of 1-4 ids and 1-3 siblings whose dots it
/// covers.
container random_filled(std::mt19937_64& rng) {
  std::vector<std::uint64_t> ids;
  for (std::uint64_t i = 1; i <= group_ids; ++i)
    ids.push_back(i);
  std::shuffle(ids.begin(), ids.end(), rng);
  ids.resize(static_cast<std::size_t>(uniform(rng, 1, 4)));
  version_vector ctx;
  for (auto id : ids)
    ctx.raise(replica_id{id}, uniform(rng, 1, 1000));
  container c;
  const auto siblings = uniform(rng, 1, 3);
  for (std::uint64_t s = 0; s < siblings; ++s) {
    const auto id = ids[static_cast<std::size_t>(uniform(rng, 0, ids.size() - 1))];
    const dot d{replica_id{id}, counter{uniform(rng, 1, ctx.get(replica_id{id}))}};
    c.add(d, sibling::value(random_value(rng)));
  }
  c.context().join(ctx);
  return c;
}

/// The partner of `a` in a sync: an equal copy (replicas that agree, the
/// common case), a later write that read `a`, or an unrelated concurrent
/// state, in equal shares.
container partner_of(const container& a, std::mt19937_64& rng) {
  switch (uniform(rng, 0, 2)) {
    case 0:
      return a;
    case 1: {
      container b = a;
      b.discard(a.read_context());
      const replica_id id{uniform(rng, 1, group_ids)};
      b.add(dot{id, counter{b.context().get(id) + 1}}, sibling::value(random_value(rng)));
      return b;
    }
    default:
      return random_filled(rng);
  }
}

void run_container_sync(const options& opt, const sizes& sz) {
  std::cerr << "container_sync: " << sz.container_pairs << " container pairs, "
            << sz.container_calls << " timed sync calls\n";
  std::mt19937_64 rng{opt.seed};
  std::vector<container> as, bs;
  as.reserve(sz.container_pairs);
  bs.reserve(sz.container_pairs);
  for (std::size_t i = 0; i < sz.container_pairs; ++i) {
    as.push_back(random_filled(rng));
    bs.push_back(partner_of(as.back(), rng));
  }

  // Laws on the pool (untimed): commutative and idempotent.
  bool ok = true;
  for (std::size_t i = 0; i < sz.container_pairs && ok; ++i)
    ok = container::sync(as[i], bs[i]) == container::sync(bs[i], as[i]) &&
         container::sync(as[i], as[i]) == as[i];

  std::uint64_t kept = 0;
  const auto t0 = steady::now();
  for (std::uint64_t n = 0; n < sz.container_calls; ++n) {
    const auto i = static_cast<std::size_t>(n % sz.container_pairs);
    kept += container::sync(as[i], bs[i]).dots().size();
  }
  const double t_sync = seconds_since(t0);
  sink = sink + kept;

  // fill + strip against a node clock of every id, on stored (stripped)
  // containers; both mutate in place and the pair is idempotent, so the
  // same pool is reused.
  node_clock clock;
  for (std::uint64_t id = 1; id <= group_ids; ++id)
    clock.join_entry(replica_id{id}, clock_entry{uniform(rng, 400, 600), {}});
  std::vector<container> stored = as;
  for (auto& c : stored)
    c.strip(clock);
  std::uint64_t ctx_entries = 0;
  const auto t1 = steady::now();
  for (std::uint64_t n = 0; n < sz.container_calls; ++n) {
    auto& c = stored[static_cast<std::size_t>(n % stored.size())];
    c.fill(clock);
    c.strip(clock);
    ctx_entries += c.context().size();
  }
  const double t_fill_strip = seconds_since(t1);
  sink = sink + ctx_entries;
  for (const auto& c : stored)
    for (const auto& [id, n] : c.context().entries())
      ok = ok && n > clock.base(id);

  check(ok, "container_sync");
  const double calls = static_cast<double>(sz.container_calls);
  json_line("container_sync", opt.seed)
    .num("pairs", sz.container_pairs)
    .num("calls", sz.container_calls)
    .str("siblings", "1-3")
    .str("context_ids", "1-4")
    .num("value_bytes", value_bytes)
    .str("partner_mix", "1/3 equal, 1/3 later write, 1/3 concurrent")
    .num("clock_ids", group_ids)
    .real("sync_per_s", calls / t_sync)
    .real("sync_ns", t_sync / calls * 1e9)
    .real("fill_strip_per_s", calls / t_fill_strip)
    .real("fill_strip_ns", t_fill_strip / calls * 1e9)
    .flag("verified", ok)
    .print();
}

// --- anti-entropy round ----------------------------------------------------------

/// The workload every scheme runs: n keys with their first values, and per
/// d the keys updated at A and their new values.
struct ae_data {
  std::vector<std::string> keys;
  std::vector<std::string> values;
  struct updates {
    std::vector<std::size_t> index; // distinct key indices
    std::vector<std::string> values;
    std::uint64_t raw_bytes = 0;    // key bytes + value bytes
  };
  std::vector<updates> per_d;
};

std::string key_name(std::size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "k%07zu", i);
  return buf;
}

ae_data make_ae_data(std::uint64_t seed, std::size_t n, const std::vector<std::size_t>& ds) {
  std::mt19937_64 rng{seed};
  ae_data data;
  data.keys.reserve(n);
  data.values.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    data.keys.push_back(key_name(i));
    data.values.push_back(random_value(rng));
  }
  for (auto d : ds) {
    ae_data::updates u;
    std::unordered_set<std::size_t> chosen;
    std::uniform_int_distribution<std::size_t> pick(0, n - 1);
    while (u.index.size() < d) {
      const auto i = pick(rng);
      if (chosen.insert(i).second)
        u.index.push_back(i);
    }
    for (auto i : u.index) {
      u.values.push_back(random_value(rng));
      u.raw_bytes += data.keys[i].size() + u.values.back().size();
    }
    data.per_d.push_back(std::move(u));
  }
  return data;
}

struct pull_summary {
  std::uint64_t bytes = 0;
  std::uint64_t messages = 0;
  double seconds = 0;
};

struct ae_result {
  std::string label;
  scheme_kind kind = scheme_kind::ndc;
  std::size_t leaves = 0, fanout = 0;
  std::uint64_t bytes = 0;
  std::uint64_t bytes_b_to_a = 0, bytes_a_to_b = 0;
  byte_split split;
  std::uint64_t messages = 0;
  double round_s = 0, at_a_s = 0, at_b_s = 0, setup_s = 0, update_s = 0;
  std::optional<std::uint64_t> clock_a_bytes, clock_b_bytes, watermark_bytes;
  std::uint64_t setup_pulls = 0;
  std::optional<pull_summary> insync; // the last in-sync pull of the setup
  bool verified = false;
  scheme_stats stats_a, stats_b;
};

/// NDC messages are one type byte followed by the codec encoding of a
/// sync_request or sync_reply; decoding them gives the clocks that crossed.
void measure_ndc_clocks(const std::vector<message>& log, ae_result& r) {
  for (const auto& m : log) {
    if (m.bytes.empty())
      continue;
    const auto body = std::string_view{m.bytes}.substr(1);
    sync_request q;
    sync_reply p;
    if (!r.clock_b_bytes && decode_all(body, q))
      r.clock_b_bytes = encoded_size(q.clock);
    else if (!r.clock_a_bytes && decode_all(body, p)) {
      r.clock_a_bytes = encoded_size(p.changes.clock);
      r.watermark_bytes = encoded_size(p.marks);
    }
  }
}

/// One pull session, B pulling from A, with its cost.
struct pull_cost {
  std::vector<message> log; // in order: B->A, A->B, ...
  std::uint64_t bytes_b_to_a = 0, bytes_a_to_b = 0;
  byte_split split;
  double seconds = 0, at_a_s = 0, at_b_s = 0;
  [[nodiscard]] std::uint64_t bytes() const { return bytes_a_to_b + bytes_b_to_a; }
};

pull_cost pull(replica_scheme& b, replica_scheme& a) {
  pull_cost c;
  const auto start = steady::now();
  auto t = steady::now();
  message m = b.sync_start();
  c.at_b_s += seconds_since(t);
  for (;;) {
    c.bytes_b_to_a += m.bytes.size();
    c.split += m.split;
    t = steady::now();
    auto reply = a.sync_step(m);
    c.at_a_s += seconds_since(t);
    c.log.push_back(std::move(m));
    if (!reply)
      break;
    c.bytes_a_to_b += reply->bytes.size();
    c.split += reply->split;
    t = steady::now();
    auto next = b.sync_step(*reply);
    c.at_b_s += seconds_since(t);
    c.log.push_back(std::move(*reply));
    if (!next)
      break;
    m = std::move(*next);
  }
  c.seconds = seconds_since(start);
  return c;
}

ae_result run_ae(const ae_data& data, std::size_t which_d, scheme_kind kind,
                 const scheme_options& so, const std::string& label, bool warmup) {
  ae_result r;
  r.label = label;
  r.kind = kind;
  r.leaves = so.merkle_leaves;
  r.fanout = so.merkle_fanout;
  const replica_id ia{1}, ib{2};
  auto a = make_scheme(kind, ia, so);
  auto b = make_scheme(kind, ib, so);
  a->set_members({ia, ib});
  b->set_members({ia, ib});

  // Setup: every key written at A and pushed to B. Unless --no-warmup, B
  // also pulls from A every setup_pull_every keys and once at the end, as
  // a live group runs anti-entropy periodically: NDC prunes its dot-key
  // maps a slice at a time and the Merkle trees refresh their inner hashes,
  // so the measured round starts from a steady state and pays only for d.
  // (Without it the round also pays the deferred work of the bulk load:
  // pruning a million dot-key entries, rehashing every dirty leaf path,
  // and the allocator's slow path on the first allocations after a million
  // frees.)
  auto t0 = steady::now();
  bool delivered = true;
  bool insync_clean = true;
  const auto in_sync_pull = [&] {
    const auto w = pull(*b, *a);
    ++r.setup_pulls;
    insync_clean = insync_clean && w.split.data == 0;
    return w;
  };
  for (std::size_t i = 0; i < data.keys.size(); ++i) {
    delivered = b->deliver(a->write(data.keys[i], data.values[i], std::string{})) && delivered;
    if (warmup && (i + 1) % setup_pull_every == 0 && i + 1 < data.keys.size())
      (void)in_sync_pull();
    if ((i + 1) % 250'000 == 0)
      std::cerr << "  " << label << ": " << (i + 1) << " keys written and pushed\n";
  }
  if (warmup) {
    const auto w = in_sync_pull();
    r.insync = pull_summary{w.bytes(), w.log.size(), w.seconds};
  }
  r.setup_s = seconds_since(t0);
  check(delivered, label + ": a push was rejected during setup");
  check(insync_clean, label + ": a pull between replicas in sync shipped data");

  // d updates at A whose pushes are lost.
  const auto& up = data.per_d[which_d];
  t0 = steady::now();
  for (std::size_t j = 0; j < up.index.size(); ++j) {
    const auto& k = data.keys[up.index[j]];
    const auto ctx = a->read(k).context;
    (void)a->write(k, up.values[j], ctx);
  }
  r.update_s = seconds_since(t0);

  // The round: B pulls from A.
  auto round = pull(*b, *a);
  r.round_s = round.seconds;
  r.at_a_s = round.at_a_s;
  r.at_b_s = round.at_b_s;
  r.bytes_b_to_a = round.bytes_b_to_a;
  r.bytes_a_to_b = round.bytes_a_to_b;
  r.split = round.split;
  r.messages = round.log.size();
  r.bytes = r.bytes_a_to_b + r.bytes_b_to_a;
  const auto& log = round.log;
  check(r.split.total() == r.bytes, label + ": message splits do not add up to the bytes");
  if (kind == scheme_kind::ndc)
    measure_ndc_clocks(log, r);

  // Convergence: the d updated keys read the same at B as at A (the new
  // value, alone), and so does a sample of untouched keys.
  bool ok = true;
  for (std::size_t j = 0; j < up.index.size(); ++j) {
    const auto& k = data.keys[up.index[j]];
    const auto va = a->read(k).values;
    ok = ok && va == b->read(k).values && va == std::vector<std::string>{up.values[j]};
  }
  const std::size_t step = std::max<std::size_t>(1, data.keys.size() / 1000);
  for (std::size_t i = 0; i < data.keys.size(); i += step)
    ok = ok && a->read(data.keys[i]).values == b->read(data.keys[i]).values;
  r.stats_a = a->stats();
  r.stats_b = b->stats();
  ok = ok && r.stats_a.keys == data.keys.size() && r.stats_b.keys == data.keys.size();
  r.verified = ok;
  check(ok, label + ": B did not converge with A on the updated keys");
  std::cerr << "  " << label << ": setup " << r.setup_s << " s, round " << r.round_s * 1e3
            << " ms, " << r.bytes << " bytes in " << r.messages << " messages\n";
  return r;
}

void print_ae(const options& opt, std::size_t n, std::size_t d, std::uint64_t raw,
              const ae_result& r, const ae_result* ndc) {
  json_line j("ae_round", opt.seed);
  j.str("scheme", r.label)
    .num("n", n)
    .num("d", d)
    .num("value_bytes", value_bytes);
  if (r.kind != scheme_kind::ndc)
    j.num("merkle_leaves", r.leaves).num("merkle_fanout", r.fanout);
  j.num("bytes", r.bytes)
    .num("data_bytes", r.split.data)
    .num("key_meta_bytes", r.split.key_meta)
    .num("sync_meta_bytes", r.split.sync_meta)
    .num("bytes_b_to_a", r.bytes_b_to_a)
    .num("bytes_a_to_b", r.bytes_a_to_b)
    .num("messages", r.messages)
    .num("round_trips", (r.messages + 1) / 2)
    .real("round_ms", r.round_s * 1e3)
    .real("at_a_ms", r.at_a_s * 1e3)
    .real("at_b_ms", r.at_b_s * 1e3)
    .num("raw_bytes", raw);
  if (r.kind == scheme_kind::ndc) {
    if (r.clock_a_bytes && r.clock_b_bytes) {
      const auto clocks = *r.clock_a_bytes + *r.clock_b_bytes;
      const double ratio = static_cast<double>(r.bytes) / static_cast<double>(raw + clocks);
      j.num("clock_a_bytes", *r.clock_a_bytes)
        .num("clock_b_bytes", *r.clock_b_bytes)
        .num("watermark_bytes", r.watermark_bytes.value_or(0))
        .real("ratio_vs_raw_plus_clocks", ratio)
        .flag("meets_1_5x", ratio <= 1.5);
    } else {
      j.null("clock_a_bytes").null("clock_b_bytes");
    }
  } else if (ndc != nullptr) {
    j.real("bytes_vs_ndc", static_cast<double>(r.bytes) / static_cast<double>(ndc->bytes));
  }
  j.num("setup_pulls", r.setup_pulls);
  if (r.insync)
    j.flag("warmup", true)
      .num("insync_bytes", r.insync->bytes)
      .num("insync_messages", r.insync->messages)
      .real("insync_ms", r.insync->seconds * 1e3);
  else
    j.flag("warmup", false);
  j.real("setup_s", r.setup_s)
    .real("updates_ms", r.update_s * 1e3)
    .num("a_key_meta_bytes", r.stats_a.key_meta_bytes)
    .num("a_node_meta_bytes", r.stats_a.node_meta_bytes)
    .num("b_node_meta_bytes", r.stats_b.node_meta_bytes)
    .num("peak_rss_mib", peak_rss_mib())
    .flag("verified", r.verified)
    .print();
}

void run_ae_round(const options& opt, const sizes& sz) {
  const auto n = sz.ae_keys;
  std::cerr << "ae_round: building " << n << " keys of " << value_bytes
            << "-byte values and the update sets\n";
  const auto data = make_ae_data(opt.seed, n, sz.ae_missing);

  struct variant {
    std::string label;
    scheme_kind kind;
    std::size_t leaves;
  };
  const std::vector<variant> variants = {
    {"ndc", scheme_kind::ndc, 0},
    {"dvv_merkle_65536", scheme_kind::dvv, 65536},
    {"dvv_merkle_4096", scheme_kind::dvv, 4096},
  };
  for (std::size_t w = 0; w < sz.ae_missing.size(); ++w) {
    const auto d = sz.ae_missing[w];
    const auto raw = data.per_d[w].raw_bytes;
    std::cerr << "ae_round: d = " << d << " (fresh replicas for every scheme)\n";
    std::optional<ae_result> ndc;
    for (const auto& v : variants) {
      scheme_options so;
      if (v.leaves != 0) {
        so.merkle_leaves = v.leaves;
        so.merkle_fanout = 16;
      }
      ae_result r;
      try {
        r = run_ae(data, w, v.kind, so, v.label, opt.warmup);
      } catch (const std::exception& e) {
        check(false, v.label + ": threw " + e.what());
        json_line("ae_round", opt.seed)
          .str("scheme", v.label)
          .num("n", n)
          .num("d", d)
          .str("error", e.what())
          .flag("verified", false)
          .print();
        continue;
      }
      print_ae(opt, n, d, raw, r, ndc ? &*ndc : nullptr);
      if (v.kind == scheme_kind::ndc)
        ndc = std::move(r);
    }
  }
}

// --- main ------------------------------------------------------------------------

struct bench_case {
  const char* name;
  void (*run)(const options&, const sizes&);
  const char* what;
};

const bench_case cases[] = {
  {"clock_join", run_clock_join, "join of two ~1e6-dot clocks with gaps; encoded sizes"},
  {"missing_dots", run_missing_dots, "missing_from on the same clocks"},
  {"container_sync", run_container_sync, "container::sync and fill+strip throughput"},
  {"ae_round", run_ae_round, "one pull round, NDC vs DVV+Merkle, n=1e6 keys"},
};

void usage(std::ostream& os) {
  os << "usage: kith-bench-causality [--quick] [--seed N] [--case NAME] [--no-warmup]\n"
        "  --quick      small sizes, a smoke run of a few seconds\n"
        "  --seed N     seed of every generator (default "
     << default_seed
     << ")\n"
        "  --no-warmup  ae_round: no in-sync pulls while loading the n keys (the\n"
        "               measured round then also pays the load's deferred work)\n"
        "  --case NAME  run one case:\n";
  for (const auto& c : cases)
    os << "                 " << c.name << "  " << c.what << '\n';
}

} // namespace

int main(int argc, char** argv) {
  options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      opt.quick = true;
    } else if (a == "--seed" && i + 1 < argc) {
      const char* text = argv[++i];
      char* end = nullptr;
      opt.seed = std::strtoull(text, &end, 10);
      if (text[0] < '0' || text[0] > '9' || *end != '\0') {
        std::cerr << "--seed needs a decimal number\n";
        return 2;
      }
    } else if (a == "--case" && i + 1 < argc) {
      opt.only = argv[++i];
    } else if (a == "--no-warmup") {
      opt.warmup = false;
    } else if (a == "--help" || a == "-h") {
      usage(std::cout);
      return 0;
    } else {
      std::cerr << "unknown argument: " << a << '\n';
      usage(std::cerr);
      return 2;
    }
  }
  bool found = opt.only.empty();
  for (const auto& c : cases)
    found = found || opt.only == c.name;
  if (!found) {
    std::cerr << "unknown case: " << opt.only << '\n';
    usage(std::cerr);
    return 2;
  }

  const sizes sz = sizes_for(opt.quick);
  std::cerr << "kith-bench-causality: seed " << opt.seed << (opt.quick ? ", quick sizes" : "")
            << '\n';
  const auto t0 = steady::now();
  for (const auto& c : cases)
    if (opt.only.empty() || opt.only == c.name)
      c.run(opt, sz);
  std::cerr << "done in " << seconds_since(t0) << " s"
            << (any_failure ? "; SOME VERIFICATION FAILED" : "; all verified") << '\n';
  return any_failure ? 1 : 0;
}
