#pragma once

// What the fuzz targets and the seed-corpus generator share: fixed
// identities, a small replicated world built from them, and helpers to
// open a fresh in-memory store per input. Everything is derived from
// constant seeds, so the seeds the generator writes are exactly the
// inputs the targets can verify (same keys, same replica ids, same
// topics), and a crash input replays the same way on any machine.

#include "kith/protocol/channel.hpp"
#include "kith/protocol/messages.hpp"
#include "kith/storage/documents.hpp"
#include "kith/storage/store.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kith::fuzz {

/// Aborts with a message: the way a target reports a broken invariant
/// (libFuzzer saves the input as a crash).
[[noreturn]] inline void invariant_failed(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "fuzz invariant violated: %s%s%s\n", what, detail.empty() ? "" : ": ",
               detail.c_str());
  std::abort();
}

inline protocol::key_seed seed_of(std::uint64_t n, std::uint8_t tag = 0x5a) {
  protocol::key_seed s{};
  for (int i = 0; i < 8; ++i)
    s[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
  s[31] = tag;
  return s;
}

inline protocol::identity person(std::uint64_t n) {
  return protocol::identity::from_seed(seed_of(n));
}

/// A document key: "<author id>/<path>\0<predicate>".
inline std::string doc_key(const protocol::identity& who, const std::string& path,
                           const std::string& pred) {
  std::string k = protocol::to_text(who.pub()) + "/" + path;
  k.push_back('\0');
  k += pred;
  return k;
}

/// The contents of an in-memory kv, to clone a prepared store cheaply.
using kv_rows = std::vector<std::pair<std::string, std::string>>;

inline kv_rows snapshot(const storage::kv_store& kv) {
  kv_rows rows;
  (void)kv.scan("", "", [&](std::string_view k, std::string_view v) {
    rows.emplace_back(std::string(k), std::string(v));
    return true;
  });
  return rows;
}

inline std::unique_ptr<storage::kv_store> restore(const kv_rows& rows) {
  auto kv = storage::make_memory_kv();
  storage::kv_batch b;
  for (const auto& [k, v] : rows)
    b.put(k, v);
  if (!kv->commit(b, false))
    invariant_failed("memory kv refused a batch");
  return kv;
}

inline storage::store_options store_opts(std::uint64_t nonce) {
  storage::store_options o;
  o.sync = false;
  o.replica_nonce = nonce;
  return o;
}

/// Opens a store for `who` on a fresh memory kv (seeded replica nonce).
inline std::unique_ptr<storage::store> fresh_store(const protocol::identity& who,
                                                   std::uint64_t nonce) {
  auto s = storage::store::open(storage::make_memory_kv(), who, store_opts(nonce));
  if (!s)
    invariant_failed("cannot open a memory store", s.err().message);
  return std::move(s.value());
}

/// Opens a store over a copy of `rows` (see prepare()).
inline std::unique_ptr<storage::store> reopen(const kv_rows& rows, const protocol::identity& who,
                                              std::uint64_t nonce) {
  auto s = storage::store::open(restore(rows), who, store_opts(nonce));
  if (!s)
    invariant_failed("cannot reopen a prepared store", s.err().message);
  return std::move(s.value());
}

template <class T>
T must(storage::result<T> r, const char* what) {
  if (!r)
    invariant_failed(what, r.err().message);
  return std::move(r.value());
}

inline void must(const storage::status& s, const char* what) {
  if (!s)
    invariant_failed(what, s.err().message);
}

// --- the secure channel ----------------------------------------------------------

/// The two ends fuzz_frame uses: a initiates, b responds. Fixed ephemeral
/// seeds make every handshake byte reproducible.
struct channel_parties {
  protocol::identity a = person(1);
  protocol::identity b = person(2);
  protocol::key_seed eph_a = seed_of(1, 0xe1);
  protocol::key_seed eph_b = seed_of(2, 0xe2);
};

/// Small frame limits, so that length checks are reachable with short inputs.
inline protocol::channel_limits frame_limits() {
  protocol::channel_limits l;
  l.max_frame_bytes = 4096;
  l.max_buffered_bytes = 4096 + 64;
  return l;
}

// --- the replicated world -----------------------------------------------------

/// Replica nonces: fixed, so replica ids are too.
inline constexpr std::uint64_t receiver_nonce = 1000;
inline constexpr std::uint64_t w1_nonce = 11, w2_nonce = 22, w3_nonce = 33;
inline constexpr std::uint64_t base_time_ms = 1'700'000'000'000;

/// Four people: `receiver` is the node under test (its store is what a
/// fuzzed reply is applied to); w1..w3 write. Topics: each writer's feed,
/// a shared topic of w1 that w2 may write, an open topic created by w3.
/// The receiver already holds w1's first writes, so fuzzed replies meet
/// existing data, stored batches and overwritten headers.
struct world {
  protocol::identity receiver = person(100);
  protocol::identity w1 = person(1);
  protocol::identity w2 = person(2);
  protocol::identity w3 = person(3);
  protocol::topic_descriptor feed1 = protocol::feed_topic(w1.pub());
  protocol::topic_descriptor feed2 = protocol::feed_topic(w2.pub());
  protocol::topic_descriptor shared =
      protocol::make_topic(w1, protocol::topic_kind::shared, "group", {w2.pub()}, 7);
  protocol::topic_descriptor open =
      protocol::make_topic(w3, protocol::topic_kind::open, "open", {}, 9);

  std::unique_ptr<storage::store> s1 = fresh_store(w1, w1_nonce);
  std::unique_ptr<storage::store> s2 = fresh_store(w2, w2_nonce);
  std::unique_ptr<storage::store> s3 = fresh_store(w3, w3_nonce);

  /// The receiver's store rows after setup (clone per input with restore()).
  kv_rows receiver_rows;
  /// Signed replies the receiver has not applied yet: valid inputs.
  std::vector<std::pair<std::string, protocol::data_msg>> fresh_data;

  world() {
    for (auto* s : {s1.get(), s2.get(), s3.get()})
      for (const auto* t : {&feed1, &feed2, &shared, &open})
        must(s->add_topic(*t), "add_topic");
    // Keep a view of the receiver's kv to snapshot it (the store owns it).
    auto recv_kv = storage::make_memory_kv();
    const storage::kv_store* recv_rows = recv_kv.get();
    auto recv = must(storage::store::open(std::move(recv_kv), receiver, store_opts(receiver_nonce)),
                     "open the receiver's store");
    for (const auto* t : {&feed1, &feed2, &shared, &open})
      must(recv->add_topic(*t), "add_topic");

    // w1: two documents in its feed, applied by the receiver now.
    auto first = must(s1->write(feed1.id,
                                {{doc_key(w1, "notes/1", "title"), std::string("\"hello\""), {}},
                                 {doc_key(w1, "notes/1", "body"), std::string("\"text\""), {}},
                                 {doc_key(w1, "notes/2", "title"), std::string("\"second\""), {}}},
                                base_time_ms),
                      "w1 write");
    must(recv->apply(first), "receiver applies w1's first writes");

    // What the receiver has not seen: w1 overwrites and deletes, w2 and w3
    // write to the topics they may write.
    auto ctx = must(s1->read(feed1.id, doc_key(w1, "notes/1", "title")), "read").context;
    auto over = must(s1->write(feed1.id,
                               {{doc_key(w1, "notes/1", "title"), std::string("\"hello again\""), ctx},
                                {doc_key(w1, "notes/2", "title"), std::nullopt,
                                 must(s1->read(feed1.id, doc_key(w1, "notes/2", "title")), "read")
                                     .context}},
                               base_time_ms + 1000),
                     "w1 overwrite");
    add("w1-push-overwrite", protocol::data_kind::push, std::move(over));
    auto g = must(s2->write(shared.id,
                            {{doc_key(w2, "plans/1", "when"), std::string("\"monday\""), {}},
                             {doc_key(w2, "plans/1", "where"), std::string("{\"room\":3}"), {}}},
                            base_time_ms + 2000),
                  "w2 shared write");
    add("w2-push-shared", protocol::data_kind::push, std::move(g));
    auto f2 = must(s2->write(feed2.id, {{doc_key(w2, "statuses/1", "text"), std::string("\"#hi @x\""), {}}},
                             base_time_ms + 2500),
                   "w2 feed write");
    add("w2-push-feed", protocol::data_kind::push, std::move(f2));
    auto o = must(s3->write(open.id, {{doc_key(w3, "wall/1", "text"), std::string("[1,2,3]"), {}}},
                            base_time_ms + 3000),
                  "w3 open write");
    add("w3-push-open", protocol::data_kind::push, std::move(o));

    // An anti-entropy answer of w1 to the receiver's clock, and a resync page.
    auto req = must(recv->make_request(feed1.id), "make_request");
    add("w1-answer", protocol::data_kind::answer, must(s1->answer(feed1.id, req), "answer"));
    auto page = must(s1->page(feed1.id, "", 16), "page");
    add("w1-resync-page", protocol::data_kind::resync, std::move(page.reply));

    receiver_rows = snapshot(*recv_rows);
  }

  /// Opens the receiver's store as it was after setup.
  [[nodiscard]] std::unique_ptr<storage::store> receiver_store() const {
    return reopen(receiver_rows, receiver, receiver_nonce);
  }

  /// The writers a fuzz input may "sign as" (never the receiver itself:
  /// nobody else holds its key).
  [[nodiscard]] const protocol::identity* writer_of(const protocol::public_key& pk) const {
    for (const auto* id : {&w1, &w2, &w3})
      if (id->pub() == pk)
        return id;
    return nullptr;
  }
  [[nodiscard]] std::optional<std::pair<const protocol::identity*, protocol::replica_binding>>
  writer_of(causality::replica_id rid) const {
    for (const auto* s : {s1.get(), s2.get(), s3.get()})
      if (s->self_id() == rid)
        return std::make_pair(writer_of(s->author()), s->binding());
    return std::nullopt;
  }

private:
  void add(const char* name, protocol::data_kind kind, protocol::signed_reply r) {
    protocol::data_msg m;
    m.kind = kind;
    m.last = true;
    m.reply = std::move(r);
    fresh_data.emplace_back(name, std::move(m));
  }
};

} // namespace kith::fuzz
