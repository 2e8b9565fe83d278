// The two Merkle baselines (per-key dotted version vectors, per-key plain
// version vectors) behind replica_scheme, and the Merkle pull they share.

#include "kith/causality/merkle.hpp"
#include "kith/causality/scheme.hpp"

#include <catch2/catch.hpp>

#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

using namespace kith::causality;

namespace {

const char* name_of(scheme_kind k) {
  return k == scheme_kind::dvv ? "dvv" : k == scheme_kind::vv ? "vv" : "ndc";
}

scheme_options small_tree() {
  scheme_options o;
  o.merkle_leaves = 64;
  o.merkle_fanout = 4;
  return o;
}

std::unique_ptr<replica_scheme> make(scheme_kind k, std::uint64_t id,
                                     const scheme_options& o = small_tree()) {
  return k == scheme_kind::dvv ? detail::make_dvv_scheme(replica_id{id}, o)
                               : detail::make_vv_scheme(replica_id{id}, o);
}

using values = std::vector<std::string>;

/// What one pull session cost.
struct session {
  std::size_t messages = 0;
  std::uint64_t bytes = 0;
  byte_split split;
  bool finished = false;
  std::vector<message> log; // every message, in order (odd ones go to b)
};

/// `a` pulls from `b`: messages alternate a -> b -> a ... until a
/// sync_step returns nullopt (or the session runs away).
session pull(replica_scheme& a, replica_scheme& b, std::size_t max_messages = 64) {
  session s;
  message m = a.sync_start();
  for (;;) {
    REQUIRE(m.split.total() == m.bytes.size());
    ++s.messages;
    s.bytes += m.bytes.size();
    s.split += m.split;
    s.log.push_back(m);
    if (s.messages > max_messages)
      return s;
    auto next = (s.messages % 2 == 1 ? b : a).sync_step(m);
    if (!next) {
      s.finished = true;
      return s;
    }
    m = std::move(*next);
  }
}

/// Pulls in both directions between every pair, twice.
void pull_all(const std::vector<replica_scheme*>& rs) {
  for (int pass = 0; pass < 2; ++pass)
    for (auto* a : rs)
      for (auto* b : rs)
        if (a != b)
          REQUIRE(pull(*a, *b).finished);
}

message deliver_checked(replica_scheme& to, const message& m) {
  REQUIRE(m.split.total() == m.bytes.size());
  REQUIRE(to.deliver(m));
  return m;
}

} // namespace

TEST_CASE("a single write pushed to two other replicas is read there", "[baselines]") {
  const auto kind = GENERATE(scheme_kind::dvv, scheme_kind::vv);
  CAPTURE(name_of(kind));
  auto a = make(kind, 1), b = make(kind, 2), c = make(kind, 3);
  const message m = a->write("k", std::string{"v1"}, "");
  REQUIRE(m.split.total() == m.bytes.size());
  CHECK(m.split.data == 3); // "k" + "v1"
  CHECK(m.split.key_meta > 0);
  CHECK(m.split.sync_meta == 2); // type and scheme bytes
  deliver_checked(*b, m);
  deliver_checked(*c, m);
  for (auto* r : {a.get(), b.get(), c.get()}) {
    CHECK(r->read("k").values == values{"v1"});
    CHECK(r->contents() == std::map<key_type, values>{{"k", {"v1"}}});
    const auto st = r->stats();
    CHECK(st.keys == 1);
    CHECK(st.tombstones == 0);
    CHECK(st.data_bytes == 2);
    CHECK(st.key_meta_bytes > 0);
    CHECK(st.node_meta_bytes == 8 * 64);
  }
  CHECK(a->read("missing").values.empty());
}

TEST_CASE("concurrent writes from the same read context become siblings, and a write that read "
          "both replaces them",
          "[baselines]") {
  const auto kind = GENERATE(scheme_kind::dvv, scheme_kind::vv);
  CAPTURE(name_of(kind));
  auto a = make(kind, 1), b = make(kind, 2), c = make(kind, 3);
  std::vector<replica_scheme*> all{a.get(), b.get(), c.get()};
  const message m1 = a->write("k", std::string{"v1"}, "");
  deliver_checked(*b, m1);
  deliver_checked(*c, m1);
  const auto ctx_b = b->read("k").context;
  const auto ctx_c = c->read("k").context;
  REQUIRE(ctx_b == ctx_c);

  SECTION("spread by pushes") {
    const message m2 = b->write("k", std::string{"v2"}, ctx_b);
    const message m3 = c->write("k", std::string{"v3"}, ctx_c);
    deliver_checked(*a, m2);
    deliver_checked(*c, m2);
    deliver_checked(*a, m3);
    deliver_checked(*b, m3);
  }
  SECTION("spread by Merkle pulls alone") {
    (void)b->write("k", std::string{"v2"}, ctx_b);
    (void)c->write("k", std::string{"v3"}, ctx_c);
    pull_all(all);
  }
  for (auto* r : all)
    REQUIRE(r->read("k").values == values{"v2", "v3"});

  const message m4 = a->write("k", std::string{"v4"}, a->read("k").context);
  deliver_checked(*b, m4);
  deliver_checked(*c, m4);
  for (auto* r : all) {
    CHECK(r->read("k").values == values{"v4"});
    CHECK(r->stats().keys == 1);
  }
}

