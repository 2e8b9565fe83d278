// The NDC scheme behind the replica_scheme interface: a thin shell over
// causality::replica that encodes its deltas, requests and replies.
#include "kith/causality/replica.hpp"
#include "kith/causality/scheme.hpp"

#include <algorithm>

namespace kith::causality {
namespace {

enum class ndc_msg : std::uint8_t { push = 1, request = 2, reply = 3 };

template <class T>
message framed(ndc_msg type, const T& body) {
  writer w;
  w.u8(static_cast<std::uint8_t>(type));
  encode(w, body);
  message m;
  m.split = split_of(body);
  m.split.sync_meta += 1; // the type byte
  m.bytes = w.take();
  return m;
}

class ndc_scheme final : public replica_scheme {
public:
  explicit ndc_scheme(replica_id self) : rep_(self) {}

  scheme_kind kind() const override { return scheme_kind::ndc; }
  replica_id id() const override { return rep_.id(); }
  void set_members(std::vector<replica_id> members) override {
    rep_.set_members(std::move(members));
  }
  void retire(replica_id member) override { rep_.retire(member); }

  scheme_read read(const key_type& k) const override {
    auto r = rep_.read(k);
    std::sort(r.values.begin(), r.values.end());
    writer w;
    encode(w, r.context);
    return {std::move(r.values), w.take()};
  }

  message write(const key_type& k, std::optional<std::string> value,
                const std::string& context) override {
    version_vector ctx;
    if (!context.empty() && !decode_all(context, ctx))
      ctx = {}; // a context we cannot read replaces nothing
    delta d = value ? rep_.put(k, std::move(*value), ctx) : rep_.erase(k, ctx);
    // The write's dot is the replica's own (gapless) clock base.
    writer w;
    encode(w, version_vector{{id(), rep_.clock().find(id())->base()}});
    last_write_ = w.take();
    return framed(ndc_msg::push, d);
  }

  bool deliver(const message& m) override {
    if (m.bytes.empty() || m.bytes[0] != static_cast<char>(ndc_msg::push))
      return false;
    delta d;
    if (!decode_all(std::string_view{m.bytes}.substr(1), d))
      return false;
    rep_.receive(d);
    return true;
  }

  message sync_start() override { return framed(ndc_msg::request, rep_.make_request()); }

  std::optional<message> sync_step(const message& m) override {
    if (m.bytes.empty())
      return std::nullopt;
    const auto body = std::string_view{m.bytes}.substr(1);
    switch (static_cast<ndc_msg>(m.bytes[0])) {
      case ndc_msg::request: {
        sync_request q;
        if (!decode_all(body, q))
          return std::nullopt;
        return framed(ndc_msg::reply, rep_.answer(q));
      }
      case ndc_msg::reply: {
        sync_reply r;
        if (decode_all(body, r))
          rep_.apply(r);
        return std::nullopt;
      }
      default:
        return std::nullopt;
    }
  }

  std::string last_write() const override { return last_write_; }

  write_trace trace(const key_type& k, const std::string& w) const override {
    write_trace t;
    version_vector v;
    if (!decode_all(w, v) || v.size() != 1)
      return t;
    const dot d{v.entries()[0].first, counter{v.entries()[0].second}};
    // The clock covers a dot only once its effect on the key is stored.
    t.seen = rep_.clock().contains(d);
    if (!t.seen)
      return t;
    const auto i = rep_.store().find(k);
    t.key_meta_gone = i == rep_.store().end() || i->second.context().empty();
    t.node_meta_gone = rep_.dkm().find(d) == nullptr;
    return t;
  }

  void tick() override { rep_.restrip(); }

  scheme_stats stats() const override {
    scheme_stats s;
    for (const auto& [k, c] : rep_.store()) {
      ++s.keys;
      if (!c.has_live_value())
        ++s.tombstones;
      const auto split = split_of(c);
      s.key_meta_bytes += split.key_meta;
      s.data_bytes += split.data;
    }
    s.node_meta_bytes = encoded_size(rep_.clock()) + encoded_size(rep_.marks());
    for (const auto& [origin, row] : rep_.dkm().rows()) {
      s.node_meta_bytes += varint_size(origin.value());
      for (const auto& [n, k] : row)
        s.node_meta_bytes += varint_size(n) + varint_size(k.size()) + k.size();
    }
    return s;
  }

  std::map<key_type, std::vector<std::string>> contents() const override {
    std::map<key_type, std::vector<std::string>> out;
    for (const auto& [k, c] : rep_.store()) {
      auto v = c.values();
      if (v.empty())
        continue;
      std::sort(v.begin(), v.end());
      out.emplace(k, std::move(v));
    }
    return out;
  }

private:
  replica rep_;
  std::string last_write_;
};

} // namespace

std::unique_ptr<replica_scheme> detail::make_ndc_scheme(replica_id self, const scheme_options&) {
  return std::make_unique<ndc_scheme>(self);
}

} // namespace kith::causality
