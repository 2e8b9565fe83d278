#include "kith/protocol/messages.hpp"

#include "support/seed.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <iostream>
#include <map>
#include <set>

using namespace kith::protocol;
namespace kc = kith::causality;

namespace {

key_seed seed_of(std::uint64_t n) {
  key_seed s{};
  for (int i = 0; i < 8; ++i)
    s[i] = static_cast<std::uint8_t>(n >> (8 * i));
  return s;
}

// --- equality, field by field (the types have no operator==) ----------------------

bool same(const writer_summary& a, const writer_summary& b) {
  return a.topic == b.topic && a.rid == b.rid && a.upto == b.upto && a.live == b.live &&
         a.sig == b.sig;
}
bool same(const replica_binding& a, const replica_binding& b) {
  return a.author == b.author && a.nonce == b.nonce && a.rid == b.rid && a.sig == b.sig;
}
bool same(const topic_descriptor& a, const topic_descriptor& b) {
  return a.id == b.id && a.kind == b.kind && a.creator == b.creator && a.name == b.name &&
         a.writers == b.writers && a.nonce == b.nonce && a.sig == b.sig;
}
bool same(const signed_batch& a, const signed_batch& b) {
  return a.topic == b.topic && a.rid == b.rid && a.first == b.first && a.leaves == b.leaves &&
         a.sig == b.sig;
}
bool same(const signed_entry& a, const signed_entry& b) {
  return a.key == b.key && a.records == b.records && a.resolves == b.resolves;
}
template <class T>
bool same_list(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size())
    return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!same(a[i], b[i]))
      return false;
  return true;
}
bool same(const signed_reply& a, const signed_reply& b) {
  return a.topic == b.topic && a.from == b.from && a.clock == b.clock &&
         same_list(a.entries, b.entries) && same_list(a.batches, b.batches) &&
         same_list(a.bindings, b.bindings) && same_list(a.summaries, b.summaries);
}
bool same(const hello_msg& a, const hello_msg& b) {
  return a.version == b.version && same(a.binding, b.binding) && a.agent == b.agent &&
         a.resumes == b.resumes;
}
bool same(const subscribe_msg& a, const subscribe_msg& b) { return a.topics == b.topics; }
bool same(const unsubscribe_msg& a, const unsubscribe_msg& b) { return a.topics == b.topics; }
bool same(const offer_msg& a, const offer_msg& b) {
  return same_list(a.topics, b.topics) && a.resync == b.resync;
}
bool same(const sync_request_msg& a, const sync_request_msg& b) {
  return a.topic == b.topic && a.clock == b.clock;
}
bool same(const data_msg& a, const data_msg& b) {
  return a.kind == b.kind && a.last == b.last && same(a.reply, b.reply);
}
bool same(const watermark_msg& a, const watermark_msg& b) {
  return a.topic == b.topic && a.clock == b.clock;
}
bool same(const resync_request_msg& a, const resync_request_msg& b) {
  return a.topic == b.topic && a.after_key == b.after_key && a.max_entries == b.max_entries &&
         a.have == b.have;
}
bool same(const resync_done_msg& a, const resync_done_msg& b) {
  return a.topic == b.topic && a.next_after == b.next_after && a.complete == b.complete &&
         a.held == b.held;
}
bool same(const keepalive_msg& a, const keepalive_msg& b) {
  return a.nonce == b.nonce && a.reply == b.reply;
}
bool same(const error_msg& a, const error_msg& b) {
  return a.code == b.code && a.reason == b.reason;
}
bool same(const query_msg& a, const query_msg& b) {
  return a.id == b.id && a.kind == b.kind && a.arg == b.arg && a.limit == b.limit &&
         a.since_ms == b.since_ms && a.until_ms == b.until_ms;
}
bool same(const query_result_msg& a, const query_result_msg& b) {
  if (a.id != b.id || a.refused != b.refused || a.items.size() != b.items.size() ||
      a.tags.size() != b.tags.size())
    return false;
  for (std::size_t i = 0; i < a.items.size(); ++i)
    if (a.items[i].author != b.items[i].author || !same(a.items[i].reply, b.items[i].reply))
      return false;
  for (std::size_t i = 0; i < a.tags.size(); ++i)
    if (a.tags[i].tag != b.tags[i].tag || a.tags[i].count != b.tags[i].count)
      return false;
  return true;
}
bool same(const message& a, const message& b) {
  if (a.index() != b.index())
    return false;
  return std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        return same(x, std::get<T>(b));
      },
      a);
}

// --- real signed data ---------------------------------------------------------------

struct author {
  identity id;
  replica_binding binding;
  std::uint64_t next = 1;
  author(std::uint64_t seed, std::uint64_t nonce)
      : id(identity::from_seed(seed_of(seed))), binding(bind_replica(id, nonce)) {}
  [[nodiscard]] replica_id rid() const { return binding.rid; }
};

std::string text_of(kith::test::rng& g, std::size_t n) {
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ0123456789,.:\"{}";
  std::string s(n, ' ');
  for (auto& ch : s)
    ch = alphabet[kith::test::pick(g, 0, sizeof(alphabet) - 2)];
  return s;
}

/// Three authors writing one topic; every write they make is remembered
/// so that sign() can cover each author's counters with real batches.
struct fixture {
  author a{1, 11};
  author b{2, 22};
  author c{3, 33};
  std::string topic = feed_topic(a.id.pub()).id;
  std::map<std::uint64_t, std::map<std::uint64_t, write_header>> written;
  signed_reply reply;

