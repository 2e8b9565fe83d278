// fuzz_seed_corpus <dir>: writes valid inputs for every fuzz target to
// <dir>/<target>/seed-<name>. Built and run at build time (fuzz/
// CMakeLists.txt), so the seeds follow the wire formats as they change.
// Uses the same fixed identities and world as the targets (common.hpp):
// signatures in the seeds verify inside the targets.

#include "kith/protocol/channel.hpp"
#include "kith/protocol/messages.hpp"
#include "kith/relay/messages.hpp"
#include "kith/storage/bundle.hpp"

#include "common.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

using namespace kith;
namespace fs = std::filesystem;

namespace {

fs::path out_root;
int written = 0;

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  const fs::path dir = out_root / target;
  fs::create_directories(dir);
  std::ofstream f(dir / ("seed-" + name), std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f)
    fuzz::invariant_failed("cannot write a seed", (dir / name).string());
  ++written;
}

std::string with_prefix(std::uint8_t a, const std::string& rest) {
  return std::string(1, static_cast<char>(a)) + rest;
}
std::string with_prefix(std::uint8_t a, std::uint8_t b, const std::string& rest) {
  return std::string(1, static_cast<char>(a)) + std::string(1, static_cast<char>(b)) + rest;
}

void frame_seeds() {
  const fuzz::channel_parties p;
  using protocol::channel;
  channel a(p.a, channel::role::initiator, p.eph_a, 0, p.b.pub(), fuzz::frame_limits());
  channel b(p.b, channel::role::responder, p.eph_b, 0, std::nullopt, fuzz::frame_limits());
  const std::string m1 = a.start();
  const auto o1 = b.receive(m1);
  const auto o2 = a.receive(o1.to_send);
  const auto o3 = b.receive(o2.to_send);
  if (a.state() != protocol::channel_state::established ||
      b.state() != protocol::channel_state::established || o3.error)
    fuzz::invariant_failed("the seed handshake failed");
  const std::string from_a = m1 + o2.to_send + *a.seal("hello") + *a.seal("") +
                             *a.seal(std::string(300, 'x'));
  const std::string from_b = o1.to_send + *b.seal("welcome") + *b.seal("{}");
  put("fuzz_frame", "responder-whole", with_prefix(0, 0, from_a));
  put("fuzz_frame", "responder-chunked", with_prefix(0, 5, from_a));
  put("fuzz_frame", "responder-msg1", with_prefix(0, 0, m1));
  put("fuzz_frame", "initiator-whole", with_prefix(1, 0, from_b));
  put("fuzz_frame", "initiator-chunked", with_prefix(1, 3, from_b));
  std::string bad = *a.seal("tampered");
  bad.back() = static_cast<char>(bad.back() ^ 1);
  put("fuzz_frame", "ciphertext-bad-tag", with_prefix(2, 0, bad));
  put("fuzz_frame", "ciphertext-short", with_prefix(2, 0, std::string("\0\0\0\x05hello", 9)));
  put("fuzz_frame", "plaintext-frames",
      with_prefix(3, 2, std::string("\x01") + std::string(16, 'a') + "\x00" + "\x02" +
                            std::string(32, 'b')));
  put("fuzz_frame", "tamper-none", with_prefix(4, 0, std::string(320, '\0')));
  put("fuzz_frame", "tamper-msg2", with_prefix(4, 0, std::string(41 + 40, '\0') + "\x01"));
  put("fuzz_frame", "ticks", with_prefix(5, 7, from_a));
  // Resumption: the ticket this handshake left, offered on a new channel.
  auto ticket = a.take_ticket();
  if (!ticket)
    fuzz::invariant_failed("the seed handshake issued no ticket");
  channel again(p.a, channel::role::initiator, p.eph_a, 0, p.b.pub(), fuzz::frame_limits());
  again.offer_ticket(*ticket);
  const std::string m1r = again.start();
  put("fuzz_frame", "resume-tamper-none", with_prefix(6, 0, std::string(160, '\0')));
  put("fuzz_frame", "resume-tamper-msg2", with_prefix(6, 0, std::string(57 + 40, '\0') + "\x01"));
  put("fuzz_frame", "resumed-responder-msg1r",
      with_prefix(7, 0, m1r + std::string("\0\0\0\x10", 4) + std::string(16, '\0')));
}

