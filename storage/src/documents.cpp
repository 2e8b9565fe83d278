#include "kith/storage/documents.hpp"

#include <algorithm>
#include <charconv>
#include <iterator>
#include <set>

namespace kith::storage {

namespace {

constexpr std::size_t max_predicate_bytes = 256;
constexpr std::size_t max_subject_bytes = 1024;

std::string key_of(const std::string& subject, const std::string& pred) {
  std::string k = subject;
  k.push_back('\0');
  k += pred;
  return k;
}

} // namespace

status check_subject(const std::string& subject) {
  auto slash = subject.find('/');
  if (slash == std::string::npos || slash + 1 >= subject.size())
    return error{errc::invalid, "a subject is \"<author id>/<path>\", e.g. <id>/statuses/1"};
  std::string why;
  if (!protocol::parse_id(subject.substr(0, slash), &why))
    return error{errc::invalid, "the subject's author id is not valid: " + why};
  if (subject.size() > max_subject_bytes || subject.find('\0') != std::string::npos)
    return error{errc::invalid, "a subject is at most 1024 bytes, without NUL bytes"};
  return ok_status();
}

json context_to_json(const version_vector& v) {
  json j = json::object();
  for (const auto& [id, n] : v.entries())
    j[std::to_string(id.value())] = n;
  return j;
}

std::optional<version_vector> context_from_json(const json& j) {
  if (!j.is_object())
    return std::nullopt;
  version_vector v;
  for (const auto& [k, n] : j.items()) {
    std::uint64_t id = 0;
    const auto end = k.data() + k.size();
    const auto [ptr, ec] = std::from_chars(k.data(), end, id);
    // Digits only, and within 64 bits (a 20-digit id may overflow).
    if (!n.is_number_unsigned() || k.empty() || ec != std::errc() || ptr != end ||
        !std::all_of(k.begin(), k.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return std::nullopt;
    v.raise(replica_id{id}, n.get<std::uint64_t>());
  }
  return v;
}

result<std::string> documents::topic_for(const std::string& subject, std::string topic) const {
  if (auto st = check_subject(subject); !st)
    return st.err();
  if (!topic.empty())
    return topic;
  auto pk = protocol::parse_id(subject.substr(0, subject.find('/')));
  return protocol::feed_topic(*pk).id;
}

result<std::vector<write_op>> documents::ops_for(const std::string& topic,
                                                const std::string& subject, const json& obj,
                                                const json& contexts) {
  if (!obj.is_object() || obj.empty())
    return error{errc::invalid, "a document is a non-empty JSON object"};
  if (!contexts.is_object())
    return error{errc::invalid, "contexts must be a JSON object of predicate -> context"};
  std::vector<write_op> ops;
  for (const auto& [pred, value] : obj.items()) {
    if (pred.empty() || pred.size() > max_predicate_bytes || pred.find('\0') != std::string::npos)
      return error{errc::invalid, "a property name is 1-256 bytes without NUL: \"" + pred + "\""};
    write_op op{key_of(subject, pred), value.dump(), {}};
    if (auto c = contexts.find(pred); c != contexts.end()) {
      auto v = context_from_json(*c);
      if (!v)
        return error{errc::invalid, "the context given for \"" + pred + "\" is malformed"};
      op.context = *v;
    } else {
      auto cur = store_.read(topic, op.key);
      if (!cur)
        return cur.err();
      op.context = cur->context;
    }
    ops.push_back(std::move(op));
  }
  return ops;
}

status documents::check_own(const std::string& subject, const std::string& topic) const {
  const std::string me = protocol::to_text(store_.author());
  if (topic.empty() && subject.rfind(me + "/", 0) != 0 && check_subject(subject))
    return error{errc::unauthorized,
                 "you can write only your own documents (" + me +
                     "/...) to your feed; to edit a group's document, name its shared topic"};
  return ok_status();
}

result<std::vector<dot>> documents::commit(const std::string& topic,
                                           const std::vector<write_op>& ops,
                                           std::uint64_t time_ms) {
  auto push = store_.write(topic, ops, time_ms);
  if (!push)
    return push.err();
  if (on_push_)
    on_push_(*push);
  std::vector<dot> dots;
  for (const auto& e : push->entries)
    for (const auto& [d, body] : e.records)
      dots.push_back(d);
  return dots;
}

result<std::vector<dot>> documents::put(const std::string& subject, const json& obj,
                                        std::uint64_t time_ms, std::string topic,
                                        const json& contexts) {
  if (auto own = check_own(subject, topic); !own)
    return own.err();
  auto t = topic_for(subject, std::move(topic));
  if (!t)
    return t.err();
  auto ops = ops_for(*t, subject, obj, contexts);
  if (!ops)
    return ops.err();
  return commit(*t, *ops, time_ms);
}

result<std::vector<dot>> documents::put_many(const std::vector<std::pair<std::string, json>>& docs,
                                             std::uint64_t time_ms, std::string topic) {
  if (docs.empty() || docs.size() > max_documents_per_batch)
    return error{errc::invalid, "a batch holds 1 to " + std::to_string(max_documents_per_batch) +
                                    " documents, not " + std::to_string(docs.size())};
  std::optional<std::string> t;
  std::set<std::string> seen;
  std::vector<write_op> ops;
  for (const auto& [subject, obj] : docs) {
    if (auto own = check_own(subject, topic); !own)
      return own.err();
    auto ti = topic_for(subject, topic);
    if (!ti)
      return ti.err();
    if (t && *t != *ti)
      return error{errc::invalid, "the documents of one batch must be in one topic; \"" +
                                      subject + "\" is in another"};
    t = std::move(*ti);
    if (!seen.insert(subject).second)
      return error{errc::invalid, "\"" + subject + "\" appears twice in one batch"};
    auto more = ops_for(*t, subject, obj, json::object());
    if (!more)
      return more.err();
    std::move(more->begin(), more->end(), std::back_inserter(ops));
  }
  return commit(*t, ops, time_ms);
}

result<json> documents::get(const std::string& subject, std::string topic) {
  auto t = topic_for(subject, std::move(topic));
  if (!t)
    return t.err();
  auto rows = store_.read_prefix(*t, subject + std::string(1, '\0'));
  if (!rows)
    return rows.err();
  json doc = json::object(), conflicts = json::object(), contexts = json::object();
  for (auto& [key, view] : *rows) {
    if (view.siblings.empty())
      continue;
    std::string pred = key.substr(subject.size() + 1);
    // Newest first (by the author's time, then by dot for a stable order).
    std::sort(view.siblings.begin(), view.siblings.end(), [](const auto& a, const auto& b) {
      return a.time_ms != b.time_ms ? a.time_ms > b.time_ms : b.d < a.d;
    });
    auto parse = [](const std::string& s) {
      auto j = json::parse(s, nullptr, false);
      return j.is_discarded() ? json(s) : j;
    };
    doc[pred] = parse(view.siblings.front().value);
    if (view.siblings.size() > 1) {
      json all = json::array();
      for (const auto& s : view.siblings)
        all.push_back(parse(s.value));
      conflicts[pred] = std::move(all);
    }
    contexts[pred] = context_to_json(view.context);
  }
  if (doc.empty())
    return json(nullptr);
  return json{{"subject", subject}, {"topic", *t}, {"doc", doc},
              {"conflicts", conflicts}, {"context", contexts}};
}

result<std::size_t> documents::del(const std::string& subject,
                                   const std::optional<std::string>& predicate,
                                   std::uint64_t time_ms, std::string topic) {
  auto t = topic_for(subject, std::move(topic));
  if (!t)
    return t.err();
  std::string prefix = subject + std::string(1, '\0') + predicate.value_or("");
  auto rows = store_.read_prefix(*t, prefix);
  if (!rows)
    return rows.err();
  std::vector<write_op> ops;
  for (const auto& [key, view] : *rows)
    if (!view.siblings.empty() && (!predicate || key == prefix))
      ops.push_back({key, std::nullopt, view.context});
  if (ops.empty())
    return std::size_t{0};
  auto push = store_.write(*t, ops, time_ms);
  if (!push)
    return push.err();
  if (on_push_)
    on_push_(*push);
  return ops.size();
}

result<std::string> documents::post(const std::string& text, std::uint64_t time_ms,
                                    const std::string& reply_to) {
  if (text.empty())
    return error{errc::invalid, "an empty post"};
  if (!reply_to.empty()) {
    if (auto st = check_subject(reply_to); !st)
      return error{errc::invalid, "reply_to: " + st.err().message};
    const auto author_end = reply_to.find('/');
    if (author_end == std::string::npos || reply_to.compare(author_end, 10, "/statuses/") != 0)
      return error{errc::invalid, "reply_to must name a status (<id>/statuses/...)"};
  }
  const auto clk = store_.clock_copy(store_.feed_topic_id());
  const std::uint64_t n = clk ? clk->base(store_.self_id()) + 1 : 1;
  std::string subject = protocol::to_text(store_.author()) + "/statuses/" +
                        std::to_string(time_ms) + "-" + std::to_string(n);
  json obj{{"text", text}, {"time", time_ms}};
  obj["tags"] = hashtags(text);
  obj["mentions"] = mentions(text);
  if (!reply_to.empty())
    obj["reply_to"] = reply_to;
  auto r = put(subject, obj, time_ms);
  if (!r)
    return r.err();
  return subject;
}

result<json> documents::hits_to_json(const std::vector<index_hit>& hits) {
  json out = json::array();
  for (const auto& h : hits) {
    std::string subject = h.key.substr(0, h.key.find('\0'));
    auto d = get(subject, h.topic);
    if (!d)
      return d.err();
    if (!d->is_null()) {
      (*d)["cursor"] = cursor_text(h.time_ms, h.d);
      out.push_back(std::move(*d));
    }
  }
  return out;
}

std::string cursor_text(std::uint64_t time_ms, dot d) {
  return std::to_string(time_ms) + "." + std::to_string(d.id.value()) + "." +
         std::to_string(d.n.value());
}

std::optional<std::pair<std::uint64_t, dot>> parse_cursor(std::string_view text) {
  std::uint64_t parts[3];
  std::size_t at = 0;
  for (int i = 0; i < 3; ++i) {
    const auto end = i < 2 ? text.find('.', at) : text.size();
    if (end == std::string_view::npos || end == at)
      return std::nullopt;
    auto r = std::from_chars(text.data() + at, text.data() + end, parts[i]);
    if (r.ec != std::errc{} || r.ptr != text.data() + end)
      return std::nullopt;
    at = end + 1;
  }
  return std::make_pair(parts[0], dot{replica_id{parts[1]}, causality::counter{parts[2]}});
}

result<json> documents::feed(const protocol::public_key& author, std::size_t limit,
                             std::uint64_t before_ms, const std::string& cursor) {
  std::optional<dot> after;
  if (!cursor.empty()) {
    auto c = parse_cursor(cursor);
    if (!c)
      return error{errc::invalid, "a feed cursor is <time>.<replica>.<counter>, as returned "
                                  "in a post's \"cursor\""};
    before_ms = c->first;
    after = c->second;
  }
  auto hits = store_.by_author(author, limit, before_ms, after);
  if (!hits)
    return hits.err();
  return hits_to_json(*hits);
}

result<json> documents::mentioning(const protocol::public_key& who, std::size_t limit,
                                   std::uint64_t before_ms) {
  auto hits = store_.by_mention(who, limit, before_ms);
  if (!hits)
    return hits.err();
  return hits_to_json(*hits);
}

result<json> documents::thread(const std::string& subject, std::size_t limit) {
  auto root = get(subject, {});
  if (!root)
    return root.err();
  json replies = json::array();
  std::vector<std::string> frontier{subject};
  std::set<std::string> seen{subject};
  while (!frontier.empty() && replies.size() < limit) {
    std::vector<std::string> next;
    for (const auto& s : frontier) {
      auto hits = store_.replies_to(s, limit);
      if (!hits)
        return hits.err();
      auto docs = hits_to_json(*hits);
      if (!docs)
        return docs.err();
      for (auto& d : *docs) {
        const auto sub = d.value("subject", std::string{});
        if (!seen.insert(sub).second || replies.size() >= limit)
          continue;
        next.push_back(sub);
        replies.push_back(std::move(d));
      }
    }
    frontier = std::move(next);
  }
  auto time_of = [](const json& d) {
    const auto& doc = d.value("doc", json::object());
    return doc.contains("time") && doc["time"].is_number() ? doc["time"].get<std::uint64_t>()
                                                            : std::uint64_t{0};
  };
  std::stable_sort(replies.begin(), replies.end(),
                   [&](const json& a, const json& b) { return time_of(a) < time_of(b); });
  return json{{"root", *root}, {"replies", replies}};
}

result<json> documents::replies_to_author(const protocol::public_key& author, std::size_t limit) {
  // The author's recent statuses, then the replies held to each.
  auto own = store_.by_author(author, limit);
  if (!own)
    return own.err();
  json out = json::array();
  for (const auto& h : *own) {
    auto hits = store_.replies_to(h.key.substr(0, h.key.find('\0')), limit);
    if (!hits)
      return hits.err();
    auto docs = hits_to_json(*hits);
    if (!docs)
      return docs.err();
    for (auto& d : *docs)
      out.push_back(std::move(d));
  }
  return out;
}

result<json> documents::tagged(const std::string& tag, std::size_t limit) {
  std::string t = tag;
  if (!t.empty() && t[0] == '#')
    t.erase(0, 1);
  std::transform(t.begin(), t.end(), t.begin(),
                 [](unsigned char c) { return c < 0x80 ? std::tolower(c) : c; });
  auto hits = store_.by_tag(t, limit);
  if (!hits)
    return hits.err();
  return hits_to_json(*hits);
}

} // namespace kith::storage
