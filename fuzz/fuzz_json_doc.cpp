// fuzz_json_doc: a document write as the API receives it, down to the
// store. Input: "<subject>\n<request body>", the body being what
// PUT /v1/docs/<subject> carries ({"doc": {...}, "topic": "...",
// "contexts": {...}}). The steps mirror the node's path (docs/api.md):
//   the API server: the body parsed by nlohmann within the API's depth
//     limit (api_server_options::max_json_depth), "doc" an object,
//     "topic" a string, "contexts" an object;
//   the node actor: "me/" resolved to the node's id, check_subject, the
//     topic defaulting to the subject author's feed, which must be held;
//   the topic actor: documents::put with the topic named, where only
//     nlohmann::json::exception is caught (anything else escaping is a
//     crash here, and an actor killed by an exception in the node).
// After a successful put, documents::get must show every property just
// written, and deleting the subject must leave no document.

#include "kith/node/api_server.hpp"
#include "kith/storage/documents.hpp"

#include "common.hpp"

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

using namespace kith;
using storage::json;

namespace {

struct setup {
  protocol::identity me = fuzz::person(100);
  std::string me_text = protocol::to_text(me.pub());
  protocol::topic_descriptor group =
      protocol::make_topic(me, protocol::topic_kind::shared, "docs", {fuzz::person(1).pub()}, 5);
  fuzz::kv_rows rows;

  setup() {
    auto kv = storage::make_memory_kv();
    const storage::kv_store* view = kv.get();
    auto s = fuzz::must(storage::store::open(std::move(kv), me, fuzz::store_opts(fuzz::receiver_nonce)),
                        "open");
    fuzz::must(s->add_topic(group), "add_topic");
    // One existing document, so puts meet siblings and contexts.
    storage::documents docs(*s);
    (void)fuzz::must(docs.put(me_text + "/notes/1", json{{"title", "old"}, {"n", 1}},
                              fuzz::base_time_ms, protocol::feed_topic(me.pub()).id),
                     "put");
    rows = fuzz::snapshot(*view);
  }
};

const setup& the_setup() {
  static const setup s;
  return s;
}

/// The API's parse: nlohmann within the depth limit, an object.
std::optional<json> parse_body(std::string_view body, std::size_t max_depth) {
  if (body.empty())
    return std::nullopt;
  struct too_deep {};
  try {
    json j = json::parse(body, [&](int depth, json::parse_event_t, json&) {
      if (static_cast<std::size_t>(depth) > max_depth)
        throw too_deep{};
      return true;
    });
    if (!j.is_object())
      return std::nullopt;
    return j;
  } catch (const json::exception&) {
    return std::nullopt;
  } catch (const too_deep&) {
    return std::nullopt;
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto nl = in.find('\n');
  if (nl == std::string_view::npos)
    return 0;
  const auto& env = the_setup();
  std::string subject(in.substr(0, nl));
  if (subject.rfind("me/", 0) == 0)
    subject = env.me_text + subject.substr(2);
  (void)storage::check_subject(subject);

  const node::api_server_options api_defaults;
  auto body = parse_body(in.substr(nl + 1), api_defaults.max_json_depth);
  if (!body)
    return 0;
  const auto doc = body->find("doc");
  if (doc == body->end() || !doc->is_object())
    return 0;
  std::string topic;
  if (auto t = body->find("topic"); t != body->end() && !t->is_null()) {
    if (!t->is_string())
      return 0;
    topic = t->get<std::string>();
  }
  json contexts = json::object();
  if (auto c = body->find("contexts"); c != body->end() && !c->is_null()) {
    if (!c->is_object())
      return 0;
    contexts = *c;
  }

  if (!storage::check_subject(subject))
    return 0;
  if (topic.empty())
    topic = protocol::feed_topic(*protocol::parse_id(subject.substr(0, subject.find('/')))).id;
  auto s = fuzz::reopen(env.rows, env.me, fuzz::receiver_nonce);
  if (!s->topic(topic))
    return 0; // 404: the node does not hold it

  storage::documents docs(*s);
  storage::result<std::vector<causality::dot>> put = std::vector<causality::dot>{};
  try {
    put = docs.put(subject, *doc, fuzz::base_time_ms + 1, topic, contexts);
  } catch (const json::exception&) {
    return 0; // the topic actor answers 400
  }
  if (!put)
    return 0;

  auto got = docs.get(subject, topic);
  if (!got || got->is_null())
    fuzz::invariant_failed("a document just written cannot be read",
                           got ? "null" : got.err().message);
  for (const auto& [pred, value] : doc->items()) {
    const auto& shown = (*got)["doc"];
    if (!shown.contains(pred) || shown[pred] != value)
      fuzz::invariant_failed("get does not show the value just put", pred);
  }
  auto deleted = docs.del(subject, std::nullopt, fuzz::base_time_ms + 2, topic);
  if (!deleted)
    fuzz::invariant_failed("deleting a document just written fails", deleted.err().message);
  auto after = docs.get(subject, topic);
  if (!after || !after->is_null())
    fuzz::invariant_failed("a deleted document is still shown");
  return 0;
}
