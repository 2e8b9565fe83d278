#include "kith/node/daemon.hpp"

#include "kith/actors/node.hpp"
#include "kith/node/api_server.hpp"
#include "kith/node/tcp_transport.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <toml++/toml.h>

#include <sodium.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

namespace kith::node {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::uint64_t wall_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

/// Writes a file atomically (temp file + rename).
bool write_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    if (!(f << text))
      return false;
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  return !ec;
}

std::string addresses_file(const data_dir& home) {
  return home.path() + "/addresses.json";
}
std::string api_addr_file(const data_dir& home) {
  return home.path() + "/api.addr";
}

std::map<std::string, std::string> load_addresses(const data_dir& home) {
  std::map<std::string, std::string> out;
  std::ifstream f(addresses_file(home));
  if (!f)
    return out;
  auto j = json::parse(f, nullptr, false);
  if (!j.is_object())
    return out;
  for (auto& [k, v] : j.items())
    if (v.is_string())
      out[k] = v.get<std::string>();
  return out;
}

/// The API backend over the node actor: each call is one request from a
/// short-lived actor, so the API's I/O thread never blocks.
class node_backend final : public api_backend {
public:
  node_backend(caf::actor_system& sys, actors::node_actor node) : sys_(sys), node_(std::move(node)) {}

  void call(const std::string& op, const json& params, std::string body,
            std::function<void(api_reply)> done) override {
    auto node = node_;
    // The unused int: CAF 0.17 dereferences a null argument tuple when a
    // function actor takes no arguments besides self (UBSan reports it).
    sys_.spawn([node, op, p = params.dump(), body = std::move(body),
                done = std::move(done)](caf::event_based_actor* self, int) mutable {
      self->request(node, std::chrono::seconds(60), actors::api_atom::value, op, p, std::move(body),
                    wall_ms())
          .then(
              [done](const actors::api_result& r) {
                api_reply out;
                out.status = r.status;
                if (r.binary)
                  out.binary = r.json;
                else
                  out.body = json::parse(r.json, nullptr, false);
                done(std::move(out));
              },
              [done](caf::error& e) {
                done(api_error(503, "unavailable", "the node did not answer: " + caf::to_string(e)));
              });
    }, 0);
  }

  std::uint64_t watch(std::function<void(const json&)> listener) override {
    std::lock_guard lock(mu_);
    listeners_[++next_] = std::move(listener);
    return next_;
  }
  void unwatch(std::uint64_t token) override {
    std::lock_guard lock(mu_);
    listeners_.erase(token);
  }
  void emit(const json& ev) {
    std::lock_guard lock(mu_);
    for (auto& [t, l] : listeners_)
      l(ev);
  }

private:
  caf::actor_system& sys_;
  actors::node_actor node_;
  std::mutex mu_;
  std::map<std::uint64_t, std::function<void(const json&)>> listeners_;
  std::uint64_t next_ = 0;
};

} // namespace

std::optional<std::pair<protocol::public_key, std::string>> parse_aggregator(const std::string& text,
                                                                            std::string* why) {
  const auto at = text.find('@');
  auto pk = protocol::parse_id(text.substr(0, at), why);
  if (!pk)
    return std::nullopt;
  std::string address;
  if (at != std::string::npos) {
    address = text.substr(at + 1);
    if (!split_host_port(address)) {
      if (why)
        *why = "'" + address + "' is not host:port";
      return std::nullopt;
    }
  }
  return std::make_pair(*pk, address);
}

