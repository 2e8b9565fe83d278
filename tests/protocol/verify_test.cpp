#include "kith/protocol/messages.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace kith::protocol;
namespace kc = kith::causality;

namespace {

key_seed seed_of(std::uint8_t n) {
  key_seed s{};
  s[0] = n;
  s[31] = 0x5a;
  return s;
}

/// One author's feed with `n` statuses, signed in one batch, as an
/// aggregator would serve it.
struct feed_item {
  identity who;
  replica_binding binding;
  signed_reply reply;

  feed_item(std::uint8_t seed, int n, const std::string& key_owner = {})
      : who(identity::from_seed(seed_of(seed))), binding(bind_replica(who, 77)) {
    reply.topic = feed_topic(who.pub()).id;
    reply.from = binding.rid;
    const std::string owner = key_owner.empty() ? to_text(who.pub()) : key_owner;
    std::vector<hash256> leaves;
    for (int i = 0; i < n; ++i) {
      write_body b;
      b.time_ms = 1'700'000'000'000ull + static_cast<std::uint64_t>(i);
      b.value = "\"status number " + std::to_string(i) + " #kith\"";
      signed_entry e;
      e.key = owner + "/statuses/s" + std::to_string(i);
      e.key.push_back('\0');
      e.key += "text";
      const dot d{binding.rid, kc::counter{static_cast<std::uint64_t>(i + 1)}};
      leaves.push_back(leaf_hash(reply.topic, header_of(e.key, d, b)));
      e.records.emplace_back(d, encode_body(b));
      reply.entries.push_back(std::move(e));
    }
    reply.batches.push_back(sign_batch(who, reply.topic, binding.rid, 1, std::move(leaves)));
    reply.bindings.push_back(binding);
  }
};

std::string refusal(const signed_reply& r, const public_key& author) {
  std::string why;
  auto v = verify_standalone(r, author, &why);
  if (v)
    return "accepted";
  REQUIRE_FALSE(why.empty());
  return why;
}

} // namespace

TEST_CASE("an author's signed statuses verify standalone and come back as writes", "[verify]") {
  feed_item f(1, 5);
  std::string why;
  auto v = verify_standalone(f.reply, f.who.pub(), &why);
  INFO(why);
  REQUIRE(v);
  REQUIRE(v->size() == 5);
  CHECK((*v)[3].body.value == "\"status number 3 #kith\"");
  CHECK((*v)[3].key == f.reply.entries[3].key);
  CHECK((*v)[3].d.n.value() == 4);
  // The same bytes survive the wire.
  auto back = decode_message(encode_message(query_result_msg{9, {{f.who.pub(), f.reply}}, {}, ""}));
  REQUIRE(back);
  const auto& item = std::get<query_result_msg>(*back).items.at(0);
  CHECK(verify_standalone(item.reply, item.author));
}

TEST_CASE("an item altered by whoever relays it is refused", "[verify]") {
  feed_item f(1, 4);
  const auto author = f.who.pub();

  SECTION("a changed text") {
    auto r = f.reply;
    auto body = *decode_body(r.entries[2].records[0].second);
    body.value = "\"status number 2 #kith (edited by the aggregator)\"";
    r.entries[2].records[0].second = encode_body(body);
    CHECK(refusal(r, author).find("does not match its signed batch") != std::string::npos);
  }
  SECTION("a changed time") {
    auto r = f.reply;
    auto body = *decode_body(r.entries[0].records[0].second);
    body.time_ms += 1;
    r.entries[0].records[0].second = encode_body(body);
    CHECK(refusal(r, author).find("does not match") != std::string::npos);
  }
  SECTION("a record moved to another key") {
    auto r = f.reply;
    std::swap(r.entries[0].records, r.entries[1].records);
    CHECK(refusal(r, author).find("does not match") != std::string::npos);
  }
  SECTION("a re-computed leaf without the author's key") {
    auto r = f.reply;
    auto body = *decode_body(r.entries[1].records[0].second);
    body.value = "\"forged\"";
    r.entries[1].records[0].second = encode_body(body);
    r.batches[0].leaves[1] = leaf_hash(r.topic, header_of(r.entries[1].key,
                                                         r.entries[1].records[0].first, body));
    CHECK(refusal(r, author).find("signature") != std::string::npos);
  }
  SECTION("a flipped signature bit") {
    auto r = f.reply;
    r.batches[0].sig.bytes[10] ^= 0x01;
    CHECK(refusal(r, author).find("signature") != std::string::npos);
  }
  SECTION("the batch left out") {
    auto r = f.reply;
    r.batches.clear();
    CHECK(refusal(r, author).find("without its signed batch") != std::string::npos);
  }
  SECTION("the binding left out") {
    auto r = f.reply;
    r.bindings.clear();
    CHECK(refusal(r, author).find("no binding") != std::string::npos);
  }
}

TEST_CASE("an item is refused when it is not what it claims to be", "[verify]") {
  feed_item a(1, 3);
  feed_item b(2, 3);
  SECTION("claimed for another author") {
    CHECK(refusal(a.reply, b.who.pub()).find("not of") != std::string::npos);
  }
  SECTION("another author's signed data under this author's feed") {
    auto r = b.reply;
    r.topic = a.reply.topic;
    CHECK(refusal(r, a.who.pub()) != "accepted");
  }
  SECTION("a binding of another identity") {
    auto r = a.reply;
    r.bindings.push_back(b.binding);
    CHECK(refusal(r, a.who.pub()).find("names") != std::string::npos);
  }
  SECTION("documents outside the author's id, even when signed by the author") {
    feed_item c(3, 2, to_text(a.who.pub()));
    CHECK(refusal(c.reply, c.who.pub()).find("outside the author's id") != std::string::npos);
  }
}
