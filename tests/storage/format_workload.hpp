#pragma once

// A small fixed history on two stores (Ann and Bob, who follows her),
// touching every kind of row the store writes: containers, unstripped
// keys, dot-key rows, kept headers, batches, bindings, watermarks, clocks
// and index rows. Run by the format tests, and by the fixture dumper to
// record what a given build writes (tests/storage/data/README.md).

#include "kith/storage/documents.hpp"
#include "kith/storage/store.hpp"

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace kith::test::format {

inline protocol::identity person(std::uint64_t n) {
  protocol::key_seed s{};
  for (int i = 0; i < 8; ++i)
    s[i] = static_cast<std::uint8_t>(n >> (8 * i));
  s[31] = 0x5a;
  return protocol::identity::from_seed(s);
}

inline protocol::identity ann() { return person(1); }
inline protocol::identity bob() { return person(2); }

/// A kv the caller keeps: the store owns this view, the test the data.
class borrowed_kv final : public storage::kv_store {
public:
  /// With `commits`, counts the commits that reach the data there.
  explicit borrowed_kv(storage::kv_store& kv, int commits_allowed = -1,
                       std::uint64_t* commits = nullptr)
      : kv_(kv), left_(commits_allowed), commits_(commits) {}
  storage::result<std::optional<std::string>> get(std::string_view k) const override {
    return kv_.get(k);
  }
  storage::status scan(std::string_view from, std::string_view to,
                       const visitor& fn) const override {
    return kv_.scan(from, to, fn);
  }
  storage::result<std::optional<std::pair<std::string, std::string>>>
  floor(std::string_view k, std::string_view lo) const override {
    return kv_.floor(k, lo);
  }
  /// Fails every commit after the allowed number (a crash at that point:
  /// the failed batch and every later one never reach the data).
  storage::status commit(const storage::kv_batch& b, bool sync) override {
    if (left_ == 0)
      return storage::error{storage::errc::io, "simulated crash before this commit"};
    if (left_ > 0)
      --left_;
    if (commits_)
      ++*commits_;
    return kv_.commit(b, sync);
  }
  std::uint64_t memory_usage() const override { return kv_.memory_usage(); }

private:
  storage::kv_store& kv_;
  int left_;
  std::uint64_t* commits_;
};

inline void need(bool ok, const std::string& what) {
  if (!ok)
    throw std::runtime_error("format workload: " + what);
}

template <class R>
auto take(R&& r, const std::string& what) {
  if (!r)
    throw std::runtime_error("format workload: " + what + ": " + r.err().message);
  return std::move(*r);
}

inline std::unique_ptr<storage::store> open(storage::kv_store& kv, const protocol::identity& who,
                                            std::uint64_t nonce) {
  storage::store_options o;
  o.sync = false;
  o.replica_nonce = nonce;
  return take(storage::store::open(std::make_unique<borrowed_kv>(kv), who, o), "open");
}

inline void pull(storage::store& to, storage::store& from, const std::string& topic) {
  auto req = take(to.make_request(topic), "request");
  auto rep = take(from.answer(topic, req), "answer");
  take(to.apply(rep), "apply");
}

/// The history. Deterministic: fixed identities, replica nonces and times.
inline void run(storage::kv_store& ann_kv, storage::kv_store& bob_kv) {
  auto a = open(ann_kv, ann(), 11);
  auto b = open(bob_kv, bob(), 22);
  storage::documents da(*a), db(*b);
  const std::string feed = a->feed_topic_id();
  const std::string bob_id = protocol::to_text(bob().pub());
  const std::string me = protocol::to_text(ann().pub());
  need(b->add_topic(protocol::feed_topic(ann().pub())).ok(), "follow");
  take(a->join_member(feed, b->self_id()), "member");
  take(da.put(me + "/profile", {{"name", "Ann"}, {"bio", "first"}}, 1000), "profile");
  auto first = take(da.post("hello #kith @" + bob_id, 1100), "post 1");
  take(da.post("second #kith #more", 1200), "post 2");
  auto doomed = take(da.post("to be deleted #kith", 1300), "post 3");
  pull(*b, *a, feed);
  // An overwrite and a delete Bob has not seen: Ann keeps their headers.
  take(da.del(doomed, std::nullopt, 1400), "delete");
  take(da.put(me + "/profile", {{"name", "Ann B"}}, 1500), "rename");
  take(db.post("hi @" + me + " #reply", 1600, first), "reply");
  pull(*b, *a, feed);
  take(da.post("third, unseen by Bob #kith", 1700), "post 4");
}

} // namespace kith::test::format
