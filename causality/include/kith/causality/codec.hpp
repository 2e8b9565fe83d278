#pragma once

#include "kith/causality/anti_entropy.hpp"
#include "kith/causality/container.hpp"
#include "kith/causality/node_clock.hpp"
#include "kith/causality/version_vector.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace kith::causality {

/// Limits applied when decoding untrusted bytes. Every count read from the
/// input is checked against these before anything is allocated.
struct decode_limits {
  std::size_t max_ids = 1u << 16;            // entries of one clock or context
  std::size_t max_bitmap_bytes = 1u << 22;   // one clock entry's bitmap (4 MiB)
  std::size_t max_dots = 1u << 12;           // siblings in one container
  std::size_t max_value_bytes = 1u << 20;    // one value
  std::size_t max_key_bytes = 1u << 12;      // one key
  std::size_t max_entries = 1u << 20;        // keys in one delta
};

/// Bytes of an encoding split by what they carry, the research metric:
/// data (keys and values), per-key causality metadata (dots, contexts,
/// markers, per-key framing) and sync metadata (clocks, watermarks,
/// hashes, message framing).
struct byte_split {
  std::uint64_t data = 0;
  std::uint64_t key_meta = 0;
  std::uint64_t sync_meta = 0;
  [[nodiscard]] std::uint64_t total() const { return data + key_meta + sync_meta; }
  byte_split& operator+=(const byte_split& o) {
    data += o.data;
    key_meta += o.key_meta;
    sync_meta += o.sync_meta;
    return *this;
  }
};

/// Appends LEB128 varints and raw bytes to a string.
class writer {
public:
  void varint(std::uint64_t v);
  void bytes(std::string_view b); // length-prefixed
  void raw(std::string_view b);
  void u8(std::uint8_t v) { buf_.push_back(static_cast<char>(v)); }
  [[nodiscard]] std::size_t size() const { return buf_.size(); }
  [[nodiscard]] const std::string& str() const { return buf_; }
  std::string take() { return std::move(buf_); }

private:
  std::string buf_;
};

/// Reads what writer wrote. Any overrun or limit violation sets failed()
/// and makes every later read return zero/empty; callers check once at the
/// end. Never throws, never reads out of bounds.
class reader {
public:
  explicit reader(std::string_view in) : in_(in) {}
  std::uint64_t varint();
  /// A varint that must be <= max (counts that size allocations).
  std::uint64_t count(std::uint64_t max);
  std::string_view bytes(std::size_t max);
  std::string_view raw(std::size_t n);
  std::uint8_t u8();
  void fail() { failed_ = true; }
  [[nodiscard]] bool failed() const { return failed_; }
  [[nodiscard]] bool at_end() const { return pos_ == in_.size(); }
  [[nodiscard]] std::size_t position() const { return pos_; }

private:
  std::string_view in_;
  std::size_t pos_ = 0;
  bool failed_ = false;
};

[[nodiscard]] std::size_t varint_size(std::uint64_t v);

// Each encode appends to w; each decode returns false on malformed input.
// A clock entry's bitmap goes either raw (trimmed bytes) or as alternating
// run lengths of clear and set bits, whichever is shorter.
void encode(writer& w, const version_vector& v);
void encode(writer& w, const clock_entry& e);
void encode(writer& w, const node_clock& c);
void encode(writer& w, const container& c);
void encode(writer& w, const watermark& m);
void encode(writer& w, const delta& d);
void encode(writer& w, const sync_request& r);
void encode(writer& w, const sync_reply& r);

[[nodiscard]] bool decode(reader& r, version_vector& v, const decode_limits& l = {});
[[nodiscard]] bool decode(reader& r, clock_entry& e, const decode_limits& l = {});
[[nodiscard]] bool decode(reader& r, node_clock& c, const decode_limits& l = {});
[[nodiscard]] bool decode(reader& r, container& c, const decode_limits& l = {});
[[nodiscard]] bool decode(reader& r, watermark& m, const decode_limits& l = {});
[[nodiscard]] bool decode(reader& r, delta& d, const decode_limits& l = {});
[[nodiscard]] bool decode(reader& r, sync_request& q, const decode_limits& l = {});
[[nodiscard]] bool decode(reader& r, sync_reply& q, const decode_limits& l = {});

/// Encoded size of anything encode() accepts.
template <class T>
[[nodiscard]] std::size_t encoded_size(const T& x) {
  writer w;
  encode(w, x);
  return w.size();
}

/// Encodes x and decodes it from the whole string (trailing bytes fail).
template <class T>
[[nodiscard]] bool decode_all(std::string_view bytes, T& out, const decode_limits& l = {}) {
  reader r{bytes};
  return decode(r, out, l) && !r.failed() && r.at_end();
}

/// Split of a container's encoding: the value bytes are data, the rest
/// (dots, flags, lengths, context) per-key metadata.
[[nodiscard]] byte_split split_of(const container& c);
/// Split of a delta or reply: keys and values are data, containers' other
/// bytes per-key metadata, clocks, watermarks and headers sync metadata.
[[nodiscard]] byte_split split_of(const delta& d);
[[nodiscard]] byte_split split_of(const sync_reply& r);
[[nodiscard]] byte_split split_of(const sync_request& r);

} // namespace kith::causality