  fixture() {
    reply.topic = topic;
    reply.from = a.rid();
  }

  dot write(author& who, const key_type& k, const write_body& body) {
    dot d{who.rid(), kc::counter{who.next++}};
    written[d.id.value()][d.n.value()] = header_of(k, d, body);
    reply.clock.add(d);
    return d;
  }

  void add_record(signed_entry& e, author& who, const write_body& body) {
    e.records.emplace_back(write(who, e.key, body), encode_body(body));
  }

  /// Signs each author's writes in runs of at most per_batch.
  void sign(std::size_t per_batch) {
    for (author* who : {&a, &b, &c}) {
      auto& hs = written[who->rid().value()];
      for (std::uint64_t first = 1; first < who->next;) {
        std::vector<hash256> leaves;
        for (auto n = first; n < who->next && leaves.size() < per_batch; ++n)
          leaves.push_back(leaf_hash(topic, hs.at(n)));
        const auto count = leaves.size();
        reply.batches.push_back(sign_batch(who->id, topic, who->rid(), first, std::move(leaves)));
        first += count;
      }
      if (who->next > 1)
        reply.bindings.push_back(who->binding);
    }
  }

  [[nodiscard]] const author& owner(replica_id r) const {
    if (r == a.rid())
      return a;
    if (r == b.rid())
      return b;
    return c;
  }
};

write_body body_of(kith::test::rng& g, std::size_t max_value, replica_id other) {
  write_body b;
  b.deleted = kith::test::chance(g, 0.1);
  b.time_ms = 1'700'000'000'000ull + kith::test::pick(g, 0, 1'000'000);
  if (kith::test::chance(g, 0.3))
    b.context.raise(other, kith::test::pick(g, 1, 40));
  if (!b.deleted)
    b.value = text_of(g, kith::test::pick(g, 0, max_value));
  return b;
}

std::string key_of(std::size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "doc/%06zu", i * 3);
  std::string k = buf;
  k.push_back('\0');
  k += i % 2 ? "title" : "body";
  return k;
}

/// A reply of n entries with siblings, deletes, contexts, resolved headers
/// (some for other keys), three replicas and batches of per_batch leaves.
/// Records of author c never travel, so c's batch leaves go in full.
fixture make_fixture(kith::test::rng& g, std::size_t n, std::size_t per_batch,
                     std::size_t max_value = 200) {
  fixture f;
  for (std::size_t i = 0; i < n; ++i) {
    signed_entry e;
    e.key = key_of(i);
    if (kith::test::chance(g, 0.3)) {
      auto old = body_of(g, 50, f.a.rid());
      e.resolves.push_back(header_of(e.key, f.write(f.c, e.key, old), old));
    }
    if (kith::test::chance(g, 0.1)) {
      auto old = body_of(g, 50, f.a.rid());
      std::string other = "moved/" + std::to_string(i);
      e.resolves.push_back(header_of(other, f.write(f.c, other, old), old));
    }
    author& w = i % 3 == 2 ? f.b : f.a;
    f.add_record(e, w, body_of(g, max_value, f.c.rid()));
    if (kith::test::chance(g, 0.15))
      f.add_record(e, i % 3 == 2 ? f.a : f.b, body_of(g, max_value, f.c.rid()));
    f.reply.entries.push_back(std::move(e));
  }
  f.reply.clock.add(dot{f.c.rid(), kc::counter{1000}}); // a gap: the clock needs a bitmap
  f.sign(per_batch);
  // Author b's summary: counters 1..40 spoken of, three of them gone.
  writer_summary ws;
  ws.topic = f.topic;
  ws.rid = f.b.rid();
  ws.upto = 40;
  ws.add_live(1, 40);
  for (std::uint64_t n : {3, 17, 18})
    ws.remove_live(n);
  sign_summary(f.b.id, ws);
  f.reply.summaries.push_back(ws);
  return f;
}

std::vector<message> every_message(const fixture& f) {
  std::vector<message> out;
  out.emplace_back(hello_msg{protocol_version, f.a.binding, "kith/0.1 (test)", true});
  out.emplace_back(hello_msg{protocol_version, f.a.binding, "kith/0.1 (an older node)", false});
  out.emplace_back(subscribe_msg{{f.topic, "topic/0123456789abcdef", ""}});
  out.emplace_back(unsubscribe_msg{{"topic/fedcba9876543210"}});
  out.emplace_back(offer_msg{{feed_topic(f.a.id.pub()),
                              make_topic(f.a.id, topic_kind::shared, "team notes",
                                         {f.b.id.pub(), f.c.id.pub()}, 7),
                              make_topic(f.b.id, topic_kind::open, "wiki", {}, 9)}});
  out.emplace_back(offer_msg{{feed_topic(f.b.id.pub())}, {feed_topic(f.b.id.pub()).id}});
  out.emplace_back(sync_request_msg{f.topic, f.reply.clock});
  out.emplace_back(data_msg{data_kind::answer, false, f.reply});
  out.emplace_back(data_msg{data_kind::push, true, f.reply});
  out.emplace_back(watermark_msg{f.topic, f.reply.clock});
  out.emplace_back(resync_request_msg{f.topic, key_of(5), 77});
  out.emplace_back(resync_request_msg{f.topic, {}, 1024, f.reply.clock});
  out.emplace_back(resync_done_msg{f.topic, key_of(9), true});
  out.emplace_back(resync_done_msg{f.topic, key_of(9), false, f.reply.clock});
  out.emplace_back(keepalive_msg{0xdeadbeefcafeull, true});
  out.emplace_back(error_msg{error_code::limit, "a data message was over max_entries; split it"});
  out.emplace_back(query_msg{42, query_kind::mentions, to_text(f.b.id.pub()), 50, 0, 0});
  out.emplace_back(query_msg{43, query_kind::trending, "", 10, 1'700'000'000'000ull,
                             1'700'000'600'000ull});
  out.emplace_back(query_result_msg{42, {{f.a.id.pub(), f.reply}, {f.b.id.pub(), f.reply}},
                                    {{"kith", 12}, {"p2p", 3}}, ""});
  out.emplace_back(query_result_msg{44, {}, {}, "this node is not an aggregator"});
  return out;
}

