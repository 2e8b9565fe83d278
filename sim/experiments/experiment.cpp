#include "experiment.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <stdexcept>

namespace kith::experiments {

using namespace kith::causality;

namespace {

// --- deterministic randomness -------------------------------------------------

std::uint64_t splitmix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/// A value drawn from (seed, stream, a, b, c) alone, so a fault decision
/// never depends on the order in which a scheme happens to ask for it.
std::uint64_t draw(std::uint64_t seed, std::uint64_t stream, std::uint64_t a,
                   std::uint64_t b = 0, std::uint64_t c = 0) {
  std::uint64_t h = splitmix(seed ^ splitmix(stream));
  h = splitmix(h ^ a);
  h = splitmix(h ^ (b * 0x100000001b3ull));
  return splitmix(h ^ (c * 0xc6a4a7935bd1e995ull));
}

double unit(std::uint64_t x) { return static_cast<double>(x >> 11) * 0x1.0p-53; }

enum stream : std::uint64_t { s_loss = 1, s_push_lat, s_sync_lat, s_peer, s_phase };

// --- the workload: generated once, the same for every scheme ----------------------

struct op {
  std::uint64_t t_ms;
  std::uint32_t writer;
  std::uint32_t key;
  bool erase;
};

/// Poisson arrivals, Zipf (or uniform) keys, a writer drawn uniformly. A
/// write to a key the workload model holds live deletes it with
/// delete_share, else updates it; a write to a dead key creates it. The
/// model is a global last-writer view, independent of any scheme.
std::vector<op> make_workload(const config& c) {
  std::mt19937_64 g{c.seed};
  std::vector<double> cdf(c.keys);
  double sum = 0;
  for (std::size_t i = 0; i < c.keys; ++i)
    cdf[i] = sum += c.zipf == 0 ? 1.0 : 1.0 / std::pow(static_cast<double>(i + 1), c.zipf);
  std::vector<bool> live(c.keys, false);
  std::vector<op> ops;
  double t = 0;
  const double mean_gap = 1000.0 / c.writes_per_s;
  for (;;) {
    t += -std::log(1.0 - unit(g())) * mean_gap;
    if (t >= static_cast<double>(c.duration_ms))
      break;
    const auto key = static_cast<std::uint32_t>(
        std::lower_bound(cdf.begin(), cdf.end(), unit(g()) * sum) - cdf.begin());
    const auto k = std::min<std::uint32_t>(key, static_cast<std::uint32_t>(c.keys - 1));
    const auto writer = static_cast<std::uint32_t>(g() % c.rf);
    const bool erase = live[k] && unit(g()) < c.delete_share;
    live[k] = !erase;
    ops.push_back({static_cast<std::uint64_t>(t), writer, k, erase});
  }
  return ops;
}

std::string key_name(std::uint32_t k) { return "doc/" + std::to_string(k) + "/title"; }

std::string value_of(std::size_t i, std::size_t bytes) {
  std::string v = "v" + std::to_string(i) + "-";
  v.resize(std::max(bytes, v.size()), 'x');
  return v;
}

// --- the event-driven run ----------------------------------------------------

struct event {
  enum kind_t { write, push, sync_timer, sync_msg, probe, sample } kind;
  std::uint32_t at = 0;      // replica acting
  std::uint32_t other = 0;   // push: sender; sync_msg: the other side
  std::uint64_t index = 0;   // write: op index; sync_timer: round; sync_msg: session
  std::uint32_t step = 0;    // sync_msg: message number within the session
  message msg;
};

struct write_rec {
  std::uint64_t t_ms;
  std::uint32_t key;
  std::string token;
  std::uint32_t unseen;
  std::uint32_t unstripped;
  std::uint32_t key_unstripped;
  std::uint64_t key_mask = 0; // replicas where the key context was seen empty
};

class runner {
public:
  runner(const config& c, scheme_kind kind) : c_(c), ops_(make_workload(c)) {
    if (c.rf < 2 || c.rf > 64)
      throw std::invalid_argument("rf must be in 2..64");
    res_.kind = kind;
    res_.strips = kind == scheme_kind::ndc;
    scheme_options opts;
    opts.merkle_leaves = c.merkle_leaves;
    opts.merkle_fanout = c.merkle_fanout;
    std::vector<replica_id> ids;
    for (std::size_t i = 0; i < c.rf; ++i)
      ids.emplace_back(i + 1);
    for (auto id : ids)
      nodes_.push_back(make_scheme(kind, id, opts));
    for (auto& n : nodes_)
      n->set_members(ids);
    unseen_.resize(c.rf);
    unstripped_.resize(c.rf);
    probe_ms_ = std::max<std::uint64_t>(1, std::min<std::uint64_t>(100, c.sync_ms / 10));
  }

