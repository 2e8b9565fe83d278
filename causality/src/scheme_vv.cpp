// The per-key plain version vector baseline (classic Dynamo with server
// ids): each key keeps its siblings, each under the version vector that
// wrote it. Deletes are siblings with a delete marker, kept for good;
// anti-entropy compares Merkle trees over the key space.
//
// Known weakness, kept on purpose: the writing server, not the client,
// names the event, so two clients writing through the same server from the
// same stale context get vectors where the later one dominates the earlier
// ("false dominance") and the earlier write is silently lost. The simulator
// measures how often that happens; dotted version vectors exist to fix it.

#include "kith/causality/merkle.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <tuple>

namespace kith::causality {

namespace {

struct vv_sibling {
  version_vector vv;
  sibling value;

  friend bool operator==(const vv_sibling& a, const vv_sibling& b) {
    return a.vv == b.vv && a.value == b.value;
  }
};

std::string encoded(const version_vector& v) {
  writer w;
  encode(w, v);
  return w.take();
}

/// Sorts siblings canonically (by encoded vector, then marker, then value),
/// drops exact duplicates and every sibling whose vector is strictly
/// dominated by another's, so that equal states encode equally.
// TODO(perf): quadratic in siblings; a hostile object may carry max_dots
// (4096) of them, about 16M vector comparisons. Bound siblings per key?
void normalise(std::vector<vv_sibling>& s) {
  std::vector<std::pair<std::string, vv_sibling>> keyed;
  keyed.reserve(s.size());
  for (auto& x : s)
    keyed.emplace_back(encoded(x.vv), std::move(x));
  std::sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) {
    return std::tie(a.first, a.second.value.deleted, a.second.value.bytes) <
           std::tie(b.first, b.second.value.deleted, b.second.value.bytes);
  });
  keyed.erase(std::unique(keyed.begin(), keyed.end(),
                          [](const auto& a, const auto& b) { return a.second == b.second; }),
              keyed.end());
  s.clear();
  for (std::size_t i = 0; i < keyed.size(); ++i) {
    const auto& vi = keyed[i].second.vv;
    const bool dominated = std::any_of(keyed.begin(), keyed.end(), [&](const auto& o) {
      return vi.leq(o.second.vv) && vi != o.second.vv;
    });
    if (!dominated)
      s.push_back(keyed[i].second);
  }
}

bool any_live(const std::vector<vv_sibling>& s) {
  return std::any_of(s.begin(), s.end(), [](const vv_sibling& x) { return !x.value.deleted; });
}

class vv_scheme final : public merkle_replica {
public:
  vv_scheme(replica_id self, const scheme_options& opts)
      : merkle_replica(scheme_kind::vv, self, opts) {}

  [[nodiscard]] scheme_read read(const key_type& k) const override {
    scheme_read out;
    auto it = store_.find(k);
    if (it == store_.end())
      return out;
    version_vector ctx;
    for (const auto& s : it->second) {
      ctx.join(s.vv);
      if (!s.value.deleted)
        out.values.push_back(s.value.bytes);
    }
    std::sort(out.values.begin(), out.values.end());
    out.context = encoded(ctx);
    return out;
  }

  /// A context that does not decode (it should come from read()) counts as
  /// empty. Note the false dominance described at the top of this file:
  /// with a stale context this may drop a sibling the client never saw.
  message write(const key_type& k, std::optional<std::string> value,
                const std::string& context) override {
    version_vector ctx;
    if (!context.empty() && !decode_all(context, ctx, limits()))
      ctx = {};
    auto& sibs = store_[k];
    std::uint64_t top = ctx.get(id());
    for (const auto& s : sibs)
      top = std::max(top, s.vv.get(id()));
    version_vector next = ctx;
    next.raise(id(), top + 1);
    sibs.erase(std::remove_if(sibs.begin(), sibs.end(),
                              [&](const vv_sibling& s) { return s.vv.leq(next); }),
               sibs.end());
    last_write_ = encoded(next);
    sibs.push_back({std::move(next),
                    value ? sibling::value(std::move(*value)) : sibling::tombstone()});
    normalise(sibs);
    note_stored(k, any_live(sibs));
    return make_push(k);
  }