/// decode(encode(m)) == m, for anything decode accepted.
void check_reencodes(const message& m) {
  std::string why;
  auto again = decode_message(encode_message(m), {}, &why);
  INFO(why);
  REQUIRE(again);
  CHECK(same(*again, m));
}

/// The leaf a record stands for under a batch's topic.
hash256 record_leaf(const std::string& topic, const key_type& k, dot d, const std::string& body) {
  auto b = decode_body(body);
  REQUIRE(b);
  return leaf_hash(topic, header_of(k, d, *b));
}

const signed_batch* covering(const signed_reply& r, dot d) {
  for (const auto& b : r.batches)
    if (b.covers(d))
      return &b;
  return nullptr;
}

std::size_t find_bytes(const std::string& hay, std::string_view needle, std::size_t from = 0) {
  return hay.find(needle.data(), from, needle.size());
}

} // namespace

// --- round trips ---------------------------------------------------------------------

TEST_CASE("every message type round-trips through encode and decode", "[messages]") {
  kith::test::rng g(kith::test::base_seed());
  auto f = make_fixture(g, 40, 8);
  auto all = every_message(f);
  std::set<std::string> names;
  for (const auto& m : all) {
    CAPTURE(message_name(m));
    names.insert(message_name(m));
    std::string why;
    auto bytes = encode_message(m);
    auto back = decode_message(bytes, {}, &why);
    INFO(why);
    REQUIRE(back);
    CHECK(same(*back, m));
    CHECK(encode_message(*back) == bytes);
  }
  CHECK(names.size() == std::variant_size_v<message>);
}

TEST_CASE("message names are the ones logs use", "[messages]") {
  CHECK(std::string(message_name(hello_msg{})) == "hello");
  CHECK(std::string(message_name(subscribe_msg{})) == "subscribe");
  CHECK(std::string(message_name(unsubscribe_msg{})) == "unsubscribe");
  CHECK(std::string(message_name(offer_msg{})) == "offer");
  CHECK(std::string(message_name(sync_request_msg{})) == "sync_request");
  CHECK(std::string(message_name(data_msg{})) == "data");
  CHECK(std::string(message_name(watermark_msg{})) == "watermark");
  CHECK(std::string(message_name(resync_request_msg{})) == "resync_request");
  CHECK(std::string(message_name(resync_done_msg{})) == "resync_done");
  CHECK(std::string(message_name(keepalive_msg{})) == "keepalive");
  CHECK(std::string(message_name(error_msg{})) == "error");
  CHECK(std::string(message_name(query_msg{})) == "query");
  CHECK(std::string(message_name(query_result_msg{})) == "query_result");
}

TEST_CASE("empty and default messages round-trip too", "[messages]") {
  for (const message& m :
       {message{hello_msg{}}, message{subscribe_msg{}}, message{offer_msg{}},
        message{sync_request_msg{}}, message{data_msg{}}, message{resync_request_msg{}},
        message{resync_done_msg{}}, message{keepalive_msg{}}, message{error_msg{}}}) {
    CAPTURE(message_name(m));
    check_reencodes(m);
  }
  // Entries with no records, keys sharing no prefix, an empty key.
  data_msg d;
  d.reply.entries.push_back({"", {}, {}});
  d.reply.entries.push_back({"zzz", {}, {}});
  d.reply.entries.push_back({"a", {}, {}});
  check_reencodes(d);
}

// --- hostile input -------------------------------------------------------------------

TEST_CASE("every truncation of a message is refused", "[messages]") {
  kith::test::rng g(kith::test::base_seed());
  auto f = make_fixture(g, 12, 4);
  for (const auto& m : every_message(f)) {
    auto bytes = encode_message(m);
    CAPTURE(message_name(m), bytes.size());
    for (std::size_t len = 0; len < bytes.size(); ++len) {
      std::string why;
      auto back = decode_message(std::string_view(bytes).substr(0, len), {}, &why);
      CAPTURE(len);
      REQUIRE_FALSE(back);
      REQUIRE_FALSE(why.empty());
    }
  }
}

TEST_CASE("trailing bytes and an unknown union member are refused", "[messages]") {
  auto bytes = encode_message(keepalive_msg{5, false});
  std::string why;
  CHECK_FALSE(decode_message(bytes + std::string(1, '\0'), {}, &why));
  CHECK(why.find("trailing") != std::string::npos);

  // A hand-packed Message whose union discriminant is `which`, with a
  // null pointer: segment table (one segment of 3 words), root struct
  // pointer (1 data word, 1 pointer), the discriminant, a null pointer.
  auto crafted = [](std::uint8_t which) {
    return std::string("\x10\x03\x50\x01\x01\x01", 6) + std::string(1, static_cast<char>(which)) +
           std::string("\x00\x00", 2);
  };
  auto k = decode_message(crafted(9), {}, &why); // keepalive: all defaults
  INFO(why);
  REQUIRE(k);
  CHECK(std::holds_alternative<keepalive_msg>(*k));
  why.clear();
  CHECK_FALSE(decode_message(crafted(99), {}, &why));
  CHECK(why.find("unsupported message") != std::string::npos);
}