  scheme_result run() {
    for (std::size_t i = 0; i < ops_.size(); ++i)
      post(ops_[i].t_ms, event{event::write, ops_[i].writer, 0, i, 0, {}});
    for (std::uint32_t r = 0; r < c_.rf; ++r)
      post(draw(c_.seed, s_phase, r) % c_.sync_ms, event{event::sync_timer, r, 0, 0, 0, {}});
    if (res_.strips)
      post(0, event{event::probe, 0, 0, 0, 0, {}});
    post(0, event{event::sample, 0, 0, 0, 0, {}});

    const std::uint64_t limit = c_.duration_ms + c_.heal_max_ms;
    while (!queue_.empty() && !done_) {
      auto [t, seq] = queue_.top();
      queue_.pop();
      if (t > limit)
        break;
      now_ = t;
      auto e = std::move(events_.at(seq));
      events_.erase(seq);
      handle(e);
    }
    finish();
    return std::move(res_);
  }

private:
  void post(std::uint64_t t, event e) {
    const auto seq = next_seq_++;
    events_.emplace(seq, std::move(e));
    queue_.emplace(t, seq);
  }

  std::uint64_t latency(std::uint64_t stream, std::uint64_t a, std::uint64_t b,
                        std::uint64_t c) const {
    return c_.latency_ms + (c_.jitter_ms == 0 ? 0 : draw(c_.seed, stream, a, b, c) % c_.jitter_ms);
  }

  void mix(std::uint64_t v) { hash_ = splitmix(hash_ ^ v); }
  void mix(const std::string& s) {
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char ch : s)
      h = (h ^ ch) * 1099511628211ull;
    mix(h);
  }

  void handle(event& e) {
    if (!writes_over_ && now_ >= c_.duration_ms) {
      writes_over_ = true;
      res_.ae_writes = res_.ae_total;
    }
    mix(now_);
    mix(static_cast<std::uint64_t>(e.kind) << 32 | e.at);
    switch (e.kind) {
      case event::write: on_write(e); break;
      case event::push: on_push(e); break;
      case event::sync_timer: on_sync_timer(e); break;
      case event::sync_msg: on_sync_msg(e); break;
      case event::probe: on_probe(); break;
      case event::sample: on_sample(); break;
    }
  }

  void on_write(const event& e) {
    const op& o = ops_[e.index];
    auto& n = *nodes_[o.writer];
    const key_type k = key_name(o.key);
    // The client reads at the replica it writes through, so a write
    // replaces what that replica shows.
    const auto seen = n.read(k);
    message m = o.erase ? n.write(k, std::nullopt, seen.context)
                        : n.write(k, value_of(e.index, c_.value_bytes), seen.context);
    mix(m.bytes);
    ++res_.writes;
    res_.deletes += o.erase ? 1 : 0;
    const auto w = static_cast<std::uint32_t>(writes_.size());
    res_.erase.push_back(o.erase);
    res_.write_ms.push_back(now_);
    res_.write_key.push_back(o.key);
    writes_.push_back({now_, o.key, n.last_write(), static_cast<std::uint32_t>(c_.rf),
                       static_cast<std::uint32_t>(c_.rf), static_cast<std::uint32_t>(c_.rf)});
    res_.repair.push_back(-1);
    res_.key_strip.push_back(-1);
    res_.strip.push_back(-1);
    for (std::uint32_t r = 0; r < c_.rf; ++r)
      unseen_[r].push_back(w);
    for (std::uint32_t to = 0; to < c_.rf; ++to) {
      if (to == o.writer)
        continue;
      ++res_.pushes_sent;
      res_.push_bytes += m.split.total();
      if (unit(draw(c_.seed, s_loss, e.index, to)) < c_.loss) {
        ++res_.pushes_lost;
        continue;
      }
      post(now_ + latency(s_push_lat, e.index, to, 0), event{event::push, to, o.writer, e.index, 0, m});
    }
    after_change(o.writer);
  }

  void on_push(const event& e) {
    if (!nodes_[e.at]->deliver(e.msg))
      throw std::logic_error("a scheme refused its own push");
    after_change(e.at);
  }

