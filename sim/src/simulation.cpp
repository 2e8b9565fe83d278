#include "kith/sim/simulation.hpp"

#include "kith/actors/node.hpp"
#include "kith/actors/relay_host.hpp"
#include "kith/actors/sim_network.hpp"
#include "kith/storage/documents.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>

#include <toml++/toml.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <queue>
#include <set>
#include <random>

namespace kith::sim {

namespace {

using nlohmann::json;
using namespace std::chrono;

std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

/// One simulated world: the actor system on the testing scheduler, the
/// network, the nodes.
class world {
public:
  explicit world(const scenario& s)
      : s_(s), rng_(s.seed), net_(std::make_shared<actors::sim_network>(milliseconds(s.latency_ms))) {
    cfg_.set("scheduler.policy", caf::atom("testing"));
    net_->set_faults(milliseconds(s.jitter_ms), s.reset_probability, s.seed ^ 0xfa017ull);
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    sched_ = &dynamic_cast<caf::scheduler::test_coordinator&>(sys_->scheduler());
  }

  ~world() {
    for (auto& n : nodes_)
      caf::anon_send(n.actor, actors::stop_atom::value);
    if (relay_)
      caf::anon_send_exit(relay_, caf::exit_reason::user_shutdown);
    sched_->run();
  }

  struct node {
    std::string address;
    std::shared_ptr<actors::node_env> env;
    actors::node_actor actor;
    bool up = true;
    bool crashed = false;
    std::vector<std::size_t> follows;
  };

  void build() {
    std::string relay_at;
    if (s_.relay) {
      auto id = protocol::identity::from_seed(actors::seed_for(s_.seed, 5000));
      relay_ = actors::spawn_relay_host(*sys_, net_->make_transport(*sys_, "sim:relay"), id,
                                        actors::seed_for(s_.seed, 5001), relay_options());
      net_->listen("sim:relay", relay_);
      relay_at = "sim:relay#" + protocol::to_text(id.pub());
    }
    for (std::uint32_t i = 0; i < s_.nodes; ++i) {
      auto id = protocol::identity::from_seed(actors::seed_for(s_.seed, i));
      storage::store_options o;
      o.replica_nonce = s_.seed * 1'000'003u + i + 1;
      o.sync = false;
      auto st = storage::store::open(storage::make_memory_kv(), id, o);
      if (!st)
        throw std::runtime_error("store: " + st.err().message);
      auto env = std::make_shared<actors::node_env>(actors::node_env{id, std::move(st.value()), {}, {}, {}});
      env->rng = std::make_shared<actors::entropy>(actors::seed_for(s_.seed, 1000 + i));
      env->settings.anti_entropy = seconds(s_.anti_entropy_s);
      const std::string address = "sim:" + std::to_string(i);
      env->transport = net_->make_transport(*sys_, address);
      if (s_.relay) {
        env->relays = {relay_at};
        env->announce = {address};
      }
      nodes_.push_back({address, env, actors::spawn_node(*sys_, env), true, {}});
      net_->listen(address, caf::actor_cast<caf::actor>(nodes_.back().actor));
    }
    // Follows: each node follows `follows` distinct others.
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      std::vector<std::size_t> others;
      for (std::size_t j = 0; j < nodes_.size(); ++j)
        if (j != i)
          others.push_back(j);
      std::shuffle(others.begin(), others.end(), rng_);
      others.resize(std::min<std::size_t>(others.size(), s_.follows));
      for (auto j : others) {
        json p{{"id", id_of(j)}};
        if (!s_.relay)
          p["address"] = nodes_[j].address;
        api(i, "follow", p);
      }
      nodes_[i].follows = std::move(others);
    }
  }

  actors::relay_host_options relay_options() const {
    actors::relay_host_options o;
    // Every simulated node is its own host ("sim:<n>"), not one IP "sim".
    o.ip_of = [](const std::string& address) { return address; };
    // One relay serves the whole simulated network.
    o.limits.max_registrations_per_ip = 1;
    return o;
  }

  std::string id_of(std::size_t i) const { return protocol::to_text(nodes_[i].env->self.pub()); }