TEST_CASE("a delete keeps a tombstone and a stale redelivery does not resurrect the value",
          "[baselines]") {
  const auto kind = GENERATE(scheme_kind::dvv, scheme_kind::vv);
  CAPTURE(name_of(kind));
  auto a = make(kind, 1), b = make(kind, 2), c = make(kind, 3);
  const message m1 = a->write("k", std::string{"v1"}, "");
  deliver_checked(*b, m1);
  deliver_checked(*c, m1);
  const message del = a->write("k", std::nullopt, a->read("k").context);
  deliver_checked(*b, del); // c misses the delete

  for (auto* r : {a.get(), b.get()}) {
    CHECK(r->contents().empty());
    CHECK(r->read("k").values.empty());
    CHECK(r->stats().keys == 1);
    CHECK(r->stats().tombstones == 1);
    CHECK(r->stats().data_bytes == 0);
  }

  // The old write arrives again, late.
  REQUIRE(b->deliver(m1));
  CHECK(b->contents().empty());
  CHECK(b->stats().tombstones == 1);

  // A replica that never saw the delete must not bring the value back.
  REQUIRE(c->read("k").values == values{"v1"});
  REQUIRE(pull(*b, *c).finished);
  CHECK(b->contents().empty());
  REQUIRE(pull(*c, *a).finished);
  CHECK(c->contents().empty());
  CHECK(c->stats().tombstones == 1);

  // Delete first, then the write it covered: still deleted.
  auto d = make(kind, 4);
  deliver_checked(*d, del);
  deliver_checked(*d, m1);
  CHECK(d->contents().empty());
  CHECK(d->stats().tombstones == 1);
}

TEST_CASE("Merkle anti-entropy alone converges three replicas after a lossy random workload",
          "[baselines]") {
  const auto kind = GENERATE(scheme_kind::dvv, scheme_kind::vv);
  CAPTURE(name_of(kind));
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    CAPTURE(seed);
    std::mt19937_64 rng{seed};
    std::vector<std::unique_ptr<replica_scheme>> owned;
    std::vector<replica_scheme*> rs;
    for (std::uint64_t i = 1; i <= 3; ++i) {
      owned.push_back(make(kind, i));
      rs.push_back(owned.back().get());
    }
    std::size_t dropped = 0;
    for (int op = 0; op < 200; ++op) {
      auto& w = *rs[rng() % 3];
      const key_type k = "key-" + std::to_string(rng() % 50);
      const auto ctx = w.read(k).context;
      std::optional<std::string> v;
      if (rng() % 4 != 0)
        v = "v" + std::to_string(op);
      const message m = w.write(k, v, ctx);
      REQUIRE(m.split.total() == m.bytes.size());
      for (auto* r : rs) {
        if (r == &w)
          continue;
        if (rng() % 100 < 30)
          ++dropped;
        else
          REQUIRE(r->deliver(m));
      }
    }
    REQUIRE(dropped > 0);
    pull_all(rs);
    const auto expected = rs[0]->contents();
    CHECK_FALSE(expected.empty());
    for (auto* r : rs) {
      CHECK(r->contents() == expected);
      CHECK(r->stats().keys == rs[0]->stats().keys);
      CHECK(r->stats().key_meta_bytes == rs[0]->stats().key_meta_bytes);
    }
    // Converged states are identical, so one more pull finds equal roots.
    CHECK(pull(*rs[2], *rs[0]).messages == 2);
  }
}

