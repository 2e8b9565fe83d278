#pragma once

// The key layout of the store: one leading byte per kind of row, so that
// one ordered keyspace (RocksDB or a std::map) holds everything and a kind
// can be scanned or dropped as a range.
//
//   m<name>                         meta (format version, index version, own binding)
//   t<topic>                        topic descriptor
//   k<topic>                        topic clock
//   w<topic>                        topic watermark
//   c<topic>\0<key>                 stored (stripped) container
//   u<topic>\0<key>                 key whose stored context is not empty
//   d<topic>\0<rid:8><n:8>          dot-key map row -> key
//   s<topic>\0<rid:8><n:8>          header of a dot not held, kept for peers
//   b<topic>\0<rid:8><first:8>      signed batch
//   v<topic>\0<rid:8>               newest writer summary of replica rid
//   o<topic>\0<rid:8>               full resync owed by member rid -> our base:8
//   r<rid:8>                        replica binding
//   i...                            derived indexes (see index rows below)

#include "kith/causality/types.hpp"

#include <cstdint>
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
inline std::string topic_row(std::string_view t) { return "t" + std::string(t); }
inline std::string clock_row(std::string_view t) { return "k" + std::string(t); }
inline std::string marks_row(std::string_view t) { return "w" + std::string(t); }

inline std::string topic_prefix(char kind, std::string_view t) {
  std::string s(1, kind);
  s.append(t);
  s.push_back('\0');
  return s;
}
inline std::string key_row(char kind, std::string_view t, std::string_view k) {
  return topic_prefix(kind, t) + std::string(k);
}
inline std::string dot_row(char kind, std::string_view t, causality::dot d) {
  std::string s = topic_prefix(kind, t);
  put_be64(s, d.id.value());
  put_be64(s, d.n.value());
  return s;
}
inline std::string batch_row(std::string_view t, causality::replica_id r, std::uint64_t first) {
  return dot_row('b', t, causality::dot{r, causality::counter{first}});
}
inline std::string summary_row(std::string_view t, causality::replica_id r) {
  std::string s = topic_prefix('v', t);
  put_be64(s, r.value());
  return s;
}
inline std::string owed_row(std::string_view t, causality::replica_id r) {
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
