#include "kith/protocol/signed_write.hpp"

#include <algorithm>
#include <cstring>

namespace kith::protocol {

namespace {

using causality::reader;
using causality::writer;

template <std::size_t N>
bool read_array(reader& r, std::array<std::uint8_t, N>& out) {
  auto v = r.raw(N);
  if (r.failed() || v.size() != N)
    return false;
  std::memcpy(out.data(), v.data(), N);
  return true;
}

template <std::size_t N>
std::string_view as_view(const std::array<std::uint8_t, N>& a) {
  return {reinterpret_cast<const char*>(a.data()), N};
}

std::string binding_message(const public_key& author, std::uint64_t nonce) {
  writer w;
  w.raw("kith/replica/v1");
  w.raw(author.view());
  w.varint(nonce);
  return w.take();
}

// The fields the creator signs, in the order both the signed message and
// the stored encoding use.
void encode_signed_fields(writer& w, const topic_descriptor& t) {
  w.u8(static_cast<std::uint8_t>(t.kind));
  w.raw(t.creator.view());
  w.bytes(t.name);
  w.varint(t.writers.size());
  for (const auto& pk : t.writers)
    w.raw(pk.view());
  w.varint(t.nonce);
}

std::string topic_body(const topic_descriptor& t) {
  writer w;
  w.raw("kith/topic/v1");
  encode_signed_fields(w, t);
  return w.take();
}

std::string topic_id_of(const topic_descriptor& t) {
  if (t.kind == topic_kind::feed)
    return "feed/" + to_text(t.creator);
  hash256 h = hash_of(topic_body(t));
  return "topic/" + to_hex(as_view(h)).substr(0, 32);
}

} // namespace

// --- bindings ---------------------------------------------------------------

replica_id derive_replica_id(const public_key& author, std::uint64_t nonce) {
  hash256 h = hash_of(binding_message(author, nonce));
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | h[i];
  // Zero is never a valid replica id (it means "none" in several places).
  return replica_id{v == 0 ? 1 : v};
}

replica_binding bind_replica(const identity& author, std::uint64_t nonce) {
  replica_binding b;
  b.author = author.pub();
  b.nonce = nonce;
  b.rid = derive_replica_id(b.author, nonce);
  b.sig = author.sign(binding_message(b.author, nonce));
  return b;
}

bool check_binding(const replica_binding& b) {
  return derive_replica_id(b.author, b.nonce) == b.rid &&
         verify(b.author, binding_message(b.author, b.nonce), b.sig);
}

// --- topics -------------------------------------------------------------------

topic_descriptor feed_topic(const public_key& owner) {
  topic_descriptor t;
  t.kind = topic_kind::feed;
  t.creator = owner;
  t.name = "feed";
  t.id = topic_id_of(t);
  return t;
}

topic_descriptor make_topic(const identity& creator, topic_kind kind, std::string name,
                            std::vector<public_key> writers, std::uint64_t nonce) {
  if (kind == topic_kind::feed)
    return feed_topic(creator.pub());
  topic_descriptor t;
  t.kind = kind;
  t.creator = creator.pub();
  t.name = std::move(name);
  std::sort(writers.begin(), writers.end());
  writers.erase(std::unique(writers.begin(), writers.end()), writers.end());
  t.writers = std::move(writers);
  t.nonce = nonce;
  t.sig = creator.sign(topic_body(t));
  t.id = topic_id_of(t);
  return t;
}

bool check_topic(const topic_descriptor& t, std::string* why) {
  auto fail = [&](const char* reason) {
    if (why)
      *why = reason;
    return false;
  };
  if (static_cast<unsigned>(t.kind) > 2)
    return fail("unknown topic kind");
  if (t.id != topic_id_of(t))
    return fail("topic id does not match its descriptor");
  if (t.kind != topic_kind::feed && !verify(t.creator, topic_body(t), t.sig))
    return fail("topic descriptor signature is invalid");
  return true;
}

bool may_write(const topic_descriptor& t, const public_key& author) {
  switch (t.kind) {
    case topic_kind::feed:
      return author == t.creator;
    case topic_kind::shared:
      return author == t.creator ||
             std::binary_search(t.writers.begin(), t.writers.end(), author);
    case topic_kind::open:
      return true;
  }
  return false;
}

// --- writes -------------------------------------------------------------------

std::string encode_body(const write_body& b) {
  writer w;
  w.u8(b.deleted ? 1 : 0);
  w.varint(b.time_ms);
  causality::encode(w, b.context);
  w.bytes(b.value);
  return w.take();
}

std::optional<write_body> decode_body(std::string_view bytes, const signed_limits& l) {
  reader r(bytes);
  write_body b;
  auto flag = r.u8();
  if (flag > 1)
    return std::nullopt;
  b.deleted = flag == 1;
  b.time_ms = r.varint();
  if (!causality::decode(r, b.context, l.base))
    return std::nullopt;
  b.value = std::string(r.bytes(l.base.max_value_bytes));
  if (r.failed() || !r.at_end())
    return std::nullopt;
  return b;
}

write_header header_of(const key_type& k, dot d, const write_body& b) {
  return {k, d, b.deleted, b.time_ms, b.context, hash_of(b.value)};
}

void encode(writer& w, const write_header& h) {
  w.bytes(h.key);
  w.varint(h.d.id.value());
  w.varint(h.d.n.value());
  w.u8(h.deleted ? 1 : 0);
  w.varint(h.time_ms);
  causality::encode(w, h.context);
  w.raw(as_view(h.value_hash));
}

bool decode(reader& r, write_header& h, const signed_limits& l) {
  h.key = std::string(r.bytes(l.base.max_key_bytes));
  h.d.id = replica_id{r.varint()};
  h.d.n = counter{r.varint()};
  auto flag = r.u8();
  h.deleted = flag == 1;
  h.time_ms = r.varint();
  if (flag > 1 || !causality::decode(r, h.context, l.base))
    return false;
  return read_array(r, h.value_hash) && !r.failed();
}

hash256 leaf_hash(std::string_view topic, const write_header& h) {
  writer w;
  w.raw("kith/write/v1");
  w.bytes(topic);
  encode(w, h);
  return hash_of(w.str());
}

// --- batches ------------------------------------------------------------------

std::string batch_message(const signed_batch& b) {
  // The leaves are hashed first so the signed message has a fixed size
  // whatever the batch length.
  std::string leaves;
  leaves.reserve(b.leaves.size() * 32);
  for (const auto& l : b.leaves)
    leaves.append(as_view(l));
  writer w;
  w.raw("kith/batch/v1");
  w.bytes(b.topic);
  w.varint(b.rid.value());
  w.varint(b.first);
  w.varint(b.leaves.size());
  w.raw(as_view(hash_of(leaves)));
  return w.take();
}

signed_batch sign_batch(const identity& author, std::string topic, replica_id rid,
                        std::uint64_t first, std::vector<hash256> leaves) {
  signed_batch b;
  b.topic = std::move(topic);
  b.rid = rid;
  b.first = first;
  b.leaves = std::move(leaves);
  b.sig = author.sign(batch_message(b));
  return b;
}

bool check_batch(const signed_batch& b, const public_key& author) {
  return b.first >= 1 && !b.leaves.empty() && verify(author, batch_message(b), b.sig);
}

// --- writer summaries -----------------------------------------------------------

bool writer_summary::live_at(dot d) const {
  if (d.id != rid)
    return false;
  const auto n = d.n.value();
  if (n > upto)
    return true;
  auto it = std::upper_bound(live.begin(), live.end(), n,
                             [](std::uint64_t x, const auto& run) { return x < run.first; });
  if (it == live.begin())
    return false;
  --it;
  return n - it->first < it->second;
}

void writer_summary::add_live(std::uint64_t first, std::uint64_t last) {
  // Runs are few (an append-mostly feed: one per delete): rebuild.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  out.reserve(live.size() + 1);
  bool placed = false;
  auto push = [&](std::uint64_t f, std::uint64_t l) { // inclusive ends
    if (!out.empty() && out.back().first + out.back().second >= f) {
      auto& b = out.back();
      b.second = std::max(b.first + b.second, l + 1) - b.first;
    } else {
      out.emplace_back(f, l - f + 1);
    }
  };
  for (const auto& [f, len] : live) {
    if (!placed && first < f) {
      push(first, last);
      placed = true;
    }
    push(f, f + len - 1);
  }
  if (!placed)
    push(first, last);
  live = std::move(out);
}

void writer_summary::remove_live(std::uint64_t n) {
  for (std::size_t i = 0; i < live.size(); ++i) {
    auto [f, len] = live[i];
    if (n < f || n >= f + len)
      continue;
    live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
    std::vector<std::pair<std::uint64_t, std::uint64_t>> parts;
    if (n > f)
      parts.emplace_back(f, n - f);
    if (n + 1 < f + len)
      parts.emplace_back(n + 1, f + len - n - 1);
    live.insert(live.begin() + static_cast<std::ptrdiff_t>(i), parts.begin(), parts.end());
    return;
  }
}

void writer_summary::coarsen(std::size_t max_runs) {
  if (max_runs == 0)
    max_runs = 1;
  while (live.size() > max_runs) {
    std::size_t best = 0; // the gap after run best
    std::uint64_t smallest = ~std::uint64_t{0};
    for (std::size_t i = 0; i + 1 < live.size(); ++i) {
      const auto gap = live[i + 1].first - (live[i].first + live[i].second);
      if (gap < smallest) {
        smallest = gap;
        best = i;
      }
    }
    live[best].second = live[best + 1].first + live[best + 1].second - live[best].first;
    live.erase(live.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
}

namespace {

/// What a summary says, in the order both its signed message and its
/// encoding write it.
void put_summary_fields(writer& w, const writer_summary& s) {
  w.bytes(s.topic);
  w.varint(s.rid.value());
  w.varint(s.upto);
  w.varint(s.live.size());
  for (const auto& [f, len] : s.live) {
    w.varint(f);
    w.varint(len);
  }
}

} // namespace

std::string summary_message(const writer_summary& s) {
  writer w;
  // An own summary signs what version 1 signed; a vouched one names the
  // replica that vouches, under its own domain tag.
  w.raw(s.vouched() ? "kith/summary/v2" : "kith/summary/v1");
  put_summary_fields(w, s);
  if (s.vouched()) {
    w.varint(s.by.value());
    w.varint(s.by_upto);
  }
  return w.take();
}

void sign_summary(const identity& writer, writer_summary& s) { s.sig = writer.sign(summary_message(s)); }

bool check_summary(const writer_summary& s, const public_key& writer) {
  if (s.upto > (std::uint64_t{1} << 62) || s.by_upto > (std::uint64_t{1} << 62))
    return false;
  if (s.vouched() ? (s.by == s.rid || s.by_upto == 0) : s.by_upto != 0)
    return false;
  std::uint64_t next = 1; // the least counter the next run may start at
  for (const auto& [f, len] : s.live) {
    if (f < next || len == 0 || len > s.upto || f > s.upto - len + 1)
      return false;
    next = f + len + 1; // runs do not touch: they would be one
  }
  return verify(writer, summary_message(s), s.sig);
}

// --- encodings ------------------------------------------------------------------

void encode(writer& w, const writer_summary& s) {
  put_summary_fields(w, s);
  w.raw(s.sig.view());
  // After the signature, so that an own summary is encoded as version 1
  // encoded it (stored rows and older peers read it unchanged).
  if (s.vouched()) {
    w.varint(s.by.value());
    w.varint(s.by_upto);
  }
}

bool decode(reader& r, writer_summary& s, const signed_limits& l) {
  s.topic = std::string(r.bytes(l.max_topic_bytes));
  s.rid = replica_id{r.varint()};
  s.upto = r.varint();
  auto n = r.count(l.max_summary_runs);
  s.live.clear();
  for (std::size_t i = 0; i < n && !r.failed(); ++i) {
    const auto f = r.varint();
    const auto len = r.varint();
    s.live.emplace_back(f, len);
  }
  if (!read_array(r, s.sig.bytes) || r.failed())
    return false;
  // A summary is always decoded from its own blob (a stored row, or one
  // element of a reply's list): bytes after the signature are `by`.
  s.by = replica_id{0};
  s.by_upto = 0;
  if (!r.at_end()) {
    s.by = replica_id{r.varint()};
    s.by_upto = r.varint();
    if (!s.vouched())
      return false; // a vouched summary names its replica
  }
  return !r.failed();
}

void encode(writer& w, const replica_binding& b) {
  w.raw(b.author.view());
  w.varint(b.nonce);
  w.varint(b.rid.value());
  w.raw(b.sig.view());
}

bool decode(reader& r, replica_binding& b, const signed_limits&) {
  if (!read_array(r, b.author.bytes))
    return false;
  b.nonce = r.varint();
  b.rid = replica_id{r.varint()};
  return read_array(r, b.sig.bytes);
}

void encode(writer& w, const topic_descriptor& t) {
  w.bytes(t.id);
  encode_signed_fields(w, t);
  w.raw(t.sig.view());
}

bool decode(reader& r, topic_descriptor& t, const signed_limits& l) {
  t.id = std::string(r.bytes(l.max_topic_bytes));
  auto kind = r.u8();
  if (kind > 2)
    return false;
  t.kind = static_cast<topic_kind>(kind);
  if (!read_array(r, t.creator.bytes))
    return false;
  t.name = std::string(r.bytes(l.max_topic_bytes));
  auto n = r.count(l.max_writers);
  t.writers.assign(n, public_key{});
  for (auto& pk : t.writers)
    if (!read_array(r, pk.bytes))
      return false;
  t.nonce = r.varint();
  return read_array(r, t.sig.bytes);
}

void encode(writer& w, const signed_batch& b) {
  w.bytes(b.topic);
  w.varint(b.rid.value());
  w.varint(b.first);
  w.varint(b.leaves.size());
  for (const auto& h : b.leaves)
    w.raw(as_view(h));
  w.raw(b.sig.view());
}

bool decode(reader& r, signed_batch& b, const signed_limits& l) {
  b.topic = std::string(r.bytes(l.max_topic_bytes));
  b.rid = replica_id{r.varint()};
  b.first = r.varint();
  auto n = r.count(l.max_batch_leaves);
  b.leaves.assign(n, hash256{});
  for (auto& h : b.leaves)
    if (!read_array(r, h))
      return false;
  return read_array(r, b.sig.bytes) && !r.failed();
}

} // namespace kith::protocol