TEST_CASE("in-sync replicas cost exactly one round trip of sync metadata", "[baselines]") {
  const auto kind = GENERATE(scheme_kind::dvv, scheme_kind::vv);
  CAPTURE(name_of(kind));
  auto a = make(kind, 1, {}), b = make(kind, 2, {});
  SECTION("empty") {}
  SECTION("holding the same keys") {
    for (int i = 0; i < 100; ++i)
      deliver_checked(*b, a->write("k" + std::to_string(i), "v" + std::to_string(i), ""));
  }
  const session s = pull(*a, *b);
  REQUIRE(s.finished);
  CHECK(s.messages == 2);
  CHECK(s.split.data == 0);
  CHECK(s.split.key_meta == 0);
  CHECK(s.split.sync_meta == s.bytes);
  // root: type, scheme, varint 4096 (2 bytes), varint 16, 8-byte hash; reply: type, scheme
  CHECK(s.log[0].bytes.size() == 2 + 2 + 1 + 8);
  CHECK(s.log[1].bytes.size() == 2);
}

TEST_CASE("a Merkle pull for a few missing keys among ten thousand terminates and costs at "
          "least the raw data",
          "[baselines]") {
  const auto kind = GENERATE(scheme_kind::dvv, scheme_kind::vv);
  const std::size_t missing = GENERATE(1, 10, 100);
  CAPTURE(name_of(kind), missing);
  const std::size_t n = 10000;
  auto a = make(kind, 1, {}), b = make(kind, 2, {});
  std::uint64_t raw = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const key_type k = "key-" + std::to_string(i);
    const std::string v = "value-" + std::to_string(i * 7919);
    const message m = b->write(k, v, "");
    if (i % (n / missing) == 0)
      raw += k.size() + v.size(); // a never hears of it
    else
      deliver_checked(*a, m);
  }
  REQUIRE(a->stats().keys == n - missing);

  const session s = pull(*a, *b);
  REQUIRE(s.finished);
  const auto depth = dynamic_cast<const merkle_replica&>(*a).tree().depth();
  CHECK(s.messages <= 2 * (depth + 1));
  CHECK(s.bytes >= raw);
  CHECK(s.split.data == raw); // only the missing keys travel
  CHECK(s.split.sync_meta > 0);
  CHECK(a->contents() == b->contents());
  CHECK(a->stats().key_meta_bytes == b->stats().key_meta_bytes);
  CHECK(pull(*a, *b).messages == 2);
}

TEST_CASE("garbage and truncated messages are rejected without changing contents",
          "[baselines]") {
  const auto kind = GENERATE(scheme_kind::dvv, scheme_kind::vv);
  CAPTURE(name_of(kind));
  // Two identical pairs: the twins run a genuine session whose messages are
  // then mangled and fed to a and b.
  auto setup = [kind](std::unique_ptr<replica_scheme>& a, std::unique_ptr<replica_scheme>& b) {
    a = make(kind, 1);
    b = make(kind, 2);
    for (int i = 0; i < 5; ++i)
      deliver_checked(*b, a->write("shared-" + std::to_string(i), std::string{"s"}, ""));
    for (int i = 0; i < 6; ++i) // b holds keys a lacks: a pull must carry several objects
      (void)b->write("b-only-" + std::to_string(i), "value-" + std::to_string(i), "");
    return b->write("pushed", std::string{"p"}, "");
  };
  std::unique_ptr<replica_scheme> a, b, twin_a, twin_b;
  const message push = setup(a, b);
  (void)setup(twin_a, twin_b);
  const auto before = a->contents();
  const auto before_b = b->contents();

  SECTION("pushes") {
    for (std::size_t len = 0; len < push.bytes.size(); ++len)
      CHECK_FALSE(a->deliver(message{push.bytes.substr(0, len), {}}));
    CHECK_FALSE(a->deliver(message{push.bytes + '\0', {}}));
    auto wrong_scheme = push.bytes;
    wrong_scheme[1] = static_cast<char>(kind == scheme_kind::dvv ? scheme_kind::vv : scheme_kind::dvv);
    CHECK_FALSE(a->deliver(message{wrong_scheme, {}}));
    auto wrong_type = push.bytes;
    wrong_type[0] = static_cast<char>(wrong_type[0] + 1);
    CHECK_FALSE(a->deliver(message{wrong_type, {}}));
    // Session messages are not pushes, and pushes are not session messages.
    CHECK_FALSE(a->deliver(b->sync_start()));
    CHECK_FALSE(a->sync_step(push).has_value());
    CHECK(a->contents() == before);
  }

  SECTION("session messages") {
    const session s = pull(*twin_a, *twin_b);
    REQUIRE(s.finished);
    REQUIRE(s.messages >= 4);
    REQUIRE(twin_a->contents() == before_b);
    for (std::size_t i = 0; i < s.log.size(); ++i) {
      CAPTURE(i);
      auto& to = i % 2 == 0 ? *b : *a;
      for (std::size_t len = 0; len < s.log[i].bytes.size(); ++len)
        CHECK_FALSE(to.sync_step(message{s.log[i].bytes.substr(0, len), {}}).has_value());
      CHECK_FALSE(to.sync_step(message{s.log[i].bytes + '\x01', {}}).has_value());
    }
    CHECK(a->contents() == before);
    CHECK(b->contents() == before_b);
    // The genuine last message is accepted: it carries the missing keys.
    (void)a->sync_step(s.log.back());
    CHECK(a->contents() == before_b);
  }

  SECTION("random bytes") {
    std::mt19937_64 rng{42};
    for (int i = 0; i < 2000; ++i) {
      std::string bytes(rng() % 48, '\0');
      for (auto& ch : bytes)
        ch = static_cast<char>(rng());
      if (i % 2 == 0 && bytes.size() >= 2)
        bytes[1] = static_cast<char>(kind); // get past the scheme check
      const auto now = a->contents();
      if (!a->deliver(message{bytes, {}}))
        REQUIRE(a->contents() == now);
      if (bytes.size() >= 1 && static_cast<std::uint8_t>(bytes[0]) != 7) // not objects
        (void)b->sync_step(message{bytes, {}});
      REQUIRE(b->contents() == before_b);
    }
  }
}