  std::uint64_t now_ms() const {
    return static_cast<std::uint64_t>(
        duration_cast<milliseconds>(sched_->clock().now().time_since_epoch()).count());
  }

  /// Runs everything up to virtual time `t_ms`, stepping to each timer in
  /// order (never jumping over one: docs/simulation.md).
  void advance_to(std::uint64_t t_ms) {
    auto& clk = sched_->clock();
    const auto target = caf::actor_clock::time_point{milliseconds(t_ms)};
    for (;;) {
      sched_->run();
      ++steps_;
      if (clk.schedule().empty() || clk.schedule().begin()->first > target) {
        if (clk.current_time < target)
          clk.current_time = target;
        sched_->run();
        return;
      }
      clk.trigger_timeout();
    }
  }

  actors::api_result api(std::size_t i, const std::string& op, const json& params) {
    auto out = std::make_shared<std::optional<actors::api_result>>();
    auto target = nodes_[i].actor;
    const std::uint64_t t = 1'700'000'000'000 + now_ms();
    sys_->spawn(
        [=](caf::event_based_actor* self, int) {
          self->request(target, caf::infinite, actors::api_atom::value, op, params.dump(),
                        std::string{}, t)
              .then([=](const actors::api_result& r) { *out = r; });
        },
        0);
    for (int i = 0; i < 1000 && !out->has_value(); ++i)
      sched_->run();
    if (!out->has_value())
      throw std::runtime_error("api " + op + " did not answer");
    return **out;
  }

  /// A crash: the node's actors stop (its connections close); restart()
  /// spawns them again over the same store, as a restarted process would.
  void crash(std::size_t i) {
    auto& n = nodes_[i];
    n.crashed = true;
    net_->unlisten(n.address);
    caf::anon_send(n.actor, actors::stop_atom::value);
    sched_->run();
  }
  void restart(std::size_t i) {
    auto& n = nodes_[i];
    n.crashed = false;
    n.env->relays_handle = actors::relays_actor{};
    n.actor = actors::spawn_node(*sys_, n.env);
    net_->listen(n.address, caf::actor_cast<caf::actor>(n.actor));
  }

  /// A node goes off the network (all its links cut) or comes back.
  void set_up(std::size_t i, bool up) {
    if (nodes_[i].up == up)
      return;
    nodes_[i].up = up;
    for (std::size_t j = 0; j < nodes_.size(); ++j)
      if (j != i && nodes_[j].up)
        net_->set_link(nodes_[i].address, nodes_[j].address, up);
    if (s_.relay)
      net_->set_link(nodes_[i].address, "sim:relay", up);
    // A node coming back must not see links to nodes that are still down.
    if (up)
      for (std::size_t j = 0; j < nodes_.size(); ++j)
        if (j != i && !nodes_[j].up)
          net_->set_link(nodes_[i].address, nodes_[j].address, false);
  }

  std::size_t posts_of(std::size_t holder, std::size_t author) {
    storage::documents docs(*nodes_[holder].env->store);
    auto f = docs.feed(nodes_[author].env->self.pub(), 100000);
    return f ? f->size() : 0;
  }

  std::set<std::string> subjects_of(std::size_t holder, std::size_t author) {
    storage::documents docs(*nodes_[holder].env->store);
    std::set<std::string> out;
    if (auto f = docs.feed(nodes_[author].env->self.pub(), 100000))
      for (const auto& d : *f)
        out.insert(d.value("subject", std::string{}));
    return out;
  }

  /// Every follower holds exactly the posts its followees hold of
  /// themselves: nothing lost, nothing deleted still there.
  bool converged() {
    for (std::size_t i = 0; i < nodes_.size(); ++i)
      for (auto j : nodes_[i].follows)
        if (subjects_of(i, j) != subjects_of(j, j))
          return false;
    return true;
  }

