#include "kith/causality/anti_entropy.hpp"

#include <algorithm>
#include <map>

namespace kith::causality {

std::vector<delta_entry>
plan_reply_entries(const node_clock& local_clock, const dot_key_map& dkm,
                   const container_source& store, const node_clock& peer_clock) {
  std::map<key_type, std::vector<dot>> keys;
  for (const dot& d : local_clock.missing_from(peer_clock))
    if (const key_type* k = dkm.find(d))
      keys[*k].push_back(d);
  // A dot with no dot-key entry was pruned: the watermark says every member
  // has it, so the peer cannot be missing it unless it is not a member (a
  // returning replica needs a snapshot instead).
  std::vector<delta_entry> out;
  out.reserve(keys.size());
  for (auto& [k, dots] : keys) {
    // Dots the container holds travel with it: list only the rest. The
    // sender's own dots are listed too although its clock entry covers them:
    // the asker needs their keys in its dot-key map to serve them onwards
    // once the sender is gone.
    container c = store.load(k).value_or(container{});
    dots.erase(std::remove_if(dots.begin(), dots.end(), [&](dot d) { return c.holds(d); }),
               dots.end());
    out.push_back({k, std::move(c), std::move(dots)});
  }
  return out;
}

node_clock clock_after(const node_clock& local_clock, const apply_plan& plan) {
  node_clock c = local_clock;
  for (const auto& [d, k] : plan.new_dots)
    c.add(d);
  if (plan.sender_entry)
    c.join_entry(plan.sender_entry->first, plan.sender_entry->second);
  return c;
}

apply_plan plan_apply(const node_clock& local_clock, const container_source& store,
                      const delta& d, bool merge_sender_entry) {
  apply_plan plan;
  if (merge_sender_entry)
    if (const auto* e = d.clock.find(d.from))
      plan.sender_entry = std::make_pair(d.from, *e);

  // Fill every received container with the sender's bases first; if a key
  // appears twice, the entries are merged (sync is a join).
  const node_clock sender_bases = d.clock.base_only();
  std::map<key_type, container> received;
  for (const auto& [k, c, resolves] : d.entries) {
    container filled = c;
    filled.fill(sender_bases);
    for (const auto& [dt, s] : filled.dots())
      plan.new_dots.emplace_back(dt, k);
    for (const dot& dt : resolves)
      if (filled.context().covers(dt))
        plan.new_dots.emplace_back(dt, k);
    auto [it, fresh] = received.emplace(k, filled);
    if (!fresh)
      it->second = container::sync(it->second, filled);
  }

  const node_clock after = clock_after(local_clock, plan);
  for (auto& [k, r] : received) {
    container local = store.load(k).value_or(container{});
    local.fill(local_clock);
    container merged = container::sync(r, local);
    if (merged == local)
      continue;
    merged.drop_delete_markers();
    merged.strip(after);
    plan.changes.push_back({k, std::move(merged)});
  }
  return plan;
}

} // namespace kith::causality