storage::result<daemon_config> load_config(const data_dir& home) {
  daemon_config c;
  const std::string path = home.path() + "/config.toml";
  if (!fs::exists(path))
    return c;
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return storage::error{storage::errc::invalid,
                          path + ":" + std::to_string(e.source().begin.line) + ": " +
                              std::string(e.description())};
  }
  auto bad = [&](const std::string& key, const std::string& want) {
    return storage::error{storage::errc::invalid, path + ": '" + key + "' must be " + want};
  };
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    if (key != "node" && key != "sync" && key != "aggregator")
      return storage::error{storage::errc::invalid, path + ": unknown section or key '" + key + "'"};
  }
  if (auto n = t["node"]; n) {
    if (!n.is_table())
      return bad("node", "a table");
    for (auto&& [k, v] : *n.as_table()) {
      const std::string key(k.str());
      if (key == "listen" || key == "api" || key == "log_level") {
        if (!v.is_string())
          return bad("node." + key, "a string");
        auto s = *v.value<std::string>();
        (key == "listen" ? c.listen : key == "api" ? c.api : c.log_level) = s;
      } else if (key == "relays" || key == "announce") {
        auto& list = key == "relays" ? c.relays : c.announce;
        if (!v.is_array())
          return bad("node." + key, "an array of \"host:port\" strings");
        for (auto&& r : *v.as_array()) {
          if (!r.is_string())
            return bad("node." + key, "an array of \"host:port\" strings");
          auto text = *r.value<std::string>();
          if (!split_host_port(text.substr(0, text.find('#'))))
            return bad("node." + key, "an array of \"host:port\" strings (got '" + text + "')");
          list.push_back(std::move(text));
        }
      } else if (key == "web_dir") {
        if (!v.is_string())
          return bad("node.web_dir", "a string (a directory, or \"\" for no web UI)");
        c.web_dir = *v.value<std::string>();
      } else if (key == "directory") {
        if (!v.is_boolean())
          return bad("node.directory", "true or false");
        c.directory = *v.value<bool>();
      } else if (key == "aggregators") {
        if (!v.is_array())
          return bad("node.aggregators", "an array of \"<id>\" or \"<id>@host:port\" strings");
        for (auto&& r : *v.as_array()) {
          auto text = r.value<std::string>();
          std::string why;
          if (!text || !parse_aggregator(*text, &why))
            return bad("node.aggregators",
                       "an array of \"<id>\" or \"<id>@host:port\" strings (" +
                           (text ? "'" + *text + "': " + why : std::string("not a string")) + ")");
          c.aggregators.push_back(*text);
        }
      } else if (key == "sync_writes") {
        if (!v.is_boolean())
          return bad("node.sync_writes", "true or false");
        c.sync_writes = *v.value<bool>();
      } else {
        return storage::error{storage::errc::invalid, path + ": unknown key 'node." + key + "'"};
      }
    }
  }
  if (auto a = t["aggregator"]; a) {
    if (!a.is_table())
      return bad("aggregator", "a table");
    for (auto&& [k, v] : *a.as_table()) {
      const std::string key(k.str());
      if (key == "enabled") {
        if (!v.is_boolean())
          return bad("aggregator.enabled", "true or false");
        c.aggregate = *v.value<bool>();
      } else if (key == "max_follows") {
        auto x = v.value<std::int64_t>();
        if (!x || *x < 0 || *x > 1'000'000)
          return bad("aggregator.max_follows", "an integer from 0 to 1000000");
        c.aggregate_max_follows = static_cast<std::size_t>(*x);
      } else {
        return storage::error{storage::errc::invalid,
                              path + ": unknown key 'aggregator." + key + "'"};
      }
    }
  }
  if (auto s = t["sync"]; s) {
    if (!s.is_table())
      return bad("sync", "a table");
    for (auto&& [k, v] : *s.as_table()) {
      const std::string key(k.str());
      if (key == "anti_entropy_seconds") {
        auto x = v.value<std::int64_t>();
        if (!x || *x < 1 || *x > 86400)
          return bad("sync.anti_entropy_seconds", "an integer from 1 to 86400");
        c.anti_entropy_s = static_cast<std::uint32_t>(*x);
      } else if (key == "retire_after_seconds") {
        auto x = v.value<std::int64_t>();
        if (!x || *x < 0 || *x > 366 * 86400)
          return bad("sync.retire_after_seconds", "an integer from 0 (never) to 31622400 (a year)");
        c.retire_after_s = static_cast<std::uint32_t>(*x);
      } else if (key == "co_follower_retire_after_seconds") {
        auto x = v.value<std::int64_t>();
        if (!x || *x < 0 || *x > 366 * 86400)
          return bad("sync.co_follower_retire_after_seconds",
                     "an integer from 0 (as retire_after_seconds) to 31622400 (a year)");
        c.co_follower_retire_after_s = static_cast<std::uint32_t>(*x);
      } else if (key == "co_follower_linger_seconds") {
        auto x = v.value<std::int64_t>();
        if (!x || *x < 0 || *x > 86400)
          return bad("sync.co_follower_linger_seconds",
                     "an integer from 0 (close at once) to 86400 (a day)");
        c.co_follower_linger_s = static_cast<std::uint32_t>(*x);
      } else if (key == "peer_sleep_after_seconds") {
        auto x = v.value<std::int64_t>();
        if (!x || *x < 0 || *x > 86400)
          return bad("sync.peer_sleep_after_seconds", "an integer from 0 (never sleep) to 86400 (a day)");
        c.peer_sleep_after_s = static_cast<std::uint32_t>(*x);
      } else {
        return storage::error{storage::errc::invalid, path + ": unknown key 'sync." + key + "'"};
      }
    }
  }
  return c;
}