  const scenario& s_;
  std::mt19937_64 rng_;
  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  caf::scheduler::test_coordinator* sched_ = nullptr;
  std::shared_ptr<actors::sim_network> net_;
  caf::actor relay_;
  std::vector<node> nodes_;
  std::uint64_t steps_ = 0;
};

double draw_length(const churn_model& c, double mean, std::mt19937_64& g) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const double x = u(g);
  if (c.model == churn_model::kind::weibull) {
    const double scale = mean / std::tgamma(1.0 + 1.0 / c.shape);
    return scale * std::pow(-std::log(1.0 - x), 1.0 / c.shape);
  }
  return -mean * std::log(1.0 - x);
}

enum class ev_kind { post, down, up };
struct event {
  std::uint64_t at_ms;
  std::uint64_t order; // ties broken by creation order: deterministic
  ev_kind kind;
  std::size_t node;
  friend bool operator>(const event& a, const event& b) {
    return a.at_ms != b.at_ms ? a.at_ms > b.at_ms : a.order > b.order;
  }
};

} // namespace

std::optional<scenario> parse_scenario(const std::string& text, std::string& error) {
  toml::table t;
  try {
    t = toml::parse(text);
  } catch (const toml::parse_error& e) {
    error = "line " + std::to_string(e.source().begin.line) + ": " + std::string(e.description());
    return std::nullopt;
  }
  scenario s;
  auto bad = [&](const std::string& key, const std::string& want) {
    error = "'" + key + "' must be " + want;
    return std::nullopt;
  };
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    auto num = [&]() -> std::optional<double> {
      if (auto i = v.value<std::int64_t>())
        return static_cast<double>(*i);
      return v.value<double>();
    };
    if (key == "churn") {
      if (!v.is_table())
        return bad("churn", "a table");
      for (auto&& [ck, cv] : *v.as_table()) {
        const std::string c(ck.str());
        auto cnum = [&]() -> std::optional<double> {
          if (auto i = cv.value<std::int64_t>())
            return static_cast<double>(*i);
          return cv.value<double>();
        };
        if (c == "model") {
          auto m = cv.value<std::string>();
          if (m && *m == "none")
            s.churn.model = churn_model::kind::none;
          else if (m && *m == "exponential")
            s.churn.model = churn_model::kind::exponential;
          else if (m && *m == "weibull")
            s.churn.model = churn_model::kind::weibull;
          else
            return bad("churn.model", "\"none\", \"exponential\" or \"weibull\"");
        } else if (c == "crash_fraction") {
          auto x = cnum();
          if (!x || *x < 0 || *x > 1)
            return bad("churn.crash_fraction", "a number from 0 to 1");
          s.churn.crash_fraction = *x;
        } else if (c == "mean_up_s" || c == "mean_down_s" || c == "shape") {
          auto x = cnum();
          if (!x || *x <= 0)
            return bad("churn." + c, "a positive number");
          (c == "mean_up_s" ? s.churn.mean_up_s : c == "mean_down_s" ? s.churn.mean_down_s : s.churn.shape) = *x;
        } else {
          error = "unknown key 'churn." + c + "'";
          return std::nullopt;
        }
      }
      continue;
    }
    auto x = num();
    if (key == "relay") {
      auto b = v.value<bool>();
      if (!b)
        return bad(key, "true or false");
      s.relay = *b;
    } else if (!x) {
      if (key == "seed" || key == "nodes" || key == "follows" || key == "duration_s" ||
          key == "post_interval_s" || key == "zipf_s" || key == "anti_entropy_s" ||
          key == "latency_ms" || key == "settle_limit_s" || key == "jitter_ms" ||
          key == "reset_probability" || key == "delete_fraction")
        return bad(key, "a number");
      error = "unknown key '" + key + "'";
      return std::nullopt;
    } else if (key == "seed") {
      s.seed = static_cast<std::uint64_t>(*x);
    } else if (key == "nodes") {
      if (*x < 1 || *x > 100000)
        return bad(key, "from 1 to 100000");
      s.nodes = static_cast<std::uint32_t>(*x);
    } else if (key == "follows") {
      s.follows = static_cast<std::uint32_t>(*x);
    } else if (key == "duration_s") {
      s.duration_s = *x;
    } else if (key == "post_interval_s") {
      if (*x <= 0)
        return bad(key, "positive");
      s.post_interval_s = *x;
    } else if (key == "zipf_s") {
      s.zipf_s = *x;
    } else if (key == "anti_entropy_s") {
      if (*x < 1)
        return bad(key, "at least 1");
      s.anti_entropy_s = static_cast<std::uint32_t>(*x);
    } else if (key == "latency_ms") {
      s.latency_ms = static_cast<std::uint32_t>(*x);
    } else if (key == "jitter_ms") {
      s.jitter_ms = static_cast<std::uint32_t>(*x);
    } else if (key == "reset_probability" || key == "delete_fraction") {
      if (*x < 0 || *x > 1)
        return bad(key, "a number from 0 to 1");
      (key == "reset_probability" ? s.reset_probability : s.delete_fraction) = *x;
    } else if (key == "settle_limit_s") {
      s.settle_limit_s = *x;
    } else {
      error = "unknown key '" + key + "'";
      return std::nullopt;
    }
  }
  return s;
}