namespace {

/// Cap'n Proto's packing of whole words, written out by hand: a tag byte
/// naming the non-zero bytes, then those bytes; after a tag of 0x00 or
/// 0xff a count of further such words (always 0 here).
std::string pack_words(const std::vector<std::array<std::uint8_t, 8>>& words) {
  std::string out;
  for (const auto& w : words) {
    std::uint8_t tag = 0;
    std::string bytes;
    for (int i = 0; i < 8; ++i)
      if (w[static_cast<std::size_t>(i)] != 0) {
        tag = static_cast<std::uint8_t>(tag | (1u << i));
        bytes.push_back(static_cast<char>(w[static_cast<std::size_t>(i)]));
      }
    out.push_back(static_cast<char>(tag));
    out += bytes;
    if (tag == 0 || tag == 0xff)
      out.push_back('\0');
  }
  return out;
}

} // namespace

TEST_CASE("a message spread over several segments decodes, empty segments too, and trailing "
          "bytes after the last are refused",
          "[messages]") {
  // The root pointer in segment 0 is a far pointer to a landing pad in the
  // last segment: a struct pointer (1 data word, 1 pointer) followed by
  // the struct, Message with discriminant 9 (keepalive) and a null pointer.
  using word = std::array<std::uint8_t, 8>;
  const word far_to_last_1{2, 0, 0, 0, 1, 0, 0, 0};
  const word far_to_last_2{2, 0, 0, 0, 2, 0, 0, 0};
  const word pad{0, 0, 0, 0, 1, 0, 1, 0}, data{9, 0, 0, 0, 0, 0, 0, 0}, null{};
  // Two segments (1 and 3 words; an even count has a padding word).
  const auto two = pack_words({{1, 0, 0, 0, 1, 0, 0, 0}, {3, 0, 0, 0, 0, 0, 0, 0}, far_to_last_1,
                               pad, data, null});
  // Three segments, the middle one empty (1, 0 and 3 words).
  const auto three = pack_words({{2, 0, 0, 0, 1, 0, 0, 0}, {0, 0, 0, 0, 3, 0, 0, 0},
                                 far_to_last_2, pad, data, null});
  for (const auto& bytes : {two, three}) {
    std::string why;
    auto m = decode_message(bytes, {}, &why);
    INFO(why);
    REQUIRE(m);
    CHECK(std::holds_alternative<keepalive_msg>(*m));
    why.clear();
    CHECK_FALSE(decode_message(bytes + std::string(1, '\0'), {}, &why));
    CHECK(why.find("trailing") != std::string::npos);
  }
}

TEST_CASE("random garbage never crashes the decoder", "[messages]") {
  const auto seed = kith::test::base_seed() ^ 0x6761726261676500ull;
  kith::test::rng g(seed);
  std::cout << "[messages] garbage seed " << seed << "\n";
  CAPTURE(seed);
  auto f = make_fixture(g, 8, 4);
  auto real = encode_message(data_msg{data_kind::answer, true, f.reply});
  int decoded = 0;
  const int n = kith::test::cases(4000);
  for (int i = 0; i < n; ++i) {
    std::string bytes;
    if (i % 2 == 0) {
      bytes.resize(kith::test::pick(g, 0, 600));
    } else {
      // A real header (segment table, first words) and a random tail:
      // reaches the decoder proper more often than pure noise does.
      bytes = real.substr(0, kith::test::pick(g, 1, 24));
      bytes.resize(bytes.size() + kith::test::pick(g, 0, 600));
    }
    for (std::size_t j = i % 2 == 0 ? 0 : 1; j < bytes.size(); ++j)
      if (i % 2 == 0 || j >= 24)
        bytes[j] = static_cast<char>(g());
    CAPTURE(i);
    std::string why;
    auto m = decode_message(bytes, {}, &why);
    if (m) {
      ++decoded;
      check_reencodes(*m);
    } else {
      REQUIRE_FALSE(why.empty());
    }
  }
  std::cout << "[messages] garbage: " << decoded << " of " << n << " decoded to something\n";
}

TEST_CASE("bit flips never crash the decoder and what decodes re-encodes", "[messages]") {
  const auto seed = kith::test::base_seed() ^ 0x666c6970ull;
  kith::test::rng g(seed);
  std::cout << "[messages] bit flip seed " << seed << "\n";
  CAPTURE(seed);
  auto f = make_fixture(g, 10, 4);
  auto all = every_message(f);
  int decoded = 0;
  int total = 0;
  for (const auto& m : all) {
    auto bytes = encode_message(m);
    CAPTURE(message_name(m));
    for (int i = 0; i < kith::test::cases(400); ++i) {
      auto flipped = bytes;
      const auto flips = kith::test::pick(g, 1, 3);
      for (std::uint64_t k = 0; k < flips; ++k) {
        const auto at = kith::test::pick(g, 0, flipped.size() - 1);
        flipped[at] = static_cast<char>(flipped[at] ^ (1u << kith::test::pick(g, 0, 7)));
      }
      CAPTURE(i);
      std::string why;
      auto back = decode_message(flipped, {}, &why);
      ++total;
      if (back) {
        ++decoded;
        check_reencodes(*back);
      } else {
        REQUIRE_FALSE(why.empty());
      }
    }
  }
  std::cout << "[messages] bit flips: " << decoded << " of " << total << " decoded to something\n";
}

