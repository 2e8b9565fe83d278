// Standalone verification of signed data from a party that is not trusted
// to have checked it (an aggregator's answers). Everything needed travels
// in the reply; nothing is looked up in a store.

#include "kith/protocol/messages.hpp"

#include <map>

namespace kith::protocol {

namespace {

bool refuse(std::string* why, std::string reason) {
  if (why)
    *why = std::move(reason);
  return false;
}

} // namespace

std::optional<std::vector<proven_write>> verify_standalone(const signed_reply& r,
                                                           const public_key& author,
                                                           std::string* why) {
  const auto feed = feed_topic(author);
  if (r.topic != feed.id) {
    refuse(why, "the item is not of " + to_text(author) + "'s feed");
    return std::nullopt;
  }
  // Replicas of the author only: a binding is the author's own signature
  // over (author, nonce) -> replica id.
  std::map<replica_id, bool> replicas;
  for (const auto& b : r.bindings) {
    if (!check_binding(b)) {
      refuse(why, "a replica binding does not verify");
      return std::nullopt;
    }
    if (b.author != author) {
      refuse(why, "a replica binding names " + to_text(b.author) + ", not the author");
      return std::nullopt;
    }
    replicas[b.rid] = true;
  }
  std::map<std::pair<std::uint64_t, std::uint64_t>, const signed_batch*> batches;
  for (const auto& sb : r.batches) {
    if (sb.topic != r.topic || sb.leaves.empty() || sb.first == 0 ||
        sb.leaves.size() > signed_limits{}.max_batch_leaves) {
      refuse(why, "a malformed signed batch");
      return std::nullopt;
    }
    if (replicas.count(sb.rid) == 0) {
      refuse(why, "a batch of a replica with no binding in the item");
      return std::nullopt;
    }
    if (!check_batch(sb, author)) {
      refuse(why, "a batch signature by " + to_text(author) + " does not verify");
      return std::nullopt;
    }
    batches[{sb.rid.value(), sb.first}] = &sb;
  }
  const std::string owner_prefix = to_text(author) + "/";
  std::vector<proven_write> out;
  for (const auto& e : r.entries) {
    if (e.key.compare(0, owner_prefix.size(), owner_prefix) != 0) {
      refuse(why, "a document outside the author's id");
      return std::nullopt;
    }
    for (const auto& [d, bytes] : e.records) {
      auto body = decode_body(bytes);
      if (!body) {
        refuse(why, "a write body does not decode");
        return std::nullopt;
      }
      const signed_batch* by = nullptr;
      if (auto i = batches.upper_bound({d.id.value(), d.n.value()}); i != batches.begin())
        if (std::prev(i)->second->covers(d))
          by = std::prev(i)->second;
      if (!by) {
        refuse(why, "a write comes without its signed batch");
        return std::nullopt;
      }
      if (by->leaf(d) != leaf_hash(r.topic, header_of(e.key, d, *body))) {
        refuse(why, "a write does not match its signed batch (altered)");
        return std::nullopt;
      }
      out.push_back(proven_write{e.key, d, std::move(*body)});
    }
  }
  return out;
}

} // namespace kith::protocol