  [[nodiscard]] std::string last_write() const override { return last_write_; }

  /// Seen when some stored sibling's vector is at or above the write's
  /// (dominated siblings are dropped, tombstones kept, so one always is
  /// once seen). Per-key vectors are never stripped.
  [[nodiscard]] write_trace trace(const key_type& k, const std::string& w) const override {
    write_trace t;
    version_vector v;
    if (!decode_all(w, v, limits()) || v.empty())
      return t;
    const auto i = store_.find(k);
    if (i == store_.end())
      return t;
    t.seen = std::any_of(i->second.begin(), i->second.end(),
                         [&](const vv_sibling& s) { return v.leq(s.vv); });
    t.node_meta_gone = t.seen;
    return t;
  }

  [[nodiscard]] std::map<key_type, std::vector<std::string>> contents() const override {
    std::map<key_type, std::vector<std::string>> out;
    for (const auto& [k, sibs] : store_) {
      std::vector<std::string> values;
      for (const auto& s : sibs)
        if (!s.value.deleted)
          values.push_back(s.value.bytes);
      if (values.empty())
        continue;
      std::sort(values.begin(), values.end());
      out.emplace(k, std::move(values));
    }
    return out;
  }

protected:
  // Object: sibling count, then per sibling its vector and the value with
  // its marker bit folded into the length (as containers do).
  std::uint64_t encode_object(const key_type& k, writer& w) const override {
    const auto& sibs = store_.at(k);
    std::uint64_t value_bytes = 0;
    w.varint(sibs.size());
    for (const auto& s : sibs) {
      encode(w, s.vv);
      w.varint(s.value.bytes.size() << 1 | (s.value.deleted ? 1u : 0u));
      w.raw(s.value.bytes);
      value_bytes += s.value.bytes.size();
    }
    return value_bytes;
  }

  [[nodiscard]] pending_merge decode_object(const key_type& k, reader& r) override {
    std::vector<vv_sibling> sibs;
    const auto n = r.count(limits().max_dots);
    for (std::uint64_t i = 0; i < n && !r.failed(); ++i) {
      vv_sibling s;
      if (!decode(r, s.vv, limits()) || s.vv.empty()) { // every write names its server
        r.fail();
        break;
      }
      const auto head = r.varint();
      if ((head >> 1) > limits().max_value_bytes) {
        r.fail();
        break;
      }
      const auto bytes = r.raw(static_cast<std::size_t>(head >> 1));
      s.value = sibling{(head & 1u) != 0, std::string{bytes}};
      sibs.push_back(std::move(s));
    }
    if (r.failed())
      return {};
    return [this, k, sibs = std::move(sibs)] { merge(k, sibs); };
  }

private:
  void merge(const key_type& k, const std::vector<vv_sibling>& received) {
    auto it = store_.find(k);
    std::vector<vv_sibling> merged = received;
    if (it != store_.end())
      merged.insert(merged.end(), it->second.begin(), it->second.end());
    normalise(merged);
    if (it == store_.end()) {
      if (merged.empty())
        return;
      it = store_.emplace(k, std::move(merged)).first;
    } else if (merged == it->second) {
      return;
    } else {
      it->second = std::move(merged);
    }
    note_stored(k, any_live(it->second));
  }

  std::map<key_type, std::vector<vv_sibling>> store_; // siblings kept normalised
  std::string last_write_;
};

} // namespace

namespace detail {
std::unique_ptr<replica_scheme> make_vv_scheme(replica_id self, const scheme_options& opts) {
  return std::make_unique<vv_scheme>(self, opts);
}
} // namespace detail

} // namespace kith::causality