std::vector<std::pair<std::string, protocol::message>> messages(const fuzz::world& w) {
  std::vector<std::pair<std::string, protocol::message>> out;
  protocol::hello_msg h;
  h.binding = w.s1->binding();
  h.agent = "kith/0.1.0";
  out.emplace_back("hello", h);
  out.emplace_back("subscribe", protocol::subscribe_msg{{w.feed1.id, w.shared.id}});
  out.emplace_back("unsubscribe", protocol::unsubscribe_msg{{w.open.id}});
  out.emplace_back("offer", protocol::offer_msg{{w.feed1, w.shared, w.open}});
  protocol::sync_request_msg sr;
  sr.topic = w.feed1.id;
  sr.clock = *w.s1->clock_copy(w.feed1.id);
  out.emplace_back("sync-request", sr);
  for (const auto& [name, d] : w.fresh_data)
    out.emplace_back("data-" + name, d);
  protocol::watermark_msg wm;
  wm.topic = w.shared.id;
  wm.clock = *w.s2->clock_copy(w.shared.id);
  out.emplace_back("watermark", wm);
  out.emplace_back("resync-request", protocol::resync_request_msg{w.feed1.id, "", 64});
  out.emplace_back("resync-done", protocol::resync_done_msg{w.feed1.id, "k/notes", true});
  out.emplace_back("keepalive", protocol::keepalive_msg{42, true});
  out.emplace_back("error", protocol::error_msg{protocol::error_code::limit, "too big"});
  out.emplace_back("query-mentions",
                   protocol::query_msg{7, protocol::query_kind::mentions,
                                       protocol::to_text(w.s1->author()), 50, 0, 0});
  out.emplace_back("query-trending",
                   protocol::query_msg{8, protocol::query_kind::trending, "", 10, 1000, 0});
  // A data reply of s1's feed stands in for an answer item (a real answer
  // carries one document per item; the shape is the same).
  protocol::query_result_msg qr;
  qr.id = 7;
  for (const auto& [name, d] : w.fresh_data)
    if (d.reply.topic == w.feed1.id && qr.items.size() < 2)
      qr.items.push_back(protocol::query_item{w.s1->author(), d.reply});
  qr.tags = {{"kith", 3}, {"p2p", 1}};
  out.emplace_back("query-result", qr);
  out.emplace_back("query-refused",
                   protocol::query_result_msg{9, {}, {}, "this node is not an aggregator"});
  return out;
}

void message_seeds(const fuzz::world& w) {
  for (const auto& [name, m] : messages(w)) {
    const std::string bytes = protocol::encode_message(m);
    std::string why;
    if (!protocol::decode_message(bytes, {}, &why))
      fuzz::invariant_failed("a seed message does not decode", name + ": " + why);
    put("fuzz_message", name, bytes);
  }
}

void signed_seeds(const fuzz::world& w) {
  for (const auto& [name, m] : messages(w)) {
    if (name.rfind("data-", 0) != 0 && name != "hello" && name != "offer")
      continue;
    const std::string bytes = protocol::encode_message(m);
    put("fuzz_signed", name, with_prefix(0, bytes));
    put("fuzz_signed", name + "-resigned", with_prefix(1, bytes));
  }
  // Each genuine reply applies cleanly to the receiver's store.
  for (const auto& [name, d] : w.fresh_data) {
    auto s = w.receiver_store();
    if (auto st = s->apply(d.reply); !st)
      fuzz::invariant_failed("a seed reply does not apply", name + ": " + st.err().message);
  }
}

void json_doc_seeds() {
  put("fuzz_json_doc", "simple", "me/notes/2\n{\"doc\":{\"title\":\"hi\",\"tags\":[\"a\",\"b\"]}}");
  put("fuzz_json_doc", "overwrite", "me/notes/1\n{\"doc\":{\"title\":\"new\",\"n\":2.5}}");
  put("fuzz_json_doc", "contexts",
      "me/notes/1\n{\"doc\":{\"title\":\"ctx\"},\"contexts\":{\"title\":{\"1\":1}}}");
  put("fuzz_json_doc", "nested",
      "me/a/b/c\n{\"doc\":{\"x\":{\"y\":[1,{\"z\":null}],\"u\":\"\\u00e9\"}},\"topic\":null}");
  put("fuzz_json_doc", "bad-subject", "nobody/notes\n{\"doc\":{\"a\":1}}");
  const auto me = protocol::to_text(fuzz::person(100).pub());
  const auto group =
      protocol::make_topic(fuzz::person(100), protocol::topic_kind::shared, "docs",
                           {fuzz::person(1).pub()}, 5);
  put("fuzz_json_doc", "shared-topic",
      me + "/plans/1\n{\"doc\":{\"when\":\"monday\"},\"topic\":\"" + group.id + "\"}");
}

void config_seeds() {
  put("fuzz_config", "empty", "");
  put("fuzz_config", "full",
      "[node]\nlisten = \"0.0.0.0:7411\"\napi = \"127.0.0.1:0\"\nlog_level = \"debug\"\n"
      "relays = [\"relay.example:7412\", \"[::1]:7412\"]\nsync_writes = false\n\n"
      "[sync]\nanti_entropy_seconds = 60\n");
  put("fuzz_config", "inline-tables",
      "node = { listen = \"\", api = '127.0.0.1:7410' }\nsync.anti_entropy_seconds = 0x10\n");
  put("fuzz_config", "types",
      "# comment\n[node]\nlisten = \"\"\"\nmulti\"\"\"\nrelays = []\n[sync]\n"
      "anti_entropy_seconds = 1_000\n");
  put("fuzz_config", "wrong", "[node]\nsync_writes = 1\n[[sync]]\nx = 1979-05-27T07:32:00Z\n");
}

