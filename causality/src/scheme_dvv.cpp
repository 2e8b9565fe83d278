// The per-key dotted version vector baseline (Riak / MerkleDB style): each
// key keeps a container whose context is the key's own version vector,
// never stripped, so a delete leaves a tombstone that stays for good, and
// anti-entropy compares Merkle trees over the key space.

#include "kith/causality/merkle.hpp"

#include <algorithm>
#include <map>
#include <memory>

namespace kith::causality {

namespace {

class dvv_scheme final : public merkle_replica {
public:
  dvv_scheme(replica_id self, const scheme_options& opts)
      : merkle_replica(scheme_kind::dvv, self, opts) {}

  [[nodiscard]] scheme_read read(const key_type& k) const override {
    scheme_read out;
    auto it = store_.find(k);
    if (it == store_.end())
      return out;
    out.values = it->second.values();
    std::sort(out.values.begin(), out.values.end());
    writer w;
    encode(w, it->second.read_context());
    out.context = w.take();
    return out;
  }

  /// A context that does not decode (it should come from read()) counts as
  /// empty: the write then replaces nothing and adds a sibling.
  message write(const key_type& k, std::optional<std::string> value,
                const std::string& context) override {
    version_vector ctx;
    if (!context.empty() && !decode_all(context, ctx, limits()))
      ctx = {};
    container& c = store_[k];
    c.discard(ctx);
    // Per-key counters: the key's own context already holds our last one.
    const dot d{id(), counter{c.context().get(id()) + 1}};
    {
      writer w;
      encode(w, version_vector{{d.id, d.n.value()}});
      last_write_ = w.take();
    }
    c.add(d, value ? sibling::value(std::move(*value)) : sibling::tombstone());
    // The key stays stored even with only delete markers: a kept tombstone.
    note_stored(k, c.has_live_value());
    return make_push(k);
  }

  [[nodiscard]] std::string last_write() const override { return last_write_; }

  /// Seen when the key's version vector covers the write's dot. The entry
  /// stays in that vector (and a delete's tombstone stays) for good, so the
  /// per-key metadata of a write is never gone.
  [[nodiscard]] write_trace trace(const key_type& k, const std::string& w) const override {
    write_trace t;
    version_vector v;
    if (!decode_all(w, v, limits()) || v.size() != 1)
      return t;
    const auto i = store_.find(k);
    const dot d{v.entries()[0].first, counter{v.entries()[0].second}};
    t.seen = i != store_.end() && i->second.context().covers(d);
    t.node_meta_gone = t.seen;
    return t;
  }

  [[nodiscard]] std::map<key_type, std::vector<std::string>> contents() const override {
    std::map<key_type, std::vector<std::string>> out;
    for (const auto& [k, c] : store_) {
      auto values = c.values();
      if (values.empty())
        continue;
      std::sort(values.begin(), values.end());
      out.emplace(k, std::move(values));
    }
    return out;
  }

protected:
  std::uint64_t encode_object(const key_type& k, writer& w) const override {
    const container& c = store_.at(k);
    encode(w, c);
    std::uint64_t value_bytes = 0;
    for (const auto& [d, s] : c.dots())
      value_bytes += s.bytes.size();
    return value_bytes;
  }

  [[nodiscard]] pending_merge decode_object(const key_type& k, reader& r) override {
    container c;
    if (!decode(r, c, limits()))
      return {};
    // A per-key context is complete: it must cover the dots it travels with.
    if (!c.check_invariant() || !c.covers_own_dots()) {
      r.fail();
      return {};
    }
    return [this, k, c = std::move(c)] { merge(k, c); };
  }

private:
  void merge(const key_type& k, const container& received) {
    auto it = store_.find(k);
    // No fill: both contexts are the key's complete version vectors.
    container merged = container::sync(received, it == store_.end() ? container{} : it->second);
    if (it == store_.end()) {
      if (merged.empty())
        return;
      it = store_.emplace(k, std::move(merged)).first;
    } else if (merged == it->second) {
      return;
    } else {
      it->second = std::move(merged);
    }
    note_stored(k, it->second.has_live_value());
  }

  std::map<key_type, container> store_;
  std::string last_write_;
};

} // namespace

namespace detail {
std::unique_ptr<replica_scheme> make_dvv_scheme(replica_id self, const scheme_options& opts) {
  return std::make_unique<dvv_scheme>(self, opts);
}
} // namespace detail

} // namespace kith::causality