std::optional<std::string> default_web_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec || exe.empty())
    return std::nullopt;
  const fs::path dir = exe.parent_path();
  for (const fs::path& cand : {dir / ".." / ".." / "web", dir / ".." / "share" / "kith" / "web"}) {
    if (fs::is_regular_file(cand / "index.html", ec)) {
      const auto c = fs::canonical(cand, ec);
      if (!ec)
        return c.string();
    }
  }
  return std::nullopt;
}

std::optional<std::pair<std::string, std::uint16_t>> daemon_api_address(const data_dir& home) {
  std::ifstream f(api_addr_file(home));
  std::string line;
  if (!f || !std::getline(f, line))
    return std::nullopt;
  return split_host_port(line);
}

int run_daemon(const data_dir& home, const daemon_config& cfg) {
  auto logger = spdlog::stderr_color_mt("kith");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  auto lvl = spdlog::level::from_str(cfg.log_level);
  if (lvl == spdlog::level::off && cfg.log_level != "off") {
    std::fprintf(stderr, "kith: unknown log level '%s' (debug, info, warn, error)\n",
                 cfg.log_level.c_str());
    return 2;
  }
  logger->set_level(lvl);

  auto id = home.load_identity();
  if (!id) {
    logger->error("{}", id.err().message);
    return 1;
  }
  storage::store_options so;
  so.sync = cfg.sync_writes;
  // `kith init` makes the identity and the store together: a missing store
  // beside an existing identity was lost, and the node asks its followers
  // for its feed.
  const bool store_was_lost = !fs::exists(home.store_dir());
  auto st = storage::store::open(home.store_dir(), *id, true, so);
  // A client command that opened the store directly (no daemon answered)
  // holds it for a moment: wait for it rather than fail.
  for (int i = 0; i < 100 && !st && st.err().code == storage::errc::busy; ++i) {
    if (i == 0)
      logger->info("waiting for the store (another process has it open)");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    st = storage::store::open(home.store_dir(), *id, true, so);
  }
  if (!st) {
    logger->error("{}", st.err().message);
    return 1;
  }
  std::shared_ptr<storage::store> store = std::move(st.value());

  caf::actor_system_config ccfg;
  ccfg.set("scheduler.max-threads", 2);
  caf::actor_system sys{ccfg};
  boost::asio::io_context io;
  tcp_transport transport(io, sys);

  protocol::key_seed seed{};
  randombytes_buf(seed.data(), seed.size());
  auto env = std::make_shared<actors::node_env>(*id, store, transport.actor());
  env->transport_reports_writes = true;
  env->rng = std::make_shared<actors::entropy>(seed);
  env->settings.anti_entropy = std::chrono::seconds(cfg.anti_entropy_s);
  env->settings.retire_after = std::chrono::seconds(cfg.retire_after_s);
  env->settings.co_follower_retire_after = std::chrono::seconds(cfg.co_follower_retire_after_s);
  if (cfg.co_follower_linger_s)
    env->settings.co_follower_linger = std::chrono::seconds(*cfg.co_follower_linger_s);
  if (cfg.peer_sleep_after_s)
    env->settings.peer_sleep_after = std::chrono::seconds(*cfg.peer_sleep_after_s);
  env->addresses = load_addresses(home);
  env->relays = cfg.relays;
  env->announce = cfg.announce;
  env->directory = cfg.directory;
  env->restore_own_feed = store_was_lost;
  if (store_was_lost)
    logger->warn("no store in {}: starting a new one for this identity; its feed will be fetched "
                 "back from followers met through the relays",
                 home.store_dir());
  env->aggregate = cfg.aggregate;
  env->aggregate_max_follows = cfg.aggregate_max_follows;
  for (const auto& a : cfg.aggregators) {
    std::string why;
    auto parsed = parse_aggregator(a, &why);
    if (!parsed) {
      logger->error("aggregator '{}': {}", a, why);
      return 1;
    }
    env->aggregators.push_back(parsed->first);
    if (!parsed->second.empty())
      env->addresses[protocol::to_text(parsed->first)] = parsed->second;
  }
  if (cfg.aggregate)
    logger->info("aggregator mode: following identities met in the relays' directory (up to {})",
                 cfg.aggregate_max_follows);
  env->unix_ms = [] {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
  };
  env->log = [logger](actors::log_level l, const std::string& line) {
    switch (l) {
      case actors::log_level::debug: logger->debug("{}", line); break;
      case actors::log_level::info: logger->info("{}", line); break;
      case actors::log_level::warn: logger->warn("{}", line); break;
      case actors::log_level::error: logger->error("{}", line); break;
    }
  };
  auto addr_mu = std::make_shared<std::mutex>();
  env->remember_address = [home, addr_mu, logger](const std::string& who, const std::string& address) {
    std::lock_guard lock(*addr_mu);
    auto all = load_addresses(home);
    all[who] = address;
    json j(all);
    if (!write_atomic(addresses_file(home), j.dump(2) + "\n"))
      logger->warn("could not save the address of {}", who);
  };
  std::shared_ptr<node_backend> backend_holder;
  env->on_event = [&backend_holder](const json& ev) {
    if (auto b = std::atomic_load(&backend_holder))
      b->emit(ev);
  };

  auto node = actors::spawn_node(sys, env);
  auto backend = std::make_shared<node_backend>(sys, node);
  std::atomic_store(&backend_holder, backend);

  int code = 0;
  if (!cfg.listen.empty()) {
    auto hp = split_host_port(cfg.listen, true);
    if (!hp) {
      logger->error("listen address '{}' is not host:port", cfg.listen);
      code = 2;
    } else {
      auto r = transport.listen(hp->first, hp->second, caf::actor_cast<caf::actor>(node));
      if (auto* err = std::get_if<std::string>(&r)) {
        logger->error("{}", *err);
        code = 1;
      } else {
        const auto where = hp->first + ":" + std::to_string(std::get<std::uint16_t>(r));
        write_atomic(home.path() + "/peer.addr", where + "\n");
        logger->info("peers connect to {}", where);
        const bool wildcard = hp->first == "0.0.0.0" || hp->first == "::" || hp->first.empty();
        if (cfg.announce.empty() && !wildcard)
          caf::anon_send(node, actors::found_atom::value, std::vector<std::string>{where});
        else if (cfg.announce.empty())
          logger->warn("listening on {} but announcing no address to relays: set [node] announce "
                       "to the addresses peers can dial",
                       where);
      }
    }
  }

  api_server_options ao;
  std::unique_ptr<api_server> api;
  if (code == 0) {
    auto hp = split_host_port(cfg.api, true);
    if (!hp) {
      logger->error("api address '{}' is not host:port", cfg.api);
      code = 2;
    } else {
      ao.bind = hp->first;
      ao.port = hp->second;
      if (!cfg.web_dir) {
        ao.static_dir = default_web_dir();
        if (!ao.static_dir)
          logger->info("no web UI found next to the program; set [node] web_dir or --web-dir");
      } else if (!cfg.web_dir->empty()) {
        std::error_code ec;
        if (fs::is_regular_file(fs::path(*cfg.web_dir) / "index.html", ec))
          ao.static_dir = *cfg.web_dir;
        else
          logger->warn("web_dir '{}' holds no index.html; serving no web UI", *cfg.web_dir);
      }
      api = std::make_unique<api_server>(io, *backend, ao);
      auto r = api->start();
      if (!r.ok()) {
        logger->error("local API: {}", r.error);
        code = 1;
      } else {
        const std::string where = hp->first + ":" + std::to_string(r.port);
        write_atomic(api_addr_file(home), where + "\n");
        logger->info("node {} running; local API on http://{}", protocol::to_text(id->pub()), where);
        if (ao.static_dir)
          logger->info("web UI on http://{}/ (files from {})", where, *ao.static_dir);
      }
    }
  }

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  auto stop_all = [&] {
    logger->info("shutting down");
    std::error_code ec;
    fs::remove(api_addr_file(home), ec);
    fs::remove(home.path() + "/peer.addr", ec);
    if (api)
      api->stop();
    transport.shutdown();
    caf::anon_send(node, actors::stop_atom::value);
    signals.cancel();
  };
  if (code == 0) {
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (!ec) {
        logger->info("signal {}", sig);
        stop_all();
      }
    });
    io.run();
  } else {
    stop_all();
    io.run();
  }
  std::atomic_store(&backend_holder, std::shared_ptr<node_backend>{});
  caf::anon_send_exit(node, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(transport.actor(), caf::exit_reason::user_shutdown);
  sys.await_all_actors_done();
  store.reset();
  logger->info("stopped");
  spdlog::drop("kith");
  return code;
}

} // namespace kith::node