TEST_CASE("a message over any limit is refused with a reason naming the limit", "[messages]") {
  kith::test::rng g(kith::test::base_seed());
  auto f = make_fixture(g, 20, 4);
  const data_msg data{data_kind::answer, true, f.reply};
  auto refused = [](const message& m, const message_limits& l, const std::string& expect) {
    std::string why;
    auto bytes = encode_message(m);
    REQUIRE(decode_message(bytes)); // fine under the defaults
    auto back = decode_message(bytes, l, &why);
    CAPTURE(expect, why);
    CHECK_FALSE(back);
    CHECK(why.find(expect) != std::string::npos);
  };
  message_limits l;

  l = {};
  l.max_topics = 2;
  refused(subscribe_msg{{"a", "b", "c"}}, l, "max_topics");
  refused(unsubscribe_msg{{"a", "b", "c"}}, l, "max_topics");
  refused(offer_msg{{feed_topic(f.a.id.pub()), feed_topic(f.b.id.pub()), feed_topic(f.c.id.pub())}},
          l, "max_topics");
  l = {};
  l.sig.max_topic_bytes = 8;
  refused(subscribe_msg{{"a-topic-name-longer-than-eight"}}, l, "max_topic_bytes");
  refused(data, l, "max_topic_bytes");
  l = {};
  l.sig.max_writers = 1;
  refused(offer_msg{{make_topic(f.a.id, topic_kind::shared, "t", {f.b.id.pub(), f.c.id.pub()}, 1)}},
          l, "max_writers");
  l = {};
  l.max_entries = 5;
  refused(data, l, "max_entries");
  l = {};
  l.max_records_per_key = 1;
  data_msg two = data;
  two.reply.entries[0].records.push_back(two.reply.entries[1].records[0]);
  refused(two, l, "max_records_per_key");
  l = {};
  l.max_batches = 1;
  refused(data, l, "max_batches");
  l = {};
  l.sig.max_batch_leaves = 2;
  refused(data, l, "max_batch_leaves");
  l = {};
  l.max_bindings = 1;
  refused(data, l, "max_bindings");
  l = {};
  l.max_key_bytes = 5;
  refused(data, l, "max_key_bytes");
  refused(resync_request_msg{"t", "a-long-key", 1}, l, "max_key_bytes");
  refused(resync_done_msg{"t", "a-long-key", false}, l, "max_key_bytes");
  l = {};
  l.max_value_bytes = 10;
  refused(data, l, "max_value_bytes");
  l = {};
  l.max_reason_bytes = 3;
  refused(error_msg{error_code::internal, "too long"}, l, "max_reason_bytes");
  refused(hello_msg{1, f.a.binding, "agent name"}, l, "max_reason_bytes");
  l = {};
  l.max_query_items = 1;
  refused(query_result_msg{1, {{f.a.id.pub(), f.reply}, {f.b.id.pub(), f.reply}}, {}, ""}, l,
          "max_query_items");
  l = {};
  l.max_query_tags = 1;
  refused(query_result_msg{1, {}, {{"a", 1}, {"b", 2}}, ""}, l, "max_query_tags");
  l = {};
  l.max_key_bytes = 5;
  refused(query_msg{1, query_kind::thread, "a-long-subject", 5, 0, 0}, l, "max_key_bytes");
  l = {};
  l.sig.base.max_ids = 1;
  refused(sync_request_msg{f.topic, f.reply.clock}, l, "max_ids");
  refused(watermark_msg{f.topic, f.reply.clock}, l, "max_ids");
  l = {};
  l.sig.base.max_bitmap_bytes = 8;
  kc::node_clock gappy;
  gappy.add(dot{f.a.rid(), kc::counter{500}});
  gappy.add(dot{f.b.rid(), kc::counter{500}});
  refused(watermark_msg{f.topic, gappy}, l, "max_bitmap_bytes");
  l = {};
  l.max_message_bytes = 64;
  refused(data, l, "max_message_bytes");
  l = {};
  l.traversal_limit_words = 64;
  refused(data, l, "traversal_limit_words");
  l = {};
  l.nesting_limit = 3;
  refused(data, l, "nesting_limit");
}

// --- leaf elision ----------------------------------------------------------------------

TEST_CASE("leaves of writes sent alongside are left out and rebuilt exactly", "[messages]") {
  kith::test::rng g(kith::test::base_seed());
  auto f = make_fixture(g, 60, 16);
  const data_msg full{data_kind::push, true, f.reply};
  auto bytes = encode_message(full);
  auto back = decode_message(bytes);
  REQUIRE(back);
  const auto& r = std::get<data_msg>(*back).reply;
  REQUIRE(same(r, f.reply));
  for (const auto& b : r.batches)
    CHECK(check_batch(b, f.owner(b.rid).id.pub()));

  // What the batches cost with and without their records alongside.
  std::size_t leaves_ab = 0;
  for (const auto& b : f.reply.batches)
    if (b.rid != f.c.rid())
      leaves_ab += b.leaves.size();
  data_msg no_batches = full;
  no_batches.reply.batches.clear();
  data_msg batches_only = full;
  batches_only.reply.entries.clear();
  data_msg bare = batches_only;
  bare.reply.batches.clear();
  const auto with_records = bytes.size() - encode_message(no_batches).size();
  const auto alone = encode_message(batches_only).size() - encode_message(bare).size();
  std::cout << "[messages] " << f.reply.batches.size() << " batches: " << alone
            << " bytes alone, " << with_records << " bytes next to their " << leaves_ab
            << " records\n";
  CHECK(alone - with_records >= 30 * leaves_ab);
}