  void on_sync_timer(const event& e) {
    const auto round = e.index;
    if (now_ < c_.duration_ms + c_.heal_max_ms)
      post(now_ + c_.sync_ms, event{event::sync_timer, e.at, 0, round + 1, 0, {}});
    // A random other member, drawn from (replica, round) only.
    auto peer = static_cast<std::uint32_t>(draw(c_.seed, s_peer, e.at, round) % (c_.rf - 1));
    if (peer >= e.at)
      ++peer;
    const auto session = res_.sync_sessions++;
    message m = nodes_[e.at]->sync_start();
    res_.ae_total += m.split;
    mix(m.bytes);
    post(now_ + latency(s_sync_lat, session, 0, 0), event{event::sync_msg, peer, e.at, session, 0, std::move(m)});
  }

  void on_sync_msg(const event& e) {
    auto next = nodes_[e.at]->sync_step(e.msg);
    after_change(e.at);
    if (!next || e.step > 64)
      return;
    res_.ae_total += next->split;
    mix(next->bytes);
    post(now_ + latency(s_sync_lat, e.index, e.step + 1, 0),
         event{event::sync_msg, e.other, e.at, e.index, e.step + 1, std::move(*next)});
  }

  /// A replica's state changed: re-strip (NDC's timer, run eagerly here)
  /// and look for writes it now holds.
  void after_change(std::uint32_t r) {
    nodes_[r]->tick();
    auto& list = unseen_[r];
    std::size_t keep = 0;
    for (std::size_t i = 0; i < list.size(); ++i) {
      auto& w = writes_[list[i]];
      if (!nodes_[r]->trace(key_name(w.key), w.token).seen) {
        list[keep++] = list[i];
        continue;
      }
      if (--w.unseen == 0)
        res_.repair[list[i]] = static_cast<std::int64_t>(now_ - w.t_ms);
      if (res_.strips)
        unstripped_[r].push_back(list[i]);
    }
    list.resize(keep);
  }

  /// Strip checks run on a timer of sync_ms / 10 (at most 100 ms): the
  /// strip latencies are quantised to it.
  void on_probe() {
    for (std::uint32_t r = 0; r < c_.rf; ++r) {
      auto& list = unstripped_[r];
      std::size_t keep = 0;
      for (std::size_t i = 0; i < list.size(); ++i) {
        auto& w = writes_[list[i]];
        const auto t = nodes_[r]->trace(key_name(w.key), w.token);
        if (t.key_meta_gone && (w.key_mask & (1ull << r)) == 0) {
          w.key_mask |= 1ull << r;
          if (--w.key_unstripped == 0)
            res_.key_strip[list[i]] = static_cast<std::int64_t>(now_ - w.t_ms);
        }
        if ((w.key_mask & (1ull << r)) != 0 && t.node_meta_gone) {
          if (--w.unstripped == 0)
            res_.strip[list[i]] = static_cast<std::int64_t>(now_ - w.t_ms);
          continue;
        }
        list[keep++] = list[i];
      }
      list.resize(keep);
    }
    post(now_ + probe_ms_, event{event::probe, 0, 0, 0, 0, {}});
  }

  bool all_repaired() const {
    return std::all_of(unseen_.begin(), unseen_.end(), [](const auto& l) { return l.empty(); });
  }
  bool all_stripped() const {
    return std::all_of(unstripped_.begin(), unstripped_.end(), [](const auto& l) { return l.empty(); }) &&
           all_repaired();
  }
  bool contents_equal() const {
    const auto first = nodes_.front()->contents();
    return std::all_of(nodes_.begin() + 1, nodes_.end(),
                       [&](const auto& n) { return n->contents() == first; });
  }

  void on_sample() {
    sample s;
    s.t_ms = now_;
    for (const auto& n : nodes_) {
      const auto st = n->stats();
      s.keys += static_cast<double>(st.keys);
      s.live += static_cast<double>(st.keys - st.tombstones);
      s.tombstones += static_cast<double>(st.tombstones);
      s.key_meta += static_cast<double>(st.key_meta_bytes);
      s.node_meta += static_cast<double>(st.node_meta_bytes);
      s.data += static_cast<double>(st.data_bytes);
    }
    const auto n = static_cast<double>(nodes_.size());
    s.keys /= n, s.live /= n, s.tombstones /= n, s.key_meta /= n, s.node_meta /= n, s.data /= n;
    s.ae = res_.ae_total;
    s.push_bytes = res_.push_bytes;
    for (const auto& w : writes_)
      s.unrepaired += w.unseen > 0 ? 1 : 0;
    res_.series.push_back(s);

    if (now_ >= c_.duration_ms) {
      if (res_.converged_ms < 0 && all_repaired() && contents_equal())
        res_.converged_ms = static_cast<std::int64_t>(now_);
      // Stop once nothing is left to measure (sessions still in flight are
      // between replicas that agree; the traffic compared is that of the
      // write phase, the same window for every scheme).
      if (res_.converged_ms >= 0 && (!res_.strips || all_stripped()))
        done_ = true;
    }
    post(now_ + c_.sample_ms, event{event::sample, 0, 0, 0, 0, {}});
  }