TEST_CASE("a dvv object whose context does not cover its dots is rejected", "[baselines]") {
  auto a = make(scheme_kind::dvv, 1), b = make(scheme_kind::dvv, 2);
  const message good = a->write("k", std::string{"v"}, "");
  container bad;
  bad.add(dot{replica_id{1}, counter{1}}, sibling::value("v"));
  bad.context() = {};
  writer w;
  encode(w, bad);
  const std::string head = good.bytes.substr(0, 2 + 1 + 1); // type, scheme, key length, "k"
  CHECK_FALSE(b->deliver(message{head + w.str(), {}}));
  CHECK(b->contents().empty());
  CHECK(b->deliver(good));
  CHECK(b->contents().size() == 1);
}

TEST_CASE("two writes through one server from the same stale context keep both under dvv",
          "[baselines]") {
  auto s = make(scheme_kind::dvv, 1);
  const auto ctx = s->read("k").context;
  (void)s->write("k", std::string{"x"}, ctx);
  (void)s->write("k", std::string{"y"}, ctx);
  CHECK(s->read("k").values == values{"x", "y"});
}

TEST_CASE("two writes through one server from the same stale context lose one under vv",
          "[baselines]") {
  // The known weakness of server-id version vectors ("false dominance"): the
  // second write gets {s:2}, which dominates the first's {s:1}, so the first
  // client's value is silently dropped although neither client saw the other.
  // Intended: the simulator measures how often it happens.
  auto s = make(scheme_kind::vv, 1);
  auto peer = make(scheme_kind::vv, 2);
  const auto ctx_x = s->read("k").context;
  const auto ctx_y = s->read("k").context;
  deliver_checked(*peer, s->write("k", std::string{"x"}, ctx_x));
  deliver_checked(*peer, s->write("k", std::string{"y"}, ctx_y));
  CHECK(s->read("k").values == values{"y"}); // "x" is lost
  CHECK(peer->read("k").values == values{"y"});
}

TEST_CASE("a Merkle tree rejects shapes where leaves is not a power of the fan-out",
          "[baselines]") {
  CHECK_THROWS_AS(merkle_tree(100, 16), std::invalid_argument);
  CHECK_THROWS_AS(merkle_tree(16, 1), std::invalid_argument);
  CHECK_THROWS_AS(merkle_tree(1, 16), std::invalid_argument);
  CHECK_THROWS_AS(merkle_tree(std::size_t{1} << 30, 2), std::invalid_argument);
  scheme_options bad;
  bad.merkle_leaves = 1000;
  bad.merkle_fanout = 16;
  CHECK_THROWS_AS(detail::make_vv_scheme(replica_id{1}, bad), std::invalid_argument);
  const merkle_tree t(4096, 16);
  CHECK(t.depth() == 3);
  CHECK(t.nodes_at(2) == 256);
}

TEST_CASE("a Merkle root depends on every leaf and returns to its value when a change is undone",
          "[baselines]") {
  merkle_tree t(64, 4);
  const auto empty = t.root();
  for (std::size_t leaf = 0; leaf < t.leaves(); ++leaf) {
    t.toggle(leaf, merkle_hash("x"));
    CHECK(t.root() != empty);
    t.toggle(leaf, merkle_hash("x"));
    CHECK(t.root() == empty);
  }
  CHECK(merkle_hash("a") != merkle_hash("b"));
  CHECK(merkle_mix(1, 2) != merkle_mix(2, 1));
}
