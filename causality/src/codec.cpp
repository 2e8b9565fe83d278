#include "kith/causality/codec.hpp"

#include <algorithm>

namespace kith::causality {

// --- primitives --------------------------------------------------------------

void writer::varint(std::uint64_t v) {
  while (v >= 0x80) {
    buf_.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  buf_.push_back(static_cast<char>(v));
}

void writer::bytes(std::string_view b) {
  varint(b.size());
  buf_.append(b.data(), b.size());
}

void writer::raw(std::string_view b) {
  buf_.append(b.data(), b.size());
}

std::uint64_t reader::varint() {
  std::uint64_t v = 0;
  for (unsigned shift = 0; shift < 64; shift += 7) {
    if (failed_ || pos_ >= in_.size()) {
      failed_ = true;
      return 0;
    }
    const auto b = static_cast<std::uint8_t>(in_[pos_++]);
    if (shift == 63 && (b & 0x7e) != 0) { // would overflow 64 bits
      failed_ = true;
      return 0;
    }
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0)
      return v;
  }
  failed_ = true;
  return 0;
}

std::uint64_t reader::count(std::uint64_t max) {
  const auto v = varint();
  if (v > max) {
    failed_ = true;
    return 0;
  }
  return v;
}

std::string_view reader::raw(std::size_t n) {
  if (failed_ || in_.size() - pos_ < n) {
    failed_ = true;
    return {};
  }
  auto out = in_.substr(pos_, n);
  pos_ += n;
  return out;
}

std::string_view reader::bytes(std::size_t max) {
  const auto n = count(max);
  return failed_ ? std::string_view{} : raw(static_cast<std::size_t>(n));
}

std::uint8_t reader::u8() {
  auto b = raw(1);
  return b.empty() ? 0 : static_cast<std::uint8_t>(b[0]);
}

std::size_t varint_size(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// --- version vector ----------------------------------------------------------

void encode(writer& w, const version_vector& v) {
  w.varint(v.size());
  for (const auto& [id, n] : v.entries()) {
    w.varint(id.value());
    w.varint(n);
  }
}

bool decode(reader& r, version_vector& v, const decode_limits& l) {
  v = {};
  const auto n = r.count(l.max_ids);
  for (std::uint64_t i = 0; i < n && !r.failed(); ++i) {
    const replica_id id{r.varint()};
    const auto c = r.varint();
    if (c == 0) // never encoded: zero entries are not stored
      r.fail();
    v.raise(id, c);
  }
  return !r.failed();
}

// --- clock entries: raw bitmap or run lengths ------------------------------

namespace {

std::string bitmap_bytes(const std::vector<std::uint64_t>& words) {
  std::string out;
  out.reserve(words.size() * 8);
  for (auto w : words)
    for (int i = 0; i < 8; ++i)
      out.push_back(static_cast<char>((w >> (8 * i)) & 0xff));
  while (!out.empty() && out.back() == 0)
    out.pop_back();
  return out;
}

// Alternating run lengths, starting with a run of clear bits (maybe 0).
std::vector<std::uint64_t> bitmap_runs(const std::vector<std::uint64_t>& words) {
  std::vector<std::uint64_t> runs;
  bool current = false;
  std::uint64_t len = 0;
  const std::uint64_t total = words.size() * 64;
  for (std::uint64_t i = 0; i < total; ++i) {
    const bool b = ((words[i / 64] >> (i % 64)) & 1u) != 0;
    if (b != current) {
      runs.push_back(len);
      current = b;
      len = 0;
    }
    ++len;
  }
  if (current) // the bitmap ends with set bits; trailing clear bits are implied
    runs.push_back(len);
  return runs;
}

// Sets bits [from, to) a word at a time.
void set_bit_range(std::vector<std::uint64_t>& words, std::uint64_t from, std::uint64_t to) {
  words.resize(static_cast<std::size_t>((to + 63) / 64), 0);
  while (from < to) {
    const auto bit = from % 64;
    const auto n = std::min<std::uint64_t>(64 - bit, to - from);
    const std::uint64_t mask = n == 64 ? ~std::uint64_t{0} : ((std::uint64_t{1} << n) - 1) << bit;
    words[from / 64] |= mask;
    from += n;
  }
}

} // namespace

void encode(writer& w, const clock_entry& e) {
  w.varint(e.base());
  if (e.bits().empty()) {
    w.varint(0);
    return;
  }
  const std::string raw = bitmap_bytes(e.bits());
  const auto runs = bitmap_runs(e.bits());
  std::size_t runs_size = 0;
  for (auto x : runs)
    runs_size += varint_size(x);
  if (runs_size + varint_size(runs.size() << 1 | 1) < raw.size() + varint_size(raw.size() << 1)) {
    w.varint(runs.size() << 1 | 1);
    for (auto x : runs)
      w.varint(x);
  } else {
    w.varint(raw.size() << 1);
    w.raw(raw);
  }
}

bool decode(reader& r, clock_entry& e, const decode_limits& l) {
  const auto base = r.varint();
  const auto head = r.varint();
  const auto len = head >> 1;
  const std::uint64_t max_bits = static_cast<std::uint64_t>(l.max_bitmap_bytes) * 8;
  std::vector<std::uint64_t> words;
  if ((head & 1u) == 0) {
    if (len > l.max_bitmap_bytes) {
      r.fail();
      return false;
    }
    auto raw = r.raw(static_cast<std::size_t>(len));
    words.assign((raw.size() + 7) / 8, 0);
    for (std::size_t i = 0; i < raw.size(); ++i)
      words[i / 8] |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(raw[i])) << (8 * (i % 8));
  } else {
    if (len > max_bits) {
      r.fail();
      return false;
    }
    std::uint64_t pos = 0;
    bool set = false;
    for (std::uint64_t i = 0; i < len && !r.failed(); ++i, set = !set) {
      const auto run = r.varint();
      if (run > max_bits - pos) {
        r.fail();
        break;
      }
      if (set && run > 0)
        set_bit_range(words, pos, pos + run);
      pos += run;
    }
  }
  if (r.failed())
    return false;
  if (base > ~std::uint64_t{0} - max_bits) { // counters must not overflow
    r.fail();
    return false;
  }
  e = clock_entry{base, std::move(words)};
  return true;
}

void encode(writer& w, const node_clock& c) {
  w.varint(c.size());
  for (const auto& [id, e] : c.entries()) {
    w.varint(id.value());
    encode(w, e);
  }
}

bool decode(reader& r, node_clock& c, const decode_limits& l) {
  c = {};
  const auto n = r.count(l.max_ids);
  for (std::uint64_t i = 0; i < n && !r.failed(); ++i) {
    const replica_id id{r.varint()};
    clock_entry e;
    if (!decode(r, e, l))
      return false;
    if (c.find(id) != nullptr) { // duplicate ids are malformed
      r.fail();
      return false;
    }
    c.join_entry(id, e);
  }
  return !r.failed();
}

// --- containers --------------------------------------------------------------

void encode(writer& w, const container& c) {
  w.varint(c.dots().size());
  for (const auto& [d, s] : c.dots()) {
    w.varint(d.id.value());
    w.varint(d.n.value());
    w.varint(s.bytes.size() << 1 | (s.deleted ? 1u : 0u));
    w.raw(s.bytes);
  }
  encode(w, c.context());
}

bool decode(reader& r, container& c, const decode_limits& l) {
  c = {};
  const auto n = r.count(l.max_dots);
  for (std::uint64_t i = 0; i < n && !r.failed(); ++i) {
    const dot d{replica_id{r.varint()}, counter{r.varint()}};
    const auto head = r.varint();
    if ((head >> 1) > l.max_value_bytes || d.n.value() == 0) {
      r.fail();
      break;
    }
    auto b = r.raw(static_cast<std::size_t>(head >> 1));
    if (r.failed())
      break;
    if (c.holds(d)) {
      r.fail();
      break;
    }
    version_vector keep = c.context();
    c.add(d, sibling{(head & 1u) != 0, std::string{b}});
    c.context() = keep; // the context is read below, not implied by dots
  }
  version_vector ctx;
  if (r.failed() || !decode(r, ctx, l))
    return false;
  c.context() = std::move(ctx);
  return true;
}

// --- watermark, deltas, requests, replies ----------------------------------

void encode(writer& w, const watermark& m) {
  w.varint(m.members().size());
  for (auto id : m.members())
    w.varint(id.value());
  w.varint(m.rows().size());
  for (const auto& [origin, cols] : m.rows()) {
    w.varint(origin.value());
    w.varint(cols.size());
    for (const auto& [member, n] : cols) {
      w.varint(member.value());
      w.varint(n);
    }
  }
}

bool decode(reader& r, watermark& m, const decode_limits& l) {
  m = {};
  std::vector<replica_id> members;
  const auto nm = r.count(l.max_ids);
  for (std::uint64_t i = 0; i < nm && !r.failed(); ++i)
    members.emplace_back(r.varint());
  m.set_members(members);
  const auto rows = r.count(l.max_ids);
  for (std::uint64_t i = 0; i < rows && !r.failed(); ++i) {
    const replica_id origin{r.varint()};
    const auto cols = r.count(l.max_ids);
    for (std::uint64_t j = 0; j < cols && !r.failed(); ++j) {
      const replica_id member{r.varint()};
      m.raise(origin, member, r.varint());
    }
  }
  return !r.failed();
}

void encode(writer& w, const delta& d) {
  w.varint(d.from.value());
  encode(w, d.clock);
  w.varint(d.entries.size());
  for (const auto& [k, c, resolves] : d.entries) {
    w.bytes(k);
    encode(w, c);
    w.varint(resolves.size());
    for (const dot& x : resolves) {
      w.varint(x.id.value());
      w.varint(x.n.value());
    }
  }
}

bool decode(reader& r, delta& d, const decode_limits& l) {
  d = {};
  d.from = replica_id{r.varint()};
  if (!decode(r, d.clock, l))
    return false;
  const auto n = r.count(l.max_entries);
  for (std::uint64_t i = 0; i < n && !r.failed(); ++i) {
    key_type k{r.bytes(l.max_key_bytes)};
    container c;
    if (r.failed() || !decode(r, c, l))
      return false;
    std::vector<dot> resolves;
    const auto nr = r.count(l.max_entries);
    for (std::uint64_t j = 0; j < nr && !r.failed(); ++j)
      resolves.push_back(dot{replica_id{r.varint()}, counter{r.varint()}});
    d.entries.push_back({std::move(k), std::move(c), std::move(resolves)});
  }
  return !r.failed();
}

void encode(writer& w, const sync_request& q) {
  w.varint(q.from.value());
  encode(w, q.clock);
}

bool decode(reader& r, sync_request& q, const decode_limits& l) {
  q = {};
  q.from = replica_id{r.varint()};
  return decode(r, q.clock, l);
}

void encode(writer& w, const sync_reply& q) {
  encode(w, q.changes);
  encode(w, q.marks);
}

bool decode(reader& r, sync_reply& q, const decode_limits& l) {
  q = {};
  return decode(r, q.changes, l) && decode(r, q.marks, l);
}

// --- byte accounting ---------------------------------------------------------

byte_split split_of(const container& c) {
  byte_split s;
  for (const auto& [d, v] : c.dots())
    s.data += v.bytes.size();
  s.key_meta = encoded_size(c) - s.data;
  return s;
}

byte_split split_of(const delta& d) {
  byte_split s;
  std::size_t entries = 0;
  for (const auto& [k, c, resolves] : d.entries) { // resolves count as sync metadata
    const auto cs = split_of(c);
    s.data += k.size() + cs.data;
    s.key_meta += varint_size(k.size()) + cs.key_meta;
    entries += varint_size(k.size()) + k.size() + cs.total();
  }
  s.sync_meta = encoded_size(d) - entries;
  return s;
}

byte_split split_of(const sync_reply& r) {
  byte_split s = split_of(r.changes);
  s.sync_meta += encoded_size(r.marks);
  return s;
}

byte_split split_of(const sync_request& r) {
  byte_split s;
  s.sync_meta = encoded_size(r);
  return s;
}

} // namespace kith::causality
