#pragma once

// What a peer actor knows per topic (actors/src/peer_actor.cpp). In its
// own header so that tests/actors can check it against a naive model.

#include "kith/actors/interfaces.hpp"
#include "kith/protocol/topic_name.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace kith::actors::detail {

/// Anti-entropy of one offered topic: the next round, and how many rounds
/// in a row brought nothing (with settings.anti_entropy_idle_max, each
/// doubles the wait, up to that).
struct round_timing {
  std::uint64_t next_ms = 0;
  std::uint64_t started_ms = 0; // when the last round was asked for
  std::uint32_t idle = 0;
  /// The wait after this round is stretched or shrunk by this many
  /// thousandths (drawn per round, within ±100), so that rounds begun
  /// together do not stay in step.
  std::int16_t jitter_permille = 0;
  bool brought = false; // an earlier part of the current answer brought writes
};

/// What a peer actor knows per topic, in one vector sorted by topic id:
/// which of the flags below hold (we pull it from the peer, the peer
/// offered it, the peer subscribed to it, the peer asked for it while we
/// did not hold it, a watermark report is due), the local topic actor and
/// the anti-entropy timing. A topic with none of these has no entry. One set or map per fact
/// cost a tree node and a copy of the 38-62 byte topic id per fact (about
/// 550 bytes per topic of a followed peer; docs/simulation.md, session
/// 17). Iteration is in topic order, as the sets' was. References into it
/// last until the next call that may add a topic (set, round, set_actor).
class topic_links {
public:
  enum flag : std::uint8_t {
    pulling = 1,      ///< topics we want from this peer
    offered = 2,      ///< ... that it offered (rounds run on these)
    serving = 4,      ///< topics it subscribed to
    asked_unheld = 8, ///< ... that we did not hold when asked
    mark_due = 16,    ///< a watermark report to send
  };

  [[nodiscard]] bool has(const std::string& topic, flag f) const {
    const auto* l = find(topic);
    return l && (l->flags & f) != 0;
  }
  /// Sets `f` on `topic`; true if it was not set.
  bool set(const std::string& topic, flag f) {
    auto& l = get(topic);
    const bool was = (l.flags & f) != 0;
    l.flags |= f;
    return !was;
  }
  /// Clears `f` on `topic`; true if it was set.
  bool clear(const std::string& topic, flag f) {
    auto it = lower(topic);
    if (it == links_.end() || it->topic != topic || (it->flags & f) == 0)
      return false;
    it->flags &= static_cast<std::uint8_t>(~f);
    prune(it);
    return true;
  }
  /// Clears `f` on every topic.
  void clear_all(flag f) {
    for (auto& l : links_)
      l.flags &= static_cast<std::uint8_t>(~f);
    links_.erase(std::remove_if(links_.begin(), links_.end(), [](const link& l) { return empty(l); }),
                 links_.end());
  }
  [[nodiscard]] bool any(flag f) const {
    return std::any_of(links_.begin(), links_.end(), [f](const link& l) { return (l.flags & f) != 0; });
  }
  /// Whether any topic has any flag (only cached actors and timings, or
  /// nothing, otherwise).
  [[nodiscard]] bool any_flag() const {
    return std::any_of(links_.begin(), links_.end(), [](const link& l) { return l.flags != 0; });
  }
  [[nodiscard]] std::size_t count(flag f) const {
    return static_cast<std::size_t>(
        std::count_if(links_.begin(), links_.end(), [f](const link& l) { return (l.flags & f) != 0; }));
  }
  /// The topics with `f`, in order.
  [[nodiscard]] std::vector<std::string> with(flag f) const {
    std::vector<std::string> out;
    for (const auto& l : links_)
      if ((l.flags & f) != 0)
        out.push_back(l.topic);
    return out;
  }
  /// Calls fn(topic, round or nullptr) for each topic with `f`, in order;
  /// fn must not add topics.
  template <class F>
  void each(flag f, F fn) const {
    for (const auto& l : links_)
      if ((l.flags & f) != 0)
        fn(l.topic, l.has_round ? &l.round : nullptr);
  }

  /// The local topic actor of `topic`, if known.
  [[nodiscard]] std::optional<topic_actor> actor(const std::string& topic) const {
    const auto* l = find(topic);
    if (!l || !l->has_actor)
      return std::nullopt;
    return l->actor;
  }
  /// As actor(), for topics that must have one (a bug otherwise).
  [[nodiscard]] topic_actor actor_at(const std::string& topic) const {
    auto a = actor(topic);
    if (!a)
      throw std::out_of_range("peer actor: no topic actor for " + topic);
    return *a;
  }
  void set_actor(const std::string& topic, topic_actor a) {
    auto& l = get(topic);
    l.actor = std::move(a);
    l.has_actor = true;
  }
  /// The round timing of `topic`, made (all zero) on first use.
  round_timing& round(const std::string& topic) {
    auto& l = get(topic);
    l.has_round = true;
    return l.round;
  }

private:
  struct link {
    protocol::topic_name topic; // shared with every other holder of the id
    topic_actor actor;
    round_timing round;
    std::uint8_t flags = 0;
    bool has_actor = false;
    bool has_round = false;
  };
  static bool empty(const link& l) {
    return l.flags == 0 && !l.has_actor && !l.has_round;
  }
  std::vector<link>::iterator lower(const std::string& topic) {
    return std::lower_bound(links_.begin(), links_.end(), topic,
                            [](const link& l, const std::string& t) { return l.topic < t; });
  }
  [[nodiscard]] const link* find(const std::string& topic) const {
    auto it = std::lower_bound(links_.begin(), links_.end(), topic,
                               [](const link& l, const std::string& t) { return l.topic < t; });
    return it != links_.end() && it->topic == topic ? &*it : nullptr;
  }
  link& get(const std::string& topic) {
    auto it = lower(topic);
    if (it == links_.end() || it->topic != topic) {
      it = links_.insert(it, link{});
      it->topic = topic;
    }
    return *it;
  }
  void prune(std::vector<link>::iterator it) {
    if (empty(*it))
      links_.erase(it);
  }
  std::vector<link> links_;
};

} // namespace kith::actors::detail