  /// An instantaneous pull, only to force convergence at the end; its
  /// bytes are not counted as anti-entropy traffic.
  void pull(std::uint32_t to, std::uint32_t from) {
    message m = nodes_[to]->sync_start();
    bool at_from = true;
    for (int step = 0; step < 64; ++step) {
      auto next = (at_from ? nodes_[from] : nodes_[to])->sync_step(m);
      if (!next)
        break;
      m = std::move(*next);
      at_from = !at_from;
    }
  }

  void finish() {
    res_.end_ms = now_;
    if (!writes_over_)
      res_.ae_writes = res_.ae_total;
    if (res_.converged_ms < 0) {
      // Anti-entropy did not get there within heal_max_ms: converge by
      // all-pairs pulls so the end state can still be checked, and say so.
      res_.forced = true;
      for (int pass = 0; pass < 3; ++pass)
        for (std::uint32_t i = 0; i < c_.rf; ++i)
          for (std::uint32_t j = 0; j < c_.rf; ++j)
            if (i != j)
              pull(i, j);
      for (std::uint32_t r = 0; r < c_.rf; ++r)
        after_change(r);
    }
    res_.converged_end = contents_equal();
    for (const auto& n : nodes_) {
      const auto st = n->stats();
      res_.end_stats.keys += st.keys;
      res_.end_stats.tombstones += st.tombstones;
      res_.end_stats.key_meta_bytes += st.key_meta_bytes;
      res_.end_stats.node_meta_bytes += st.node_meta_bytes;
      res_.end_stats.data_bytes += st.data_bytes;
      res_.end_live += st.keys - st.tombstones;
    }
    // The baselines are not probed during the run (their contract says a
    // write's key metadata is never gone); check that at the end.
    for (const auto& w : writes_)
      for (const auto& n : nodes_)
        res_.settled_at_end += n->trace(key_name(w.key), w.token).key_meta_gone ? 1 : 0;
    for (const auto& n : nodes_)
      for (const auto& [k, vs] : n->contents()) {
        mix(k);
        for (const auto& v : vs)
          mix(v);
      }
    res_.repair_p = summarise(res_.repair);
    res_.key_strip_p = summarise(res_.key_strip);
    res_.strip_p = summarise(res_.strip);
    res_.trace_hash = hash_;
  }

  const config& c_;
  std::vector<op> ops_;
  std::vector<std::unique_ptr<replica_scheme>> nodes_;
  std::priority_queue<std::pair<std::uint64_t, std::uint64_t>,
                      std::vector<std::pair<std::uint64_t, std::uint64_t>>, std::greater<>>
      queue_;
  std::map<std::uint64_t, event> events_;
  std::uint64_t next_seq_ = 0;
  std::uint64_t now_ = 0;
  std::uint64_t probe_ms_ = 100;
  bool done_ = false;
  bool writes_over_ = false;
  std::vector<write_rec> writes_;
  std::vector<std::vector<std::uint32_t>> unseen_;     // per replica: writes not yet held
  std::vector<std::vector<std::uint32_t>> unstripped_; // per replica: held, metadata not yet gone
  std::uint64_t hash_ = 0;
  scheme_result res_;
};

} // namespace

percentiles summarise(const std::vector<std::int64_t>& latencies) {
  percentiles p;
  std::vector<std::uint64_t> v;
  for (auto x : latencies) {
    if (x < 0)
      ++p.never;
    else
      v.push_back(static_cast<std::uint64_t>(x));
  }
  p.count = v.size();
  if (v.empty())
    return p;
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (auto x : v)
    sum += static_cast<double>(x);
  p.mean = sum / static_cast<double>(v.size());
  const auto at = [&](double q) {
    const auto i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size()))) ;
    return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
  };
  p.p50 = at(0.5);
  p.p90 = at(0.9);
  p.p99 = at(0.99);
  p.max = v.back();
  return p;
}

scheme_result run(const config& c, scheme_kind kind) {
  return runner{c, kind}.run();
}

} // namespace kith::experiments