summary run(const scenario& s, const std::function<void(const std::string&)>& progress) {
  const auto wall0 = steady_clock::now();
  world w(s);
  w.build();
  std::mt19937_64 g(s.seed ^ 0x5eedull);

  // Zipf over node ranks for choosing authors.
  std::vector<double> cdf(s.nodes);
  double total = 0;
  for (std::uint32_t i = 0; i < s.nodes; ++i)
    cdf[i] = (total += 1.0 / std::pow(static_cast<double>(i + 1), s.zipf_s));
  for (auto& c : cdf)
    c /= total;

  std::priority_queue<event, std::vector<event>, std::greater<>> q;
  std::uint64_t order = 0;
  const auto start = w.now_ms();
  const auto end = start + static_cast<std::uint64_t>(s.duration_s * 1000);
  const double post_mean_ms = s.post_interval_s * 1000.0 / s.nodes; // all nodes together
  auto next_post = [&](std::uint64_t from) {
    std::exponential_distribution<double> e(1.0 / post_mean_ms);
    q.push({from + static_cast<std::uint64_t>(e(g)) + 1, order++, ev_kind::post, 0});
  };
  next_post(start);
  if (s.churn.model != churn_model::kind::none)
    for (std::size_t i = 0; i < s.nodes; ++i)
      q.push({start + static_cast<std::uint64_t>(draw_length(s.churn, s.churn.mean_up_s, g) * 1000) + 1,
              order++, ev_kind::down, i});

  std::uint64_t posts = 0, transitions = 0, next_report = start, deletes = 0, crashes = 0;
  std::set<std::string> deleted;
  const std::uint64_t report_every = std::max<std::uint64_t>(1, (end - start) / 10);
  while (!q.empty() && q.top().at_ms <= end) {
    auto e = q.top();
    q.pop();
    w.advance_to(e.at_ms);
    switch (e.kind) {
      case ev_kind::post: {
        std::uniform_real_distribution<double> u(0.0, 1.0);
        const auto author = std::min<std::size_t>(
            static_cast<std::size_t>(std::lower_bound(cdf.begin(), cdf.end(), u(g)) - cdf.begin()),
            s.nodes - 1);
        next_post(e.at_ms);
        if (w.nodes_[author].crashed)
          break; // a crashed process takes no writes
        if (s.delete_fraction > 0 && u(g) < s.delete_fraction) {
          auto own = w.subjects_of(author, author);
          if (!own.empty()) {
            auto victim = std::next(own.begin(), static_cast<std::ptrdiff_t>(g() % own.size()));
            w.api(author, "del", json{{"subject", *victim}});
            deleted.insert(*victim);
            ++deletes;
          }
          break;
        }
        w.api(author, "post", json{{"text", "post " + std::to_string(posts) + " #sim"}});
        ++posts;
        break;
      }
      case ev_kind::down:
        if (s.churn.crash_fraction > 0 &&
            std::uniform_real_distribution<double>(0.0, 1.0)(g) < s.churn.crash_fraction) {
          w.crash(e.node);
          ++crashes;
        } else {
          w.set_up(e.node, false);
        }
        ++transitions;
        q.push({e.at_ms + static_cast<std::uint64_t>(draw_length(s.churn, s.churn.mean_down_s, g) * 1000) + 1,
                order++, ev_kind::up, e.node});
        break;
      case ev_kind::up:
        if (w.nodes_[e.node].crashed)
          w.restart(e.node);
        else
          w.set_up(e.node, true);
        ++transitions;
        q.push({e.at_ms + static_cast<std::uint64_t>(draw_length(s.churn, s.churn.mean_up_s, g) * 1000) + 1,
                order++, ev_kind::down, e.node});
        break;
    }
    if (progress && e.at_ms >= next_report) {
      progress("sim " + std::to_string((e.at_ms - start) / 1000) + "/" +
               std::to_string((end - start) / 1000) + " s, " + std::to_string(posts) + " posts, " +
               std::to_string(w.net_->sends()) + " sends");
      next_report += report_every;
    }
  }
  w.advance_to(end);

  // Faults stop: every node back; wait for convergence.
  w.net_->set_faults(milliseconds(0), 0, 0);
  for (std::size_t i = 0; i < s.nodes; ++i) {
    if (w.nodes_[i].crashed)
      w.restart(i);
    w.set_up(i, true);
  }
  const auto settle_end = end + static_cast<std::uint64_t>(s.settle_limit_s * 1000);
  std::optional<std::uint64_t> converged_at;
  for (auto t = end; t <= settle_end; t += 1000) {
    w.advance_to(t);
    if (w.converged()) {
      converged_at = t;
      break;
    }
  }

  summary out;
  out.converged = converged_at.has_value();
  // Checker: a deleted post held anywhere is a resurrection.
  std::uint64_t resurrected = 0;
  for (std::size_t i = 0; i < w.nodes_.size(); ++i) {
    storage::documents docs(*w.nodes_[i].env->store);
    for (const auto& d : deleted) {
      auto r = docs.get(d, {});
      if (r && !r->is_null() && r->contains("doc") && !(*r)["doc"].empty())
        ++resurrected;
    }
  }
  out.converged = out.converged && resurrected == 0;
  json lagging = json::array();
  for (std::size_t i = 0; i < w.nodes_.size() && lagging.size() < 10; ++i)
    for (auto j : w.nodes_[i].follows)
      if (w.posts_of(i, j) != w.posts_of(j, j)) {
        auto peers = json::parse(w.api(i, "peers", json::object()).json)["peers"];
        json state = "unknown";
        for (auto& p : peers)
          if (p["id"] == w.id_of(j))
            state = p;
        lagging.push_back(json{{"follower", i}, {"author", j}, {"has", w.posts_of(i, j)},
                               {"of", w.posts_of(j, j)}, {"peer", state}});
      }
  std::size_t kept_headers = 0, topics = 0;
  for (auto& n : w.nodes_)
    for (const auto& t : n.env->store->topics()) {
      kept_headers += n.env->store->superseded_count(t);
      ++topics;
    }
  out.json = json{
      {"seed", s.seed},
      {"trace_hash", hex64(w.net_->trace_hash())},
      {"nodes", s.nodes},
      {"relay", s.relay},
      {"follows_per_node", s.follows},
      {"churn", s.churn.model == churn_model::kind::none          ? "none"
                : s.churn.model == churn_model::kind::exponential ? "exponential"
                                                                  : "weibull"},
      {"churn_transitions", transitions},
      {"posts", posts},
      {"deletes", deletes},
      {"resurrected", resurrected},
      {"crashes", crashes},
      {"connection_resets", w.net_->resets()},
      {"simulated_ms", w.now_ms() - start},
      {"scheduler_steps", w.steps_},
      {"messages", w.net_->sends()},
      {"bytes", w.net_->bytes_carried()},
      {"converged", out.converged},
      {"convergence_ms", converged_at ? json(*converged_at - end) : json(nullptr)},
      {"topic_replicas", topics},
      {"kept_headers", kept_headers},
      {"lagging", lagging},
      {"wall_ms", duration_cast<milliseconds>(steady_clock::now() - wall0).count()},
  };
  return out;
}

} // namespace kith::sim
