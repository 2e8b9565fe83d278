// Aggregator queries: answering them from the store (an aggregator node)
// and turning an answer into posts after verifying every item (any node
// that asks). docs/app.md, "Aggregators", describes what each side trusts.

#include "internal.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <set>

namespace kith::actors::detail {

namespace {

using nlohmann::json;

/// What one answer may carry: the wire limit on items, and a byte budget
/// well under a frame so the answer never needs splitting.
constexpr std::size_t max_answer_bytes = 2u << 20;

std::size_t reply_bytes(const protocol::signed_reply& r) {
  std::size_t n = 0;
  for (const auto& e : r.entries) {
    n += e.key.size();
    for (const auto& rec : e.records)
      n += rec.second.size() + 16;
  }
  for (const auto& b : r.batches)
    n += b.leaves.size() * 32 + 64;
  return n + r.bindings.size() * 120;
}

/// Adds the proven document of every hit, once per subject, within limits.
void add_items(const node_env& env, const std::vector<storage::index_hit>& hits,
               std::size_t limit, std::set<std::string>& seen, std::size_t& bytes,
               protocol::query_result_msg& out) {
  const auto max_items = env.settings.messages.max_query_items;
  for (const auto& h : hits) {
    if (out.items.size() >= std::min(limit, max_items) || bytes >= max_answer_bytes)
      return;
    const auto subject = h.key.substr(0, h.key.find('\0'));
    if (!seen.insert(subject).second)
      continue;
    auto author = protocol::parse_id(subject.substr(0, subject.find('/')));
    // Public feed documents only: a shared topic's data is its members'.
    if (!author || protocol::feed_topic(*author).id != h.topic)
      continue;
    auto proof = env.store->prove_prefix(h.topic, subject + std::string(1, '\0'), 64);
    if (!proof) {
      env.logf(log_level::warn, "query: could not prove " + subject + ": " + proof.err().message);
      continue;
    }
    if (proof->entries.empty())
      continue;
    bytes += reply_bytes(*proof);
    out.items.push_back(protocol::query_item{*author, std::move(*proof)});
  }
}

} // namespace

protocol::query_result_msg answer_query(const node_env& env, const protocol::query_msg& q) {
  using protocol::query_kind;
  protocol::query_result_msg out;
  out.id = q.id;
  const std::size_t limit = std::clamp<std::size_t>(q.limit, 1, 100);
  std::set<std::string> seen;
  std::size_t bytes = 0;
  auto& store = *env.store;
  switch (q.kind) {
    case query_kind::mentions: {
      std::string why;
      auto who = protocol::parse_id(q.arg, &why);
      if (!who) {
        out.refused = "not an identity: " + why;
        return out;
      }
      auto hits = store.by_mention(*who, limit, q.until_ms);
      if (!hits) {
        out.refused = hits.err().message;
        return out;
      }
      add_items(env, *hits, limit, seen, bytes, out);
      // Replies to the identity's statuses are notifications too.
      auto own = store.by_author(*who, limit);
      if (own)
        for (const auto& h : *own) {
          auto replies = store.replies_to(h.key.substr(0, h.key.find('\0')), limit);
          if (replies)
            add_items(env, *replies, limit, seen, bytes, out);
        }
      return out;
    }
    case query_kind::thread: {
      const auto& root = q.arg;
      auto author = protocol::parse_id(root.substr(0, root.find('/')));
      if (!author || root.find("/statuses/") == std::string::npos) {
        out.refused = "not a status subject: " + root;
        return out;
      }
      // The root, then replies breadth first (replies to replies too).
      storage::index_hit self_hit;
      self_hit.topic = protocol::feed_topic(*author).id;
      self_hit.key = root + std::string(1, '\0') + "text";
      add_items(env, {self_hit}, limit, seen, bytes, out);
      std::vector<std::string> frontier{root};
      while (!frontier.empty() && out.items.size() < limit) {
        std::vector<std::string> next;
        for (const auto& s : frontier) {
          auto hits = store.replies_to(s, limit);
          if (!hits)
            continue;
          const auto before = out.items.size();
          add_items(env, *hits, limit, seen, bytes, out);
          for (auto i = before; i < out.items.size(); ++i) {
            const auto& k = out.items[i].reply.entries.front().key;
            next.push_back(k.substr(0, k.find('\0')));
          }
        }
        frontier = std::move(next);
      }
      return out;
    }
    case query_kind::tag: {
      auto hits = store.by_tag(q.arg, limit);
      if (!hits) {
        out.refused = hits.err().message;
        return out;
      }
      add_items(env, *hits, limit, seen, bytes, out);
      return out;
    }
    case query_kind::trending: {
      const auto until = q.until_ms == 0 ? std::numeric_limits<std::uint64_t>::max() : q.until_ms;
      auto tags = store.trending(q.since_ms, until,
                                 std::min(limit, env.settings.messages.max_query_tags));
      if (!tags) {
        out.refused = tags.err().message;
        return out;
      }
      for (auto& t : *tags)
        out.tags.push_back(protocol::tag_count_msg{std::move(t.tag), t.count});
      return out;
    }
  }
  out.refused = "unknown query";
  return out;
}

json verified_posts(const protocol::query_result_msg& r, const std::string& source,
                    std::vector<std::string>& refusals) {
  json out = json::array();
  for (const auto& item : r.items) {
    std::string why;
    auto writes = protocol::verify_standalone(item.reply, item.author, &why);
    if (!writes) {
      refusals.push_back(protocol::to_text(item.author).substr(0, 12) + "…: " + why);
      continue;
    }
    // Group by subject; per property the newest live write wins, the
    // others are conflicts (as in a local document).
    std::map<std::string, std::map<std::string, std::vector<const protocol::proven_write*>>> docs;
    for (const auto& w : *writes) {
      const auto nul = w.key.find('\0');
      if (nul == std::string::npos || w.body.deleted)
        continue;
      docs[w.key.substr(0, nul)][w.key.substr(nul + 1)].push_back(&w);
    }
    for (auto& [subject, props] : docs) {
      json doc = json::object(), conflicts = json::object();
      for (auto& [pred, ws] : props) {
        std::sort(ws.begin(), ws.end(), [](const auto* a, const auto* b) {
          return a->body.time_ms != b->body.time_ms ? a->body.time_ms > b->body.time_ms
                                                    : b->d < a->d;
        });
        auto parse = [](const std::string& s) {
          auto j = json::parse(s, nullptr, false);
          return j.is_discarded() ? json(s) : j;
        };
        doc[pred] = parse(ws.front()->body.value);
        if (ws.size() > 1) {
          json all = json::array();
          for (const auto* w : ws)
            all.push_back(parse(w->body.value));
          conflicts[pred] = std::move(all);
        }
      }
      out.push_back(json{{"subject", subject},
                         {"topic", item.reply.topic},
                         {"doc", doc},
                         {"conflicts", conflicts},
                         {"via", source},
                         {"verified", true}});
    }
  }
  return out;
}

} // namespace kith::actors::detail