TEST_CASE("a record altered on the wire breaks its rebuilt leaf and so the batch", "[messages]") {
  fixture f;
  signed_entry e;
  e.key = "doc/1\0title";
  write_body body;
  body.time_ms = 1'700'000'000'123ull;
  body.value = "a document value with a MARKER-QRSTUVWXYZ inside it, long enough to be sure";
  f.add_record(e, f.a, body);
  f.reply.entries.push_back(e);
  f.sign(16);
  auto bytes = encode_message(data_msg{data_kind::push, true, f.reply});
  const auto at = find_bytes(bytes, "MARKER-QRSTUVWXYZ");
  REQUIRE(at != std::string::npos);

  auto good = decode_message(bytes);
  REQUIRE(good);
  const auto& gb = std::get<data_msg>(*good).reply.batches.at(0);
  CHECK(check_batch(gb, f.a.id.pub()));

  auto tampered = bytes;
  tampered[at + 10] = 'x'; // MARKER-QRSTxVWXYZ: still a valid body
  auto bad = decode_message(tampered);
  REQUIRE(bad);
  const auto& br = std::get<data_msg>(*bad).reply;
  CHECK(br.entries.at(0).records.at(0).second != f.reply.entries[0].records[0].second);
  CHECK(br.batches.at(0).leaves != gb.leaves);
  CHECK_FALSE(check_batch(br.batches.at(0), f.a.id.pub()));
}

TEST_CASE("a record that does not match its leaf is sent with the leaf in full", "[messages]") {
  fixture f;
  signed_entry e;
  e.key = "doc/2";
  write_body body;
  body.value = "the signed value";
  f.add_record(e, f.a, body);
  f.reply.entries.push_back(e);
  f.sign(16);
  // Altered after signing (a corrupt store, a lying relay): the encoder
  // must not let the record stand in for the signed leaf.
  body.value = "another value";
  f.reply.entries[0].records[0].second = encode_body(body);
  auto back = decode_message(encode_message(data_msg{data_kind::push, true, f.reply}));
  REQUIRE(back);
  const auto& r = std::get<data_msg>(*back).reply;
  CHECK(same(r, f.reply));
  CHECK(check_batch(r.batches.at(0), f.a.id.pub()));
  const auto& [d, rec] = r.entries[0].records[0];
  CHECK(record_leaf(f.topic, r.entries[0].key, d, rec) != r.batches[0].leaf(d));
}

TEST_CASE("a leaf left out without its record is refused", "[messages]") {
  // The counter is chosen so its 8 little-endian bytes are all non-zero:
  // packing then copies them verbatim, once for the record's dot and once
  // for the batch's first counter, and the test can move either.
  fixture f;
  signed_entry e;
  e.key = "doc/3";
  write_body body;
  body.value = "v";
  e.records.emplace_back(dot{f.a.rid(), kc::counter{0x1122334455667788ull}}, encode_body(body));
  f.reply.entries.push_back(e);
  f.reply.batches.push_back(sign_batch(f.a.id, f.topic, f.a.rid(), 0x1122334455667788ull,
                                       {record_leaf(f.topic, e.key, e.records[0].first,
                                                    e.records[0].second)}));
  f.reply.bindings.push_back(f.a.binding);
  auto bytes = encode_message(data_msg{data_kind::push, true, f.reply});
  REQUIRE(decode_message(bytes));
  const std::string le("\x88\x77\x66\x55\x44\x33\x22\x11", 8);
  int moved = 0;
  for (auto at = find_bytes(bytes, le); at != std::string::npos; at = find_bytes(bytes, le, at + 1)) {
    auto changed = bytes;
    changed[at] = '\x89';
    std::string why;
    CHECK_FALSE(decode_message(changed, {}, &why));
    CHECK(why.find("left out") != std::string::npos);
    ++moved;
  }
  CHECK(moved == 2);
}

// --- compactness ------------------------------------------------------------------------

TEST_CASE("replicating 100-byte documents costs under 1.3x their keys and values", "[messages]") {
  kith::test::rng g(kith::test::base_seed());
  fixture f;
  const std::string owner = to_text(f.a.id.pub()); // "k" + 56 characters
  const std::size_t n = 1000;
  std::size_t payload = 0;
  for (std::size_t i = 0; i < n; ++i) {
    char num[16];
    std::snprintf(num, sizeof num, "%06zu", 100 + i);
    signed_entry e;
    e.key = owner + "/bench/" + num;
    e.key.push_back('\0');
    e.key += "text";
    write_body body;
    body.time_ms = 1'700'000'000'000ull + i * 17;
    body.value = text_of(g, 100);
    payload += e.key.size() + body.value.size();
    f.add_record(e, f.a, body);
    f.reply.entries.push_back(std::move(e));
  }
  f.sign(4096); // one batch of 1000 leaves
  REQUIRE(f.reply.batches.size() == 1);
  const data_msg m{data_kind::push, true, f.reply};
  const auto bytes = encode_message(m).size();
  const double per_entry = static_cast<double>(bytes) / n;
  const double ratio = static_cast<double>(bytes) / static_cast<double>(payload);
  std::cout << "[messages] " << n << " entries, key " << f.reply.entries[0].key.size()
            << " B + value 100 B: " << bytes << " bytes encoded, " << per_entry
            << " B per entry for " << static_cast<double>(payload) / n << " B of key+value ("
            << ratio << "x)\n";
  CHECK(ratio < 1.3);
  std::string why;
  auto back = decode_message(encode_message(m), {}, &why);
  INFO(why);
  REQUIRE(back);
  CHECK(same(*back, message{m}));
}

