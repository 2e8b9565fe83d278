#pragma once

// The key layout of the store: one leading byte per kind of row, so that
// one ordered keyspace (RocksDB or a std::map) holds everything and a kind
// can be scanned or dropped as a range.
//
// Format 2. Rows of one topic name it by its number <n:4> (big-endian,
// below 2^24, so its first byte is 0), not by its id (38-62 bytes): the
// id was repeated in every row, and in memory and on disk it made up most
// of each key.
//
//   m<name>                         meta (format version, index version, own binding)
//   t<topic>                        topic descriptor
//   n<topic>                        the topic's number -> <n:4>
//   k<n:4>                          topic clock
//   w<n:4>                          topic watermark
//   c<n:4><key>                     stored (stripped) container
//   u<n:4><key>                     key whose stored context is not empty
//   d<n:4><rid:8><c:8>              dot-key map row -> key
//   s<n:4><rid:8><c:8>              header of a dot not held, kept for peers
//   b<n:4><rid:8><first:8>          signed batch
//   v<n:4><rid:8>                   newest writer summary of replica rid
//   o<n:4><rid:8>                   full resync owed by member rid -> our base:8
//   r<rid:8>                        replica binding
//   i...                            derived indexes (see index rows in store.cpp)
//
// Format 1 (read only to migrate it, see migrate.cpp) had the topic id and
// a 0 byte where format 2 has <n:4>, and k<topic>, w<topic>, no n rows.

#include "kith/causality/codec.hpp"
#include "kith/causality/types.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kith::storage::layout {

inline void put_be64(std::string& s, std::uint64_t v) {
  for (int i = 7; i >= 0; --i)
    s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline std::uint64_t get_be64(std::string_view s, std::size_t at) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i)
    v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

inline std::string meta(std::string_view name) { return "m" + std::string(name); }
/// The value of a version row (format, index): a varint.
inline std::string version_record(std::uint64_t v) {
  causality::writer w;
  w.varint(v);
  return w.take();
}
inline std::string topic_row(std::string_view t) { return "t" + std::string(t); }
inline std::string number_row(std::string_view t) { return "n" + std::string(t); }

/// A topic's number as it appears in its rows.
class topic_rows {
public:
  /// Numbers stay below this, so a number's first byte is 0 and can never
  /// be the first byte of a topic id ("feed/..." or "topic/...").
  static constexpr std::uint32_t limit = 1u << 24;
  explicit topic_rows(std::uint32_t n) {
    for (int i = 3; i >= 0; --i) {
      b_[static_cast<std::size_t>(i)] = static_cast<char>(n & 0xff);
      n >>= 8;
    }
  }
  /// From a row's 4 bytes (nullopt when they are not a number).
  [[nodiscard]] static std::optional<topic_rows> parse(std::string_view s) {
    if (s.size() < 4 || s[0] != 0)
      return std::nullopt;
    std::uint32_t n = 0;
    for (std::size_t i = 0; i < 4; ++i)
      n = (n << 8) | static_cast<unsigned char>(s[i]);
    return topic_rows{n};
  }
  [[nodiscard]] std::uint32_t number() const {
    std::uint32_t n = 0;
    for (char c : b_)
      n = (n << 8) | static_cast<unsigned char>(c);
    return n;
  }
  [[nodiscard]] std::string_view view() const { return {b_.data(), b_.size()}; }
  static constexpr std::size_t size = 4;

private:
  std::array<char, 4> b_{};
};

inline std::string clock_row(const topic_rows& t) { return "k" + std::string(t.view()); }
inline std::string marks_row(const topic_rows& t) { return "w" + std::string(t.view()); }

inline std::string topic_prefix(char kind, const topic_rows& t) {
  std::string s(1, kind);
  s.append(t.view());
  return s;
}
inline std::string key_row(char kind, const topic_rows& t, std::string_view k) {
  std::string s = topic_prefix(kind, t);
  s.append(k);
  return s;
}
inline std::string dot_row(char kind, const topic_rows& t, causality::dot d) {
  std::string s = topic_prefix(kind, t);
  put_be64(s, d.id.value());
  put_be64(s, d.n.value());
  return s;
}
inline std::string batch_row(const topic_rows& t, causality::replica_id r, std::uint64_t first) {
  return dot_row('b', t, causality::dot{r, causality::counter{first}});
}
/// A writer's own summary of replica r (signer r), or one a later replica
/// of the same writer vouched with (signer named after r).
inline std::string summary_row(const topic_rows& t, causality::replica_id r,
                               causality::replica_id signer) {
  std::string s = topic_prefix('v', t);
  put_be64(s, r.value());
  if (signer != r)
    put_be64(s, signer.value());
  return s;
}
inline std::string owed_row(const topic_rows& t, causality::replica_id r) {
  std::string s = topic_prefix('o', t);
  put_be64(s, r.value());
  return s;
}
inline std::string binding_row(causality::replica_id r) {
  std::string s = "r";
  put_be64(s, r.value());
  return s;
}

} // namespace kith::storage::layout