void api_seeds() {
  const auto req = [](const std::string& method, const std::string& target,
                      const std::string& body = {}, const std::string& extra = {}) {
    std::string r = method + " " + target + " HTTP/1.1\r\nHost: @HOST@\r\n" + extra;
    if (!body.empty() || method == "POST" || method == "PUT")
      r += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n";
    return r + "\r\n" + body;
  };
  put("fuzz_api_request", "status", req("GET", "/v1/status"));
  put("fuzz_api_request", "peers-keepalive",
      req("GET", "/v1/peers") + req("GET", "/v1/topics", {}, "Connection: close\r\n"));
  put("fuzz_api_request", "follow", req("POST", "/v1/follow", "{\"id\":\"kabc\",\"address\":\"127.0.0.1:7411\"}"));
  put("fuzz_api_request", "connect", req("POST", "/v1/connect", "{\"address\":\"[::1]:1\"}"));
  put("fuzz_api_request", "post", req("POST", "/v1/posts", "{\"text\":\"hi #tag\"}"));
  put("fuzz_api_request", "feed", req("GET", "/v1/feed?author=me&limit=10"));
  put("fuzz_api_request", "put-doc",
      req("PUT", "/v1/docs/me%2Fnotes%2F1", "{\"doc\":{\"a\":[1,2]},\"contexts\":{\"a\":{\"1\":2}}}"));
  put("fuzz_api_request", "get-doc", req("GET", "/v1/docs/me/notes/1?topic=t%C3%A9"));
  put("fuzz_api_request", "del-doc", req("DELETE", "/v1/docs/me/notes/1?predicate=a"));
  put("fuzz_api_request", "tags", req("GET", "/v1/tags/hello?limit=5"));
  put("fuzz_api_request", "bundle", req("GET", "/v1/bundle?topic=feed%2Fx") +
                                        req("POST", "/v1/bundle", "KITHBNDL"));
  put("fuzz_api_request", "events", req("GET", "/v1/events"));
  put("fuzz_api_request", "origin",
      req("GET", "/v1/status", {}, "Origin: http://@HOST@\r\n"));
  put("fuzz_api_request", "bad-host", "GET /v1/status HTTP/1.1\r\nHost: evil.example\r\n\r\n");
  put("fuzz_api_request", "expect-continue",
      req("POST", "/v1/posts", "{\"text\":\"x\"}", "Expect: 100-continue\r\n"));
  put("fuzz_api_request", "chunked",
      "POST /v1/posts HTTP/1.1\r\nHost: @HOST@\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\n{\"tex\r\n9\r\nt\":\"hi\"}\r\n0\r\n\r\n");
  put("fuzz_api_request", "http10", "GET /v1/status HTTP/1.0\r\nHost: @HOST@\r\n\r\n");
  put("fuzz_api_request", "static", req("GET", "/index.html"));
}

void bundle_seeds(const fuzz::world& w) {
  put("fuzz_bundle", "w1-feed",
      fuzz::must(storage::export_bundle(*w.s1, w.w1, w.feed1.id, 2), "export_bundle"));
  put("fuzz_bundle", "w2-shared",
      fuzz::must(storage::export_bundle(*w.s2, w.w2, w.shared.id), "export_bundle"));
  put("fuzz_bundle", "w3-open",
      fuzz::must(storage::export_bundle(*w.s3, w.w3, w.open.id), "export_bundle"));
}

/// Every relay message kind, default-valued (with a request id where it
/// has one), that the decoder accepts back.
template <std::size_t... I>
void relay_seeds(std::index_sequence<I...>) {
  auto one = [](auto m) {
    using T = decltype(m);
    if constexpr (std::is_same_v<T, relay::unknown_msg>) {
      return;
    } else {
      if constexpr (std::is_same_v<T, relay::ping_msg> || std::is_same_v<T, relay::lookup_msg>)
        m.req = 7;
      const relay::relay_message rm = m;
      std::string bytes;
      try {
        bytes = relay::encode_relay_message(rm);
      } catch (const std::exception&) {
        return;
      }
      if (relay::decode_relay_message(bytes))
        put("fuzz_relay_message", relay::relay_message_name(rm), bytes);
    }
  };
  (one(std::variant_alternative_t<I, relay::relay_message>{}), ...);
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <output dir>\n", argv[0]);
    return 2;
  }
  out_root = argv[1];
  const fuzz::world w;
  frame_seeds();
  message_seeds(w);
  signed_seeds(w);
  json_doc_seeds();
  config_seeds();
  api_seeds();
  bundle_seeds(w);
  relay_seeds(std::make_index_sequence<std::variant_size_v<relay::relay_message>>{});
  std::printf("fuzz_seed_corpus: %d seeds in %s\n", written, out_root.string().c_str());
  return 0;
}