// --- splitting ----------------------------------------------------------------------------

namespace {

/// Splits f's reply at max bytes and checks the parts: under the limit
/// (an entry bigger than the limit alone excepted), the same topic, sender
/// and clock, exactly the batches and bindings their records and resolves
/// need, each verifying alone, and together the original entries in order.
/// Returns the encoded bytes of all parts together.
std::size_t check_split(const fixture& f, std::size_t max) {
  const auto parts = split_reply(f.reply, max);
  const auto whole = encode_message(data_msg{data_kind::answer, true, f.reply}).size();
  // The writer summaries ride on the last part only, with their bindings.
  for (std::size_t i = 0; i + 1 < parts.size(); ++i)
    CHECK(parts[i].summaries.empty());
  CHECK(same_list(parts.back().summaries, f.reply.summaries));
  for (const auto& ws : parts.back().summaries)
    CHECK(std::any_of(parts.back().bindings.begin(), parts.back().bindings.end(),
                      [&](const replica_binding& b) { return b.rid == ws.rid; }));
  std::size_t sum = 0;
  std::vector<signed_entry> joined;
  for (const auto& p : parts) {
    CHECK(p.topic == f.reply.topic);
    CHECK(p.from == f.reply.from);
    CHECK(p.clock == f.reply.clock);
    const auto bytes = encode_message(data_msg{data_kind::answer, false, p});
    sum += bytes.size();
    const bool oversized_entry = p.entries.size() == 1 && p.entries[0].records.size() == 1 &&
                                 p.entries[0].records[0].second.size() > max;
    CAPTURE(max, p.entries.size(), bytes.size());
    if (!oversized_entry)
      CHECK(bytes.size() <= max);
    joined.insert(joined.end(), p.entries.begin(), p.entries.end());

    // Each part carries what its records need, and only that.
    std::set<std::uint64_t> rids;
    for (const auto& b : p.batches) {
      rids.insert(b.rid.value());
      bool needed = false;
      for (const auto& e : p.entries) {
        for (const auto& rec : e.records)
          needed = needed || b.covers(rec.first);
        for (const auto& h : e.resolves)
          needed = needed || b.covers(h.d);
      }
      CHECK(needed);
    }
    for (const auto& ws : p.summaries) // the last part: the summaries' writers too
      rids.insert(ws.rid.value());
    CHECK(p.bindings.size() == rids.size());
    for (const auto& bd : p.bindings)
      CHECK(rids.count(bd.rid.value()) == 1);

    // ... and verifies on its own after a trip over the wire.
    auto back = decode_message(bytes);
    REQUIRE(back);
    const auto& r = std::get<data_msg>(*back).reply;
    for (const auto& b : r.batches)
      CHECK(check_batch(b, f.owner(b.rid).id.pub()));
    for (const auto& e : r.entries) {
      for (const auto& [d, body] : e.records) {
        const auto* b = covering(r, d);
        REQUIRE(b);
        CHECK(record_leaf(b->topic, e.key, d, body) == b->leaf(d));
      }
      for (const auto& h : e.resolves) {
        const auto* b = covering(r, h.d);
        REQUIRE(b);
        CHECK(leaf_hash(b->topic, h) == b->leaf(h.d));
      }
    }
  }
  CHECK(same_list(joined, f.reply.entries));
  std::cout << "[messages] split " << whole << " bytes into " << parts.size() << " parts of <= "
            << max << " (" << sum << " bytes in all, parts " << 100 * sum / (parts.size() * max)
            << "% full on average)\n";
  return sum;
}

} // namespace

TEST_CASE("split_reply makes parts under the limit that each verify alone", "[messages]") {
  kith::test::rng g(kith::test::base_seed());
  {
    // Small parts: batches of 16 leaves are a large share of each part,
    // since a batch travels whole with every part that needs it.
    auto f = make_fixture(g, 300, 16, 400);
    // One entry larger than the limit: it must travel alone.
    signed_entry big;
    big.key = "doc/zzz-big";
    write_body body;
    body.value = std::string(6000, 'B');
    f.add_record(big, f.a, body);
    f.reply.entries.push_back(big);
    f.reply.batches.clear();
    f.reply.bindings.clear();
    f.sign(16);
    check_split(f, 4096);
  }
  {
    // Bigger parts. What they cost beyond the whole is mostly batches
    // that straddle two parts: such a batch goes with both, each time
    // with the leaves of the other part's records in full.
    auto f = make_fixture(g, 1500, 64, 400);
    const auto whole = encode_message(data_msg{data_kind::answer, true, f.reply}).size();
    const auto sum = check_split(f, 32768);
    CHECK(sum < whole + whole / 2);
  }
  // A reply that fits stays whole.
  auto small = make_fixture(g, 5, 4);
  auto one = split_reply(small.reply, 1u << 20);
  REQUIRE(one.size() == 1);
  CHECK(same(one[0], small.reply));
}

