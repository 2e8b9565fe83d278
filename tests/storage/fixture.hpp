#pragma once

#include "kith/storage/documents.hpp"
#include "kith/storage/store.hpp"

#include "format_workload.hpp"

#include "support/seed.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>

namespace kith::test {

/// A fresh directory under the system temp dir, removed at scope exit.
class temp_dir {
public:
  temp_dir() {
    static int n = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("kith-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  [[nodiscard]] std::string str() const { return path_.string(); }
  [[nodiscard]] std::string sub(const std::string& s) const { return (path_ / s).string(); }

private:
  std::filesystem::path path_;
};

enum class backend { memory, rocksdb };

inline const char* name_of(backend b) {
  return b == backend::memory ? "memory" : "rocksdb";
}

using format::person; // the identities of the tests, seeded by number

/// Opens a store for `who` on the given backend (a sub-directory of dir
/// for RocksDB), with a seeded replica nonce.
inline std::unique_ptr<storage::store> open_store(backend b, const protocol::identity& who,
                                                  std::uint64_t nonce, const temp_dir& dir) {
  storage::store_options o;
  o.sync = false;
  o.replica_nonce = nonce;
  // The in-memory stores of a test share their values, as the
  // simulator's do: the suite checks that sharing changes nothing.
  static const auto pool = std::make_shared<storage::value_pool>();
  auto s = b == backend::memory
               ? storage::store::open(storage::make_memory_kv(pool), who, o)
               : storage::store::open(dir.sub("n" + std::to_string(nonce)), who, true, o);
  INFO((s ? std::string() : s.err().message));
  REQUIRE(s);
  return std::move(s.value());
}

/// A document key: "<author id>/<path>\0<predicate>".
inline std::string doc_key(const protocol::identity& who, const std::string& path,
                           const std::string& pred) {
  std::string k = protocol::to_text(who.pub()) + "/" + path;
  k.push_back('\0');
  k += pred;
  return k;
}

/// One pull: a asks b and applies the answer.
inline void pull(storage::store& a, storage::store& b, const std::string& topic) {
  auto req = a.make_request(topic);
  REQUIRE(req);
  auto rep = b.answer(topic, *req);
  INFO((rep ? std::string() : rep.err().message));
  REQUIRE(rep);
  auto st = a.apply(*rep);
  INFO((st ? std::string() : st.err().message));
  REQUIRE(st);
}

inline std::vector<std::string> values_of(storage::store& s, const std::string& topic,
                                          const std::string& key) {
  auto v = s.read(topic, key);
  REQUIRE(v);
  std::vector<std::string> out;
  for (const auto& sib : v->siblings)
    out.push_back(sib.value);
  std::sort(out.begin(), out.end());
  return out;
}

/// After a resync that must drop an author's deleted post: `gone` is
/// gone, `kept` (text "kept") is still there, and the author index lists
/// only it.
inline void check_only_kept(storage::store& s, storage::documents& docs, const std::string& topic,
                            const std::string& gone, const std::string& kept,
                            const protocol::identity& author) {
  CHECK(docs.get(gone, topic)->is_null());
  auto still = docs.get(kept, topic);
  REQUIRE(still);
  CHECK((*still)["doc"]["text"] == "kept");
  auto tagged = s.by_author(author.pub(), 10);
  REQUIRE(tagged);
  CHECK(tagged->size() == 1); // the index follows
}

/// Ann, an author, and Bob, a follower, each with a signed store in memory.
struct author_and_follower {
  temp_dir dir;
  protocol::identity ann = person(1), bob = person(2);
  std::unique_ptr<storage::store> a = open_store(backend::memory, ann, 1, dir);
  std::unique_ptr<storage::store> b = open_store(backend::memory, bob, 2, dir);
  storage::documents da{*a}, db{*b};
  const std::string feed = a->feed_topic_id();
};

} // namespace kith::test