TEST_CASE("a writer summary keeps its live runs sorted and apart, and only its writer can sign it",
          "[messages][summary]") {
  auto a = identity::from_seed(seed_of(1)), b = identity::from_seed(seed_of(2));
  writer_summary ws;
  ws.topic = "feed/x";
  ws.rid = replica_id{7};
  ws.add_live(1, 10);
  ws.remove_live(4);
  ws.remove_live(1);
  ws.remove_live(10);
  ws.remove_live(42); // not live: nothing changes
  using runs = std::vector<std::pair<std::uint64_t, std::uint64_t>>;
  CHECK(ws.live == runs{{2, 2}, {5, 5}});
  ws.add_live(11, 12); // joins nothing: 10 is out
  ws.add_live(4, 4);   // fills the hole: one run 2..9
  CHECK(ws.live == runs{{2, 8}, {11, 2}});
  ws.upto = 12;
  const dot d1{replica_id{7}, kc::counter{1}}, d5{replica_id{7}, kc::counter{5}},
      d10{replica_id{7}, kc::counter{10}}, d13{replica_id{7}, kc::counter{13}},
      other{replica_id{8}, kc::counter{1}};
  CHECK_FALSE(ws.live_at(d1));
  CHECK(ws.live_at(d5));
  CHECK_FALSE(ws.live_at(d10));
  CHECK(ws.live_at(d13)); // beyond upto: not spoken of
  CHECK_FALSE(ws.covers(d13));
  CHECK_FALSE(ws.covers(other));

  sign_summary(a, ws);
  CHECK(check_summary(ws, a.pub()));
  CHECK_FALSE(check_summary(ws, b.pub()));
  auto altered = ws;
  altered.live.pop_back(); // 11..12 gone: not what a signed
  CHECK_FALSE(check_summary(altered, a.pub()));
  // Coarsening joins the runs with the smallest gaps: live only grows.
  {
    writer_summary many;
    many.upto = 100;
    for (std::uint64_t f : {1, 4, 10, 12, 30})
      many.add_live(f, f); // gaps: 2, 5, 1, 17
    many.coarsen(3);
    CHECK(many.live == runs{{1, 4}, {10, 3}, {30, 1}}); // gap 1 (11), then gap 2 (2-3)
    many.coarsen(1);
    CHECK(many.live == runs{{1, 30}});
  }
  // Malformed runs are refused even when signed: overlapping, touching,
  // empty, or beyond upto.
  for (const runs& bad : {runs{{2, 5}, {6, 1}}, runs{{2, 2}, {4, 1}}, runs{{2, 0}},
                          runs{{0, 2}}, runs{{11, 3}}, runs{{5, 2}, {2, 1}}}) {
    auto m = ws;
    m.live = bad;
    sign_summary(a, m);
    CAPTURE(bad);
    CHECK_FALSE(check_summary(m, a.pub()));
  }
}

TEST_CASE("a vouched writer summary signs the replica that vouches; an own one encodes as before",
          "[messages][summary]") {
  auto a = identity::from_seed(seed_of(1));
  auto bytes_of = [](const writer_summary& s) {
    kith::causality::writer w;
    encode(w, s);
    return w.take();
  };
  auto decoded = [](const std::string& bytes) {
    kith::causality::reader r(bytes);
    writer_summary out;
    const bool ok = decode(r, out) && !r.failed() && r.at_end();
    return ok ? std::optional<writer_summary>(out) : std::nullopt;
  };
  writer_summary own;
  own.topic = "feed/x";
  own.rid = replica_id{7};
  own.upto = 5;
  own.add_live(1, 3);
  sign_summary(a, own);
  REQUIRE(check_summary(own, a.pub()));
  CHECK_FALSE(own.vouched());
  CHECK(own.signer() == replica_id{7});
  CHECK(own.signer_upto() == 5);
  // The own encoding ends with the signature, as version 1 wrote it.
  const auto own_bytes = bytes_of(own);
  CHECK(own_bytes.substr(own_bytes.size() - 64) == std::string(own.sig.view()));
  auto back = decoded(own_bytes);
  REQUIRE(back);
  CHECK_FALSE(back->vouched());
  CHECK(check_summary(*back, a.pub()));

  // Replica 9 of the same writer vouches for replica 7 at its counter 4.
  writer_summary v = own;
  v.by = replica_id{9};
  v.by_upto = 4;
  CHECK_FALSE(check_summary(v, a.pub())); // the own signature does not cover `by`
  sign_summary(a, v);
  REQUIRE(check_summary(v, a.pub()));
  CHECK(v.signer() == replica_id{9});
  CHECK(v.signer_upto() == 4);
  CHECK(v.drops(dot{replica_id{7}, kith::causality::counter{4}}));
  CHECK_FALSE(v.drops(dot{replica_id{9}, kith::causality::counter{4}}));
  auto vb = decoded(bytes_of(v));
  REQUIRE(vb);
  CHECK(vb->by == replica_id{9});
  CHECK(vb->by_upto == 4);
  CHECK(check_summary(*vb, a.pub()));
  auto moved = v; // by and by_upto are signed
  moved.by = replica_id{8};
  CHECK_FALSE(check_summary(moved, a.pub()));
  auto later = v;
  later.by_upto = 5;
  CHECK_FALSE(check_summary(later, a.pub()));
  // Signed but malformed: vouching for itself, or at counter 0.
  auto self = v;
  self.by = self.rid;
  sign_summary(a, self);
  CHECK_FALSE(check_summary(self, a.pub()));
  auto zero = v;
  zero.by_upto = 0;
  sign_summary(a, zero);
  CHECK_FALSE(check_summary(zero, a.pub()));
  // Trailing bytes that name no replica do not decode.
  auto junk = own_bytes;
  junk += std::string(2, '\0');
  CHECK_FALSE(decoded(junk));
}
