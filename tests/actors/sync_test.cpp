// Sync between in-process nodes on CAF's deterministic testing scheduler:
// the real node, peer and topic actors, a simulated network, virtual time.

#include "world.hpp"

#include <algorithm>
#include <random>
#include <set>

using namespace kith;
using namespace kith::actors;
using nlohmann::json;

using kith::actors_test::world;

TEST_CASE("a follower receives existing posts on connect and new ones within a round trip",
          "[actors][sync]") {
  const std::uint64_t seed = 42;
  INFO("seed " << seed);
  world w(seed);
  auto& a = w.add(0);
  auto& b = w.add(1);
  for (int i = 0; i < 3; ++i)
    w.api_json(a, "post", {{"text", "hello #kith " + std::to_string(i)}});
  w.api_json(b, "follow", {{"id", w.id_of(a)}, {"address", a.address}});
  const bool got = w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 3; }, std::chrono::seconds(10));
  INFO(w.log_text());
  REQUIRE(got);

  // A new post travels as a push: far sooner than the anti-entropy period.
  const auto t0 = w.sched->clock().now();
  w.api_json(a, "post", {{"text", "fresh"}});
  REQUIRE(w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 4; }, std::chrono::seconds(10)));
  CHECK(w.elapsed_since(t0) < b.env->settings.anti_entropy / 10);

  auto peers = w.api_json(b, "peers");
  REQUIRE(peers["peers"].size() == 1);
  CHECK(peers["peers"][0]["state"] == "connected");
  CHECK(peers["peers"][0]["entries_received"].get<int>() >= 4);
}

TEST_CASE("an idle follow stays connected for ten minutes: keepalives and rounds run on their "
          "deadlines though the peer actors tick only when something is due",
          "[actors][sync]") {
  world w(11);
  auto& a = w.add(0);
  auto& b = w.add(1);
  w.api_json(a, "post", {{"text", "one"}});
  w.api_json(b, "follow", {{"id", w.id_of(a)}, {"address", a.address}});
  REQUIRE(w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 1; }, std::chrono::seconds(10)));
  auto before = w.api_json(b, "peers")["peers"][0];
  REQUIRE(before["state"] == "connected");
  const auto log_lines = w.log.size();

  // Ten idle minutes: the peer timeout is 60 s, so without keepalives the
  // connection would close; without rounds no pulls would be sent.
  w.run_until([] { return false; }, std::chrono::minutes(10));
  auto after = w.api_json(b, "peers")["peers"][0];
  INFO(w.log_text());
  CHECK(after["state"] == "connected");
  for (auto i = log_lines; i < w.log.size(); ++i)
    CHECK(w.log[i].find("disconnected") == std::string::npos);
  // At least one keepalive (15 s) or round (30 s) each way per 30 s.
  const auto in = after["bytes_in"].get<std::uint64_t>() - before["bytes_in"].get<std::uint64_t>();
  const auto out = after["bytes_out"].get<std::uint64_t>() - before["bytes_out"].get<std::uint64_t>();
  CHECK(in > 20 * 30);
  CHECK(out > 20 * 30);
  // A post after the idle time still arrives as a push.
  w.api_json(a, "post", {{"text", "two"}});
  CHECK(w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 2; }, std::chrono::seconds(2)));
}

namespace {

/// An idle follow with anti-entropy every 10 s and the given cap on idle
/// rounds' wait: the answers of rounds the follower received over 20 idle
/// minutes, and in the 12 s after a post it received as a push.
struct idle_follow_result {
  std::size_t idle_answers = 0;
  std::size_t answers_after_post = 0;
  bool connected = false;
  bool post_arrived = false;
};

std::size_t answers_since(const world& w, const std::string& address, std::size_t from) {
  std::size_t n = 0;
  for (auto i = from; i < w.log.size(); ++i)
    if (w.log[i].rfind(address + " ", 0) == 0 && w.log[i].find("data (answer)") != std::string::npos)
      ++n;
  return n;
}

idle_follow_result idle_follow(std::chrono::seconds idle_max) {
  world w(17);
  w.configure = [idle_max](node_env& e) {
    e.settings.anti_entropy = std::chrono::seconds(10);
    e.settings.anti_entropy_idle_max = idle_max;
  };
  auto& a = w.add(0);
  auto& b = w.add(1);
  w.api_json(a, "post", {{"text", "one"}});
  w.api_json(b, "follow", {{"id", w.id_of(a)}, {"address", a.address}});
  REQUIRE(w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 1; }, std::chrono::seconds(10)));
  idle_follow_result r;
  auto mark = w.log.size();
  w.run_until([] { return false; }, std::chrono::minutes(20));
  r.idle_answers = answers_since(w, b.address, mark);
  r.connected = w.api_json(b, "peers")["peers"][0]["state"] == "connected";
  w.api_json(a, "post", {{"text", "two"}});
  r.post_arrived = w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 2; }, std::chrono::seconds(2));
  mark = w.log.size();
  w.run_until([] { return false; }, std::chrono::seconds(12));
  r.answers_after_post = answers_since(w, b.address, mark);
  return r;
}

} // namespace

TEST_CASE("with anti_entropy_idle_max, rounds of an idle follow thin out, and a pushed write "
          "brings the next round within the base period",
          "[actors][sync]") {
  const auto every = idle_follow(std::chrono::seconds(0)); // off: a round every 10 s
  const auto backoff = idle_follow(std::chrono::seconds(160));
  // 1,200 s at 10 s: about 120 rounds. An idle answer doubles the wait
  // after its own round: 20 + 40 + 80 s, then every 160 s, about 10.
  CHECK(every.idle_answers >= 100);
  CHECK(backoff.idle_answers >= 8);
  CHECK(backoff.idle_answers <= 15);
  // Keepalives hold the connection between the sparse rounds.
  CHECK(every.connected);
  CHECK(backoff.connected);
  CHECK(every.post_arrived);
  CHECK(backoff.post_arrived);
  CHECK(backoff.answers_after_post >= 1);
}

TEST_CASE("a follower that was offline catches up on reconnect", "[actors][sync]") {
  world w(7);
  auto& a = w.add(0);
  auto& b = w.add(1);
  w.api_json(b, "follow", {{"id", w.id_of(a)}, {"address", a.address}});
  w.api_json(a, "post", {{"text", "one"}});
  REQUIRE(w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 1; }, std::chrono::seconds(10)));

  w.net->set_link(a.address, b.address, false);
  for (int i = 0; i < 5; ++i)
    w.api_json(a, "post", {{"text", "while away " + std::to_string(i)}});
  w.run_until([] { return false; }, std::chrono::seconds(5));
  CHECK(w.feed_size(b, w.id_of(a)) == 1);

  w.net->set_link(a.address, b.address, true);
  REQUIRE(w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 6; }, std::chrono::minutes(3)));
}

namespace {

/// Scheduler steps of two nodes over ten minutes in which node 0 is down,
/// with or without node 1 following it; with a follow, also how long after
/// node 0 is back its post reaches node 1.
std::pair<std::size_t, std::chrono::milliseconds> down_peer_steps(bool follow) {
  world w(9);
  auto& a = w.add(0);
  auto& b = w.add(1);
  w.api_json(a, "post", {{"text", "one"}});
  w.net->set_node_up(a.address, false);
  if (follow)
    w.api_json(b, "follow", {{"id", w.id_of(a)}, {"address", a.address}});
  const auto before = w.steps;
  w.run_until([] { return false; }, std::chrono::minutes(10));
  const auto steps = w.steps - before;
  if (!follow)
    return {steps, {}};
  INFO(w.log_text());
  CHECK(w.api_json(b, "peers")["peers"][0]["state"] == "backoff");
  w.net->set_node_up(a.address, true);
  const auto back = w.sched->clock().now();
  REQUIRE(w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 1; }, std::chrono::minutes(3)));
  return {steps, w.elapsed_since(back)};
}

} // namespace

TEST_CASE("a follow whose peer stays down costs a wake-up per redial, not one per second, and "
          "connects soon after the peer is back",
          "[actors][sync]") {
  const auto alone = down_peer_steps(false); // the nodes' own 1 s ticks
  const auto [with_follow, reconnect] = down_peer_steps(true);
  // Redials back off to one a minute (backoff_max): about 20 dials in ten
  // minutes, a few steps each. Ticking every second would add 600 steps.
  CHECK(with_follow > alone.first);
  CHECK(with_follow - alone.first < 200);
  CHECK(reconnect <= sync_settings{}.backoff_max + std::chrono::seconds(3));
}

namespace {

/// b follows a; the link is cut long enough for the connection to close,
/// then restored; returns the handshakes the two nodes completed.
std::pair<std::uint64_t, std::uint64_t> reconnect_handshakes(std::size_t resume_tickets) {
  world w(7);
  auto counters = std::make_shared<membership_counters>();
  w.configure = [&](node_env& env) {
    env.settings.counters = counters;
    env.settings.resume_tickets = resume_tickets;
  };
  auto& a = w.add(0);
  auto& b = w.add(1);
  w.api_json(b, "follow", {{"id", w.id_of(a)}, {"address", a.address}});
  w.api_json(a, "post", {{"text", "one"}});
  REQUIRE(w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 1; }, std::chrono::seconds(10)));
  CHECK(counters->handshakes_full + counters->handshakes_resumed == 2); // one per end
  CHECK(w.api_json(b, "peers")["peers"][0]["handshake"] == "full");
  w.net->set_link(a.address, b.address, false);
  w.api_json(a, "post", {{"text", "while away"}});
  REQUIRE(w.run_until([&] { return w.api_json(b, "peers")["peers"][0]["state"] != "connected"; },
                      std::chrono::minutes(3)));
  w.net->set_link(a.address, b.address, true);
  REQUIRE(w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 2; }, std::chrono::minutes(3)));
  INFO(w.log_text());
  const auto peer = w.api_json(b, "peers")["peers"][0];
  CHECK(peer["state"] == "connected");
  CHECK(peer["handshake"] == (resume_tickets > 0 ? "resumed" : "full"));
  return {counters->handshakes_full.load(), counters->handshakes_resumed.load()};
}

} // namespace

TEST_CASE("a reconnect between nodes that met before resumes the channel without signatures",
          "[actors][sync][resume]") {
  auto [full, resumed] = reconnect_handshakes(4096);
  CHECK(full == 2);    // the first meeting, at both ends
  CHECK(resumed == 2); // the reconnect, at both ends
  auto [full_off, resumed_off] = reconnect_handshakes(0);
  CHECK(full_off == 4);
  CHECK(resumed_off == 0);
}

TEST_CASE("a node keeps no ticket for a peer whose hello says it keeps none (an older node)",
          "[actors][sync][resume]") {
  for (const bool peer_keeps : {false, true}) {
    world w(8);
    auto& a = w.add(0);
    w.configure = [&](node_env& env) {
      if (!peer_keeps)
        env.settings.resume_tickets = 0; // sends resumes = false in its hello
    };
    auto& b = w.add(1);
    w.api_json(b, "follow", {{"id", w.id_of(a)}, {"address", a.address}});
    w.api_json(a, "post", {{"text", "one"}});
    REQUIRE(w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 1; }, std::chrono::seconds(10)));
    INFO("peer keeps tickets: " << peer_keeps);
    REQUIRE(a.env->tickets);
    CHECK(a.env->tickets->size() == (peer_keeps ? 1u : 0u));
  }
}

TEST_CASE("deletes propagate and leave no kept header once every replica has them",
          "[actors][sync]") {
  world w(11);
  auto& a = w.add(0);
  auto& b = w.add(1);
  w.api_json(b, "follow", {{"id", w.id_of(a)}, {"address", a.address}});
  auto subject = w.api_json(a, "post", {{"text", "soon gone"}})["subject"].get<std::string>();
  REQUIRE(w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 1; }, std::chrono::seconds(10)));
  w.api_json(a, "del", {{"subject", subject}});
  const auto feed = protocol::feed_topic(a.env->self.pub()).id;
  REQUIRE(w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 0; }, std::chrono::seconds(10)));
  CHECK(w.api(b, "get", {{"subject", subject}}).status == 404);
  // Headers of the deleted write are kept until both replicas have the
  // delete, then pruned on both.
  REQUIRE(w.run_until(
      [&] {
        return a.env->store->superseded_count(feed) == 0 &&
               b.env->store->superseded_count(feed) == 0;
      },
      std::chrono::minutes(2)));
}

TEST_CASE("three nodes following each other converge, and the run is deterministic",
          "[actors][sync]") {
  auto run = [](std::uint64_t seed) {
    world w(seed);
    for (std::size_t i = 0; i < 3; ++i)
      w.add(i);
    for (auto& x : w.nodes)
      for (auto& y : w.nodes)
        if (&x != &y)
          w.api_json(x, "follow", {{"id", w.id_of(y)}, {"address", y.address}});
    for (int round = 0; round < 3; ++round)
      for (auto& x : w.nodes)
        w.api_json(x, "post", {{"text", "round " + std::to_string(round) + " #t"}});
    auto all_have = [&] {
      for (auto& x : w.nodes)
        for (auto& y : w.nodes)
          if (w.feed_size(x, w.id_of(y)) != 3)
            return false;
      return true;
    };
    REQUIRE(w.run_until(all_have, std::chrono::minutes(2)));
    return std::make_pair(w.net->bytes_carried(), w.sched->clock().now().time_since_epoch().count());
  };
  auto first = run(99);
  auto second = run(99);
  CHECK(first == second);
}

namespace {

/// A peer that speaks the real channel and messages but sends what it
/// likes: it answers a resync request with `tamper(page)`.
struct rogue {
  std::shared_ptr<node_env> env;
  caf::actor actor;
  std::shared_ptr<bool> closed = std::make_shared<bool>(false);
  std::shared_ptr<std::string> close_reason = std::make_shared<std::string>();
};

rogue spawn_rogue(world& w, std::size_t i, std::function<void(protocol::signed_reply&)> tamper,
                  std::function<void(protocol::resync_done_msg&)> tamper_end = {}) {
  auto& n = w.add(i); // a normal node gives the rogue a store with signed writes
  rogue r;
  r.env = n.env;
  auto env = n.env;
  auto closed = r.closed;
  auto reason = r.close_reason;
  // Replace the node's listener with the rogue's own handler.
  r.actor = w.sys->spawn([env, tamper, tamper_end, closed, reason](caf::event_based_actor* self,
                                                                  int) -> caf::behavior {
    auto ch = std::make_shared<std::unique_ptr<protocol::channel>>();
    auto conn = std::make_shared<conn_id>(0);
    auto send = [self, env, ch, conn](const protocol::message& m) {
      auto sealed = (*ch)->seal(protocol::encode_message(m));
      self->send(env->transport, send_atom::value, *conn, *sealed);
    };
    return {
        [=](opened_atom, conn_id c, const std::string&, bool, std::uint64_t) {
          *conn = c;
          *ch = std::make_unique<protocol::channel>(env->self, protocol::channel::role::responder,
                                                    env->rng->next(), 0);
        },
        [=](bytes_atom, conn_id, const std::string& bytes) {
          auto out = (*ch)->receive(bytes);
          if (!out.to_send.empty())
            self->send(env->transport, send_atom::value, *conn, out.to_send);
          if (out.established) {
            protocol::hello_msg h;
            h.binding = env->store->binding();
            send(h);
          }
          for (auto& f : out.frames) {
            auto m = protocol::decode_message(f);
            if (!m)
              continue;
            if (auto* sub = std::get_if<protocol::subscribe_msg>(&*m)) {
              send(protocol::offer_msg{{*env->store->topic(sub->topics.at(0))}});
            } else if (auto* rq = std::get_if<protocol::resync_request_msg>(&*m)) {
              auto page = env->store->page(rq->topic, rq->after_key, 1000);
              tamper(page->reply);
              send(protocol::data_msg{protocol::data_kind::resync, true, page->reply});
              protocol::resync_done_msg end{rq->topic, page->next_after, true};
              if (tamper_end)
                tamper_end(end);
              send(end);
            }
          }
        },
        [=](closed_atom, conn_id, const std::string& why) {
          *closed = true;
          *reason = why;
        },
        [](dialfail_atom, std::uint64_t, const std::string&) {},
    };
  }, 0);
  w.net->listen(n.address, r.actor);
  return r;
}

} // namespace

TEST_CASE("a peer sending tampered or unauthorized data is disconnected and nothing is stored",
          "[actors][sync][security]") {
  struct attack {
    const char* name;
    std::function<void(protocol::signed_reply&)> tamper;
    const char* logged;
  };
  const std::vector<attack> attacks{
      {"a value changed after signing",
       [](protocol::signed_reply& r) {
         auto& body = r.entries.at(0).records.at(0).second;
         auto b = *protocol::decode_body(body);
         b.value = "\"forged\"";
         body = protocol::encode_body(b);
       },
       "rejected data"},
      {"a batch signature flipped",
       [](protocol::signed_reply& r) { r.batches.at(0).sig.bytes[5] ^= 1; },
       "rejected data"},
      {"a claim to be another replica",
       [](protocol::signed_reply& r) { r.from = causality::replica_id(r.from.value() + 1); },
       "another replica"},
  };
  for (const auto& a : attacks) {
    DYNAMIC_SECTION(a.name) {
      world w(5);
      auto& victim = w.add(0);
      auto bad = spawn_rogue(w, 1, a.tamper);
      // The rogue has a genuine signed post of its own, then tampers with it in transit.
      REQUIRE(storage::documents(*bad.env->store).post("mine", 1));
      const auto rogue_id = protocol::to_text(bad.env->self.pub());
      w.api_json(victim, "follow", {{"id", rogue_id}, {"address", "sim:1"}});
      REQUIRE(w.run_until([&] { return *bad.closed; }, std::chrono::seconds(5)));
      INFO(w.log_text());
      CHECK(w.log_text().find(a.logged) != std::string::npos);
      CHECK(w.feed_size(victim, rogue_id) == 0);
      const auto feed = protocol::feed_topic(bad.env->self.pub()).id;
      auto c = victim.env->store->clock_copy(feed);
      CHECK((!c || c->dot_count() == 0));
      caf::anon_send_exit(bad.actor, caf::exit_reason::user_shutdown);
    }
  }
}

TEST_CASE("nodes known only by id find each other through a relay; unreachable ones sync over a "
          "relayed circuit",
          "[actors][relay]") {
  const std::uint64_t seed = 23;
  INFO("seed " << seed);
  world w(seed);
  const auto relay = w.add_relay();
  auto& a = w.add(0, {relay});
  auto& b = w.add(1, {relay});
  auto& c = w.add(2, {relay}, false); // not listening: only a circuit reaches it
  auto& d = w.add(3, {relay}, false);

  w.api_json(a, "post", {{"text", "found through the relay"}});
  w.api_json(b, "follow", {{"id", w.id_of(a)}}); // no address
  REQUIRE(w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 1; }, std::chrono::seconds(30)));
  auto peers = w.api_json(b, "peers")["peers"];
  REQUIRE(peers.size() == 1);
  CHECK(peers[0]["address"] == a.address); // dialled directly, address from a's record

  w.api_json(c, "post", {{"text", "over a circuit"}});
  w.api_json(d, "follow", {{"id", w.id_of(c)}});
  const bool got = w.run_until([&] { return w.feed_size(d, w.id_of(c)) == 1; }, std::chrono::seconds(60));
  INFO(w.log_text());
  REQUIRE(got);
  peers = w.api_json(d, "peers")["peers"];
  REQUIRE(peers.size() == 1);
  CHECK(peers[0]["address"].get<std::string>().rfind("relay/", 0) == 0);
  // Pushes cross the circuit too.
  w.api_json(c, "post", {{"text", "pushed over the circuit"}});
  CHECK(w.run_until([&] { return w.feed_size(d, w.id_of(c)) == 2; }, std::chrono::seconds(5)));
  auto relays = w.api_json(d, "relays")["relays"];
  REQUIRE(relays.size() == 1);
  CHECK(relays[0]["state"] == "connected");
  CHECK(relays[0]["circuits_open"].get<int>() == 1);
}

namespace {

/// The id node i of w will have, before w.add(i) makes it.
std::string id_to_come(const world& w, std::size_t i) {
  return protocol::to_text(protocol::identity::from_seed(seed_for(w.seed, i)).pub());
}

/// Starts node 0 (an author `follower` follows by id only, offline until
/// now) with one post, runs until the follower has it, and returns how
/// long that took (the limit plus a step if it never does).
std::chrono::milliseconds author_returns(world& w, world::node& follower, const std::string& relay,
                                         std::chrono::seconds limit) {
  const auto start = w.sched->clock().now();
  auto& a = w.add(0, {relay});
  w.api_json(a, "post", {{"text", "back"}});
  const auto author = w.id_of(a);
  w.run_until([&] { return w.feed_size(follower, author) == 1; }, limit);
  return w.elapsed_since(start);
}

} // namespace

TEST_CASE("a follower of an offline author dials it when the relay says it is back, not by polling",
          "[actors][relay]") {
  const std::uint64_t seed = 29;
  INFO("seed " << seed);
  world w(seed);
  const auto relay = w.add_relay();
  auto& b = w.add(1, {relay});
  w.api_json(b, "follow", {{"id", id_to_come(w, 0)}}); // by id only: the relay is the way to it
  w.run_until([] { return false; }, std::chrono::seconds(200));
  const auto relays = w.api_json(b, "relays")["relays"];
  REQUIRE(relays.size() == 1);
  // One lookup at the start, then one every 120 s while the relay
  // watches (it was one every 5 s, 41 here, each followed by a circuit
  // attempt).
  CHECK(relays[0]["lookups"].get<int>() <= 3);
  const auto text = w.log_text();
  std::size_t relayed_dials = 0;
  for (auto at = text.find("dialling relay/"); at != std::string::npos;
       at = text.find("dialling relay/", at + 1))
    ++relayed_dials;
  CHECK(relayed_dials == 0);

  // Found at once (the next lookup was about 40 s away): within the 5 s
  // over which followers spread their dials, plus the author's start.
  CHECK(author_returns(w, b, relay, std::chrono::seconds(30)) < std::chrono::seconds(8));
  const auto peers = w.api_json(b, "peers")["peers"];
  REQUIRE(peers.size() == 1);
  CHECK(peers[0]["address"] == w.nodes.back().address); // directly, not over a circuit
}

TEST_CASE("a follower whose relay session drops while it waits for an offline author asks again",
          "[actors][relay]") {
  const std::uint64_t seed = 31;
  INFO("seed " << seed);
  world w(seed);
  const auto relay = w.add_relay();
  auto& b = w.add(1, {relay});
  w.api_json(b, "follow", {{"id", id_to_come(w, 0)}});
  w.run_until([] { return false; }, std::chrono::seconds(10)); // the relay watches
  // The relay forgets b's watch with b's session; b reconnects.
  w.net->set_link(b.address, "sim:relay", false);
  w.run_until([] { return false; }, std::chrono::seconds(5));
  w.net->set_link(b.address, "sim:relay", true);
  REQUIRE(w.run_until(
      [&] { return w.api_json(b, "relays")["relays"][0]["state"] == "connected"; },
      std::chrono::seconds(60)));
  w.run_until([] { return false; }, std::chrono::seconds(5));
  // The watch was asked for again on the new session: found at once (the
  // 5 s dial spread, plus the author's start), not at the next sparse
  // lookup (up to 120 s).
  CHECK(author_returns(w, b, relay, std::chrono::seconds(150)) < std::chrono::seconds(8));
}

TEST_CASE("writers of a shared topic meet at the relay's rendezvous and sync without following "
          "each other",
          "[actors][relay]") {
  world w(29);
  const auto relay = w.add_relay();
  auto& a = w.add(0, {relay});
  auto& b = w.add(1, {relay});
  auto created = w.api_json(a, "topic_create", {{"name", "plans"}, {"writers", {w.id_of(b)}}});
  const auto topic = created["topic"].get<std::string>();
  w.api_json(b, "topic_join", {{"descriptor", created["descriptor"]}});
  const auto subject = w.id_of(a) + "/plans/trip";
  w.api_json(a, "put", {{"subject", subject}, {"doc", {{"where", "sea"}}}, {"topic", topic}});
  auto arrived = [&] {
    storage::documents docs(*b.env->store);
    auto r = docs.get(subject, topic);
    return r && !r->is_null() && (*r)["doc"].value("where", "") == "sea";
  };
  const bool got = w.run_until(arrived, std::chrono::seconds(60));
  INFO(w.log_text());
  REQUIRE(got);
  // Neither follows the other: the connection exists because both write
  // the topic (each found the other at the rendezvous of its hashed id).
  CHECK(w.api_json(b, "status")["follows"] == 0);
}

TEST_CASE("a follower whose applies fall behind stops reading and still completes the sync",
          "[actors][sync]") {
  world w(31);
  auto& a = w.add(0);
  auto& b = w.add(1);
  // Every data message exceeds the cap: reading pauses after each one and
  // resumes when it is applied.
  b.env->settings.max_applying_bytes = 1;
  for (int i = 0; i < 40; ++i)
    w.api_json(a, "post", {{"text", "post " + std::to_string(i)}});
  w.api_json(b, "follow", {{"id", w.id_of(a)}, {"address", a.address}});
  REQUIRE(w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 40; }, std::chrono::seconds(30)));
  for (int i = 0; i < 10; ++i)
    w.api_json(a, "post", {{"text", "pushed " + std::to_string(i)}});
  const bool got = w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 50; }, std::chrono::seconds(30));
  INFO(w.log_text());
  REQUIRE(got);
  auto peers = w.api_json(b, "peers")["peers"];
  REQUIRE(peers.size() == 1);
  CHECK(peers[0]["read_pauses"].get<int>() >= 2);
  CHECK(peers[0]["state"] == "connected");
}

TEST_CASE("a relayed connection is replaced by a direct one once the peer can be dialled",
          "[actors][relay]") {
  world w(37);
  const auto relay = w.add_relay();
  auto& c = w.add(0, {relay});
  auto& d = w.add(1, {relay});
  w.net->set_link(c.address, d.address, false); // no direct path at first
  w.api_json(c, "post", {{"text", "one"}});
  w.api_json(d, "follow", {{"id", w.id_of(c)}});
  REQUIRE(w.run_until([&] { return w.feed_size(d, w.id_of(c)) == 1; }, std::chrono::seconds(60)));
  auto address_at_d = [&] {
    auto p = w.api_json(d, "peers")["peers"];
    return p.size() == 1 && p[0]["state"] == "connected" ? p[0]["address"].get<std::string>()
                                                         : std::string{};
  };
  REQUIRE(address_at_d().rfind("relay/", 0) == 0);

  w.net->set_link(c.address, d.address, true);
  const bool direct = w.run_until([&] { return address_at_d() == c.address; }, std::chrono::minutes(2));
  INFO(w.log_text());
  REQUIRE(direct);
  w.api_json(c, "post", {{"text", "two, over the direct connection"}});
  CHECK(w.run_until([&] { return w.feed_size(d, w.id_of(c)) == 2; }, std::chrono::seconds(5)));
  auto relays = w.api_json(d, "relays")["relays"];
  CHECK(relays[0]["circuits_open"].get<int>() == 0);
}

namespace {

/// Calls `op` on n until `done(reply)` holds, running the world a few
/// virtual seconds between tries (aggregators are dialled on first use).
json api_until(world& w, world::node& n, const std::string& op, const json& params,
               const std::function<bool(const json&)>& done) {
  json r;
  for (int i = 0; i < 20; ++i) {
    r = w.api_json(n, op, params);
    if (done(r))
      return r;
    w.run_until([] { return false; }, std::chrono::seconds(2));
  }
  return r;
}

std::size_t count_via(const json& posts, const std::string& via) {
  std::size_t n = 0;
  for (const auto& p : posts)
    n += p.value("via", std::string{}) == via && p.value("verified", false) ? 1 : 0;
  return n;
}

} // namespace

TEST_CASE("a stranger's mention and reply reach a node through an aggregator, verified, and "
          "tampered items are refused",
          "[actors][aggregator]") {
  const std::uint64_t seed = 61;
  INFO("seed " << seed);
  world w(seed);
  auto& a = w.add(0);
  auto& g = w.add(1);
  auto& s = w.add(2);
  g.env->aggregate = true;
  a.env->aggregators = {g.env->self.pub()};
  a.env->addresses[w.id_of(g)] = g.address;
  a.env->addresses[w.id_of(s)] = s.address;
  const auto ida = w.id_of(a), ids = w.id_of(s);

  auto root = w.api_json(a, "post", {{"text", "who is coming on saturday? #picnic"}});
  const auto root_subject = root["subject"].get<std::string>();
  w.api_json(s, "post", {{"text", "hello @" + ida + " #picnic"}});
  w.api_json(s, "post", {{"text", "me! (a stranger)"}, {"reply_to", root_subject}});
  // The aggregator follows both (in a deployment it meets them in the
  // relays' directory); a and s do not know each other.
  w.api_json(g, "follow", {{"id", ida}, {"address", a.address}});
  w.api_json(g, "follow", {{"id", ids}, {"address", s.address}});
  REQUIRE(w.run_until([&] { return w.feed_size(g, ids) == 2 && w.feed_size(g, ida) == 1; },
                      std::chrono::seconds(20)));
  CHECK(w.feed_size(a, ids) == 0);

  const std::string via = "aggregator:" + w.id_of(g);
  auto n = api_until(w, a, "notifications", json::object(),
                     [&](const json& r) { return count_via(r["posts"], via) == 2; });
  INFO(n.dump(2));
  REQUIRE(count_via(n["posts"], via) == 2);
  std::set<std::string> reasons;
  for (const auto& p : n["posts"])
    reasons.insert(p["reason"].get<std::string>());
  CHECK(reasons == std::set<std::string>{"mention", "reply"});

  auto t = w.api_json(a, "thread", {{"subject", root_subject}});
  INFO(t.dump(2));
  REQUIRE(t["replies"].size() == 1);
  CHECK(t["replies"][0]["via"] == via);
  CHECK(t["replies"][0]["doc"]["text"] == "me! (a stranger)");

  auto tag = w.api_json(a, "tag", {{"tag", "picnic"}});
  CHECK(tag["posts"].size() == 2); // a's own, and s's through the aggregator
  auto tr = w.api_json(a, "trending", {{"window_ms", 3600000}});
  REQUIRE(tr["sources"].size() == 1);
  REQUIRE_FALSE(tr["sources"][0]["tags"].empty());
  CHECK(tr["sources"][0]["tags"][0] == json({{"tag", "picnic"}, {"count", 2}}));

  // The aggregator alters the text of the first item it returns: the asker
  // refuses that item, keeps the other, and says why.
  g.env->tamper_answers = [](protocol::query_result_msg& r) {
    if (r.items.empty())
      return;
    auto& rec = r.items[0].reply.entries.at(0).records.at(0);
    auto body = protocol::decode_body(rec.second);
    REQUIRE(body);
    body->value = "\"I never wrote this\"";
    rec.second = protocol::encode_body(*body);
  };
  auto bad = w.api_json(a, "notifications");
  INFO(bad.dump(2));
  CHECK(count_via(bad["posts"], via) == 1);
  for (const auto& p : bad["posts"])
    CHECK(p["doc"].value("text", std::string{}) != "I never wrote this");
  REQUIRE(bad["sources"].size() == 1);
  REQUIRE(bad["sources"][0]["refused_items"].size() == 1);
  CHECK(bad["sources"][0]["refused_items"][0].get<std::string>().find("does not match") !=
        std::string::npos);

  // A node that is not an aggregator refuses queries.
  auto q = api_until(w, a, "query",
                     {{"kind", "mentions"}, {"arg", "me"}, {"aggregator", ids}},
                     [](const json& r) { return r.value("error", std::string{}).find("connect") ==
                                                std::string::npos; });
  CHECK(q["error"] == "this node is not an aggregator");
  CHECK(q["posts"].empty());
}

TEST_CASE("inbound connections beyond the limit are refused while the others keep syncing",
          "[actors][abuse]") {
  const std::uint64_t seed = 73;
  INFO("seed " << seed);
  world w(seed);
  auto& a = w.add(0);
  a.env->settings.max_inbound_connections = 2;
  auto& b = w.add(1);
  auto& c = w.add(2);
  auto& d = w.add(3);
  w.api_json(a, "post", {{"text", "hello"}});
  for (auto* n : {&b, &c})
    w.api_json(*n, "follow", {{"id", w.id_of(a)}, {"address", a.address}});
  REQUIRE(w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 1 && w.feed_size(c, w.id_of(a)) == 1; },
                      std::chrono::seconds(20)));
  w.api_json(d, "follow", {{"id", w.id_of(a)}, {"address", a.address}});
  w.run_until([] { return false; }, std::chrono::seconds(30));
  CHECK(w.feed_size(d, w.id_of(a)) == 0); // refused, again and again
  auto peers = w.api_json(a, "peers")["peers"];
  std::size_t connected = 0;
  for (const auto& p : peers)
    connected += p["state"] == "connected" ? 1 : 0;
  CHECK(connected == 2);
  w.api_json(a, "post", {{"text", "still serving"}});
  CHECK(w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 2; }, std::chrono::seconds(10)));
  // Room again: d gets in on its next redial.
  a.env->settings.max_inbound_connections = 3;
  CHECK(w.run_until([&] { return w.feed_size(d, w.id_of(a)) == 2; }, std::chrono::minutes(3)));
}

TEST_CASE("with two relays, a co-follower that leaves one relay's rendezvous but stays at the "
          "other is still pulled from when the author is out of reach",
          "[actors][relay]") {
  const std::uint64_t seed = 37;
  INFO("seed " << seed);
  world w(seed);
  const auto r0 = w.add_relay(0);
  const auto r1 = w.add_relay(1);
  auto& a = w.add(0, {r0, r1});
  auto& b = w.add(1, {r0, r1});
  auto& c = w.add(2, {r0, r1});
  for (int i = 0; i < 3; ++i)
    w.api_json(a, "post", {{"text", "post " + std::to_string(i)}});
  w.api_json(b, "follow", {{"id", w.id_of(a)}});
  REQUIRE(w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 3; }, std::chrono::seconds(30)));
  w.api_json(c, "follow", {{"id", w.id_of(a)}});
  REQUIRE(w.run_until([&] { return w.feed_size(c, w.id_of(a)) == 3; }, std::chrono::seconds(30)));
  w.run_until([] { return false; }, std::chrono::seconds(10)); // c meets b at both rendezvous

  // b loses the second relay for good: that relay tells c that b left the
  // feed's rendezvous. b is still at the first.
  w.net->set_link(b.address, "sim:relay1", false);
  w.run_until([] { return false; }, std::chrono::seconds(10));
  auto relays_of_b = w.api_json(b, "relays")["relays"];
  REQUIRE(relays_of_b.size() == 2);
  CHECK(relays_of_b[1]["state"] != "connected");

  // a is now out of c's reach (no direct link, no relay): a's next post
  // reaches b only, and c must get it from b.
  w.net->set_link(a.address, c.address, false);
  w.net->set_link(a.address, "sim:relay", false);
  w.net->set_link(a.address, "sim:relay1", false);
  w.run_until([] { return false; }, std::chrono::seconds(2));
  w.api_json(a, "post", {{"text", "while a is out of c's reach"}});
  REQUIRE(w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 4; }, std::chrono::seconds(30)));
  const bool got = w.run_until([&] { return w.feed_size(c, w.id_of(a)) == 4; }, std::chrono::seconds(90));
  INFO(w.log_text());
  CHECK(got);
}

TEST_CASE("a resync end naming held writes beyond the asker's own clock is refused and the "
          "connection closed",
          "[actors][sync][security]") {
  world w(5);
  auto& victim = w.add(0);
  // A million-counter run for a replica the victim never heard of: a few
  // bytes on the wire, 125 kB once decoded (within the decoder's limits),
  // and a rogue could send one per page for ever.
  auto bad = spawn_rogue(
      w, 1, [](protocol::signed_reply&) {},
      [](protocol::resync_done_msg& m) {
        m.held.add(causality::dot{causality::replica_id{0xbad}, causality::counter{1'000'000}});
      });
  REQUIRE(storage::documents(*bad.env->store).post("mine", 1));
  const auto rogue_id = protocol::to_text(bad.env->self.pub());
  w.api_json(victim, "follow", {{"id", rogue_id}, {"address", "sim:1"}});
  // CHECK, not REQUIRE: the rogue must be stopped either way, or the
  // testing actor system waits for it for ever at the end.
  const bool closed = w.run_until([&] { return *bad.closed; }, std::chrono::seconds(5));
  INFO(w.log_text());
  CHECK(closed);
  CHECK(w.log_text().find("names writes we never had") != std::string::npos);
  caf::anon_send_exit(bad.actor, caf::exit_reason::user_shutdown);
}

namespace {

/// Whether node `n` pulls anything from the peer `peer_id` (its peer
/// actor's pulling list): a node that does not follow that peer pulls from
/// it only as a co-follower of an author out of reach.
bool pulls_from(world& w, world::node& n, const std::string& peer_id) {
  const auto peers = w.api_json(n, "peers"); // kept: the loop reads into it
  for (const auto& p : peers["peers"])
    if (p["id"] == peer_id && !p["pulling"].empty())
      return true;
  return false;
}

/// The state node `n`'s peer actor for `peer_id` reports ("connected",
/// "backoff", ...), or "" when it has none (the actor ended).
std::string peer_state(world& w, world::node& n, const std::string& peer_id) {
  const auto peers = w.api_json(n, "peers"); // kept: the loop reads into it
  for (const auto& p : peers["peers"])
    if (p["id"] == peer_id)
      return p["state"].get<std::string>();
  return "";
}

/// Runs in steps of 2 virtual seconds until pred holds (checked between
/// steps: it asks the node's API, which runs the scheduler itself) or
/// `limit_s` pass.
template <class Pred>
bool every_2s_until(world& w, Pred pred, int limit_s) {
  for (int t = 0; t < limit_s; t += 2) {
    if (pred())
      return true;
    w.run_until([] { return false; }, std::chrono::seconds(2));
  }
  return pred();
}

/// Three nodes on one relay: a posts, b and c follow a and hold its post,
/// and c has met b, a co-follower, at a's rendezvous.
struct co_followers {
  world::node& a;
  world::node& b;
  world::node& c;
};

co_followers follow_one_author(world& w) {
  const auto r0 = w.add_relay(0);
  auto& a = w.add(0, {r0});
  auto& b = w.add(1, {r0});
  auto& c = w.add(2, {r0});
  w.api_json(a, "post", {{"text", "first"}});
  w.api_json(b, "follow", {{"id", w.id_of(a)}});
  w.api_json(c, "follow", {{"id", w.id_of(a)}});
  REQUIRE(w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 1 && w.feed_size(c, w.id_of(a)) == 1; },
                      std::chrono::seconds(30)));
  w.run_until([] { return false; }, std::chrono::seconds(10)); // c meets b at the rendezvous
  return {a, b, c};
}

/// Puts the author out of c's reach (no direct link, no relay) or back.
void reach_author(world& w, const co_followers& n, bool up) {
  w.net->set_link(n.a.address, n.c.address, up);
  w.net->set_link(n.a.address, "sim:relay", up);
}

} // namespace

TEST_CASE("a follower pulls from a co-follower while the author's channel is down and stops once "
          "it is up again (the peer actor's pushed link state, both ways)",
          "[actors][relay]") {
  const std::uint64_t seed = 41;
  INFO("seed " << seed);
  world w(seed);
  const auto n = follow_one_author(w);
  CHECK_FALSE(pulls_from(w, n.c, w.id_of(n.b)));

  // c's channel to a goes down and c pulls a's feed from b.
  reach_author(w, n, false);
  const bool pulled = every_2s_until(w, [&] { return pulls_from(w, n.c, w.id_of(n.b)); }, 120);
  INFO(w.log_text());
  REQUIRE(pulled);

  // a back: c's channel to a comes up again, and c stops pulling from b.
  reach_author(w, n, true);
  const bool stopped = every_2s_until(w, [&] { return !pulls_from(w, n.c, w.id_of(n.b)); }, 120);
  CHECK(stopped);
  // The author is the one c is connected to at the end.
  CHECK(peer_state(w, n.c, w.id_of(n.a)) == "connected");
}

TEST_CASE("a connection kept to a co-follower after the pulls stop closes once the co-follower "
          "would have retired the puller",
          "[actors][relay]") {
  const std::uint64_t seed = 43;
  INFO("seed " << seed);
  world w(seed);
  w.configure = [](node_env& env) {
    env.settings.co_follower_retire_after = std::chrono::seconds(60);
    env.settings.co_follower_linger.reset(); // kept as long as the membership (the default closes at once)
  };
  const auto n = follow_one_author(w);
  auto& a = n.a;
  auto& b = n.b;
  auto& c = n.c;
  reach_author(w, n, false);
  REQUIRE(every_2s_until(w, [&] { return pulls_from(w, c, w.id_of(b)); }, 120));
  reach_author(w, n, true);
  REQUIRE(every_2s_until(w, [&] { return !pulls_from(w, c, w.id_of(b)); }, 120));

  // Kept for a's next absence: still connected well within the period.
  w.run_until([] { return false; }, std::chrono::seconds(30));
  CHECK(peer_state(w, c, w.id_of(b)) == "connected");
  CHECK(peer_state(w, b, w.id_of(c)) == "connected");
  // Past it (and a tick): closed, and both actors ended.
  w.run_until([] { return false; }, std::chrono::seconds(40));
  INFO(w.log_text());
  CHECK(peer_state(w, c, w.id_of(b)).empty());
  CHECK(peer_state(w, b, w.id_of(c)).empty());
  CHECK(w.log_text().find("s for the author's next absence, unused") != std::string::npos);
  // The author is still followed and connected.
  CHECK(peer_state(w, c, w.id_of(a)) == "connected");
}

namespace {

/// Rendezvous topics whose joined/left events node `n` hears at its first
/// relay (the relays API's topics_watched).
std::int64_t topics_watched(world& w, world::node& n) {
  const auto relays = w.api_json(n, "relays"); // kept: indexed below
  return relays["relays"].empty() ? -1 : relays["relays"][0]["topics_watched"].get<std::int64_t>();
}

/// Whether every node of `f` holds `n` posts of `author`'s feed.
bool all_hold(world& w, const std::vector<world::node*>& f, const std::string& author, std::size_t n) {
  return std::all_of(f.begin(), f.end(), [&](world::node* x) { return w.feed_size(*x, author) == n; });
}

/// An author (node 0) and `n` followers (nodes 1..n) on one relay, each
/// holding the author's first post, with the feed's rendezvous settled.
struct followed_author {
  world::node* author = nullptr;
  std::vector<world::node*> followers;
};

followed_author author_with_followers(world& w, std::size_t n) {
  const auto r0 = w.add_relay(0);
  followed_author out;
  out.author = &w.add(0, {r0});
  for (std::size_t i = 1; i <= n; ++i)
    out.followers.push_back(&w.add(i, {r0}));
  w.api_json(*out.author, "post", {{"text", "first"}});
  for (auto* x : out.followers)
    w.api_json(*x, "follow", {{"id", w.id_of(*out.author)}});
  REQUIRE(w.run_until([&] { return all_hold(w, out.followers, w.id_of(*out.author), 1); },
                      std::chrono::seconds(60)));
  w.run_until([] { return false; }, std::chrono::seconds(10)); // the rendezvous settles
  return out;
}

} // namespace

TEST_CASE("a follower stops watching a feed's rendezvous once it knows eight co-followers, and "
          "watches again when one is passed over",
          "[actors][relay]") {
  const std::uint64_t seed = 53;
  INFO("seed " << seed);
  world w(seed);
  const auto net = author_with_followers(w, 10);
  auto& a = *net.author;
  const auto& f = net.followers;
  // Each follower met nine others there and keeps eight: no more events.
  for (auto* x : f) {
    CHECK(topics_watched(w, *x) == 0);
    CHECK(w.api_json(*x, "relays")["relays"][0]["topics_joined"].get<int>() >= 1);
  }
  // A post still reaches everyone (pushed by the author; the rendezvous is
  // only for its absences).
  w.api_json(a, "post", {{"text", "second"}});
  CHECK(w.run_until([&] { return all_hold(w, f, w.id_of(a), 2); }, std::chrono::seconds(30)));

  // The author and every co-follower out of f[0]'s reach, the co-followers
  // off the relay too (their `left` events are not sent to f[0] now): the
  // ones f[0] pulls from are passed over, and it watches again.
  auto& x = *f[0];
  w.net->set_link(a.address, x.address, false);
  w.net->set_link(a.address, "sim:relay", false);
  for (std::size_t i = 1; i < f.size(); ++i) {
    w.net->set_link(x.address, f[i]->address, false);
    w.net->set_link(f[i]->address, "sim:relay", false);
  }
  const bool watching = every_2s_until(w, [&] { return topics_watched(w, x) == 1; }, 120);
  INFO(w.log_text());
  CHECK(watching);
  CHECK(w.log_text().find("out of reach; passed over") != std::string::npos);
}

namespace {

/// Node `n`'s entry for `peer_id` in its peer list (null when it has none).
json peer_entry(world& w, world::node& n, const std::string& peer_id) {
  const auto peers = w.api_json(n, "peers"); // kept: the loop reads into it
  for (const auto& p : peers["peers"])
    if (p["id"] == peer_id)
      return p;
  return nullptr;
}

bool asleep(world& w, world::node& n, const std::string& peer_id) {
  const auto p = peer_entry(w, n, peer_id);
  return !p.is_null() && p["asleep"].get<bool>() && p["state"] == "connected";
}

} // namespace

TEST_CASE("an idle co-follower connection sleeps at both ends: the nodes keep it open with "
          "keepalives, a new pull wakes it, and a silent peer still times out",
          "[actors][relay][sleep]") {
  const std::uint64_t seed = 53;
  INFO("seed " << seed);
  world w(seed);
  w.configure = [](node_env& env) {
    env.settings.peer_sleep_after = std::chrono::seconds(5);
    env.settings.co_follower_linger.reset(); // the co-follower connection lingers, then sleeps
    env.settings.keepalive = std::chrono::seconds(10);
    env.settings.peer_timeout = std::chrono::seconds(30);
  };
  const auto n = follow_one_author(w);
  const auto b_id = w.id_of(n.b);
  const auto c_id = w.id_of(n.c);
  reach_author(w, n, false);
  REQUIRE(every_2s_until(w, [&] { return pulls_from(w, n.c, b_id); }, 120));
  reach_author(w, n, true);
  REQUIRE(every_2s_until(w, [&] { return !pulls_from(w, n.c, b_id); }, 120));

  // Quiet for 5 s: b's actor for c (serving nothing now) and c's for b
  // (kept for the author's next absence, dialled through c's node) sleep.
  const bool slept = every_2s_until(w, [&] { return asleep(w, n.b, c_id) && asleep(w, n.c, b_id); }, 30);
  INFO(w.log_text());
  REQUIRE(slept);
  const auto rx0 = peer_entry(w, n.b, c_id)["bytes_in"].get<std::uint64_t>();
  // Three peer timeouts later the connection is still there, asleep at
  // both ends: the nodes sent and answered keepalives themselves.
  w.run_until([] { return false; }, std::chrono::seconds(90));
  CHECK(asleep(w, n.b, c_id));
  CHECK(asleep(w, n.c, b_id));
  CHECK(peer_entry(w, n.b, c_id)["bytes_in"].get<std::uint64_t>() > rx0);
  CHECK(w.log_text().find("peer silent") == std::string::npos);

  // The author goes away again and posts meanwhile: c pulls from b on the
  // sleeping connection, which wakes b's side (a subscribe is no
  // keepalive), and gets the new post.
  w.api_json(n.a, "post", {{"text", "second"}});
  REQUIRE(w.run_until([&] { return w.feed_size(n.b, w.id_of(n.a)) == 2; }, std::chrono::seconds(30)));
  reach_author(w, n, false);
  const bool got = every_2s_until(w, [&] { return w.feed_size(n.c, w.id_of(n.a)) == 2; }, 120);
  CHECK(got);
  CHECK(pulls_from(w, n.c, b_id));
  const auto b_side = peer_entry(w, n.b, c_id);
  REQUIRE_FALSE(b_side.is_null());
  CHECK_FALSE(b_side["asleep"].get<bool>());
  CHECK(b_side["serving"].size() == 1);

  // Back to sleep once the author is back, then the link between b and c
  // goes dead: each node closes its sleeping end after the peer timeout.
  reach_author(w, n, true);
  REQUIRE(every_2s_until(w, [&] { return asleep(w, n.b, c_id) && asleep(w, n.c, b_id); }, 120));
  const auto now = static_cast<std::int64_t>(clock_ms(w.sched->clock().now()));
  w.net->hold({n.b.address}, {n.c.address}, now + 300'000); // open, but nothing gets through
  w.net->hold({n.c.address}, {n.b.address}, now + 300'000);
  w.run_until([] { return false; }, std::chrono::seconds(45));
  CHECK(peer_entry(w, n.b, c_id).is_null());
  CHECK(peer_entry(w, n.c, b_id).is_null());
  CHECK(w.log_text().find("disconnected: peer silent for") != std::string::npos);
}

TEST_CASE("co_follower_linger 0 closes a co-follower connection once the pulls stop",
          "[actors][relay]") {
  const std::uint64_t seed = 47;
  INFO("seed " << seed);
  world w(seed);
  w.configure = [](node_env& env) {
    env.settings.co_follower_retire_after = std::chrono::seconds(60);
    env.settings.co_follower_linger = std::chrono::milliseconds(0);
  };
  const auto n = follow_one_author(w);
  reach_author(w, n, false);
  REQUIRE(every_2s_until(w, [&] { return pulls_from(w, n.c, w.id_of(n.b)); }, 120));
  reach_author(w, n, true);
  REQUIRE(every_2s_until(w, [&] { return !pulls_from(w, n.c, w.id_of(n.b)); }, 120));
  // A tick later, not after the 60 s retirement period.
  w.run_until([] { return false; }, std::chrono::seconds(5));
  INFO(w.log_text());
  CHECK(peer_state(w, n.c, w.id_of(n.b)).empty());
  CHECK(peer_state(w, n.b, w.id_of(n.c)).empty());
  CHECK(w.log_text().find("kept 0 s for the author's next absence, unused") != std::string::npos);
  CHECK(peer_state(w, n.c, w.id_of(n.a)) == "connected");
}

TEST_CASE("a list of follows is one signed batch in the feed; each author's posts arrive",
          "[actors][sync]") {
  world w(23);
  auto& b = w.add(0);
  std::vector<world::node*> authors;
  for (int i = 1; i <= 3; ++i) {
    authors.push_back(&w.add(i));
    w.api_json(*authors.back(), "post", {{"text", "from " + std::to_string(i)}});
  }
  auto& d = w.add(4); // follows b, so it receives b's follow documents
  const auto feed = b.env->store->feed_topic_id();
  const auto batches = b.env->store->batch_count(feed);

  // A refused list changes nothing: no peer, no write.
  json bad = json::array({json{{"id", w.id_of(*authors[0])}}, json{{"id", "nonsense"}}});
  CHECK(w.api(b, "follow", {{"follows", bad}}).status == 400);
  json twice = json::array({json{{"id", w.id_of(*authors[0])}}, json{{"id", w.id_of(*authors[0])}}});
  CHECK(w.api(b, "follow", {{"follows", twice}}).status == 400);
  CHECK(w.api(b, "follow", {{"follows", json::array()}}).status == 400);
  CHECK(w.api_json(b, "peers")["peers"].empty());
  CHECK(b.env->store->batch_count(feed) == batches);

  json list = json::array();
  for (auto* a : authors)
    list.push_back(json{{"id", w.id_of(*a)}, {"address", a->address}});
  auto r = w.api(b, "follow", {{"follows", list}});
  REQUIRE(r.status == 200);
  CHECK(b.env->store->batch_count(feed) == batches + 1);
  w.api_json(d, "follow", {{"id", w.id_of(b)}, {"address", b.address}});
  const bool got = w.run_until(
      [&] {
        for (auto* a : authors)
          if (w.feed_size(b, w.id_of(*a)) != 1)
            return false;
        return true;
      },
      std::chrono::seconds(30));
  INFO(w.log_text());
  REQUIRE(got);
  const auto peers = w.api_json(b, "peers")["peers"];
  CHECK(peers.size() == 4); // the three followed, and d that follows b
  std::size_t followed = 0;
  for (std::size_t i = 0; i < peers.size(); ++i)
    followed += peers[i]["followed"].get<bool>() ? 1 : 0;
  CHECK(followed == 3);
  // d holds b's three follow documents, verified from the one batch.
  REQUIRE(w.run_until(
      [&] {
        storage::documents docs(*d.env->store);
        for (auto* a : authors) {
          auto doc = docs.get(w.id_of(b) + "/follows/" + w.id_of(*a));
          if (!doc || doc->is_null())
            return false;
        }
        return true;
      },
      std::chrono::seconds(30)));
}

namespace {

/// Whether x's log says it pulled the feed from co-follower `id` (as the
/// first choice or in its turn).
/// How many times x started pulling from the co-follower `id` (its first
/// pull and each turn that brought it in).
std::size_t pull_starts(const world& w, const world::node& x, const std::string& id) {
  const auto what = "pulling it from co-follower " + id.substr(0, 12);
  std::size_t n = 0;
  for (const auto& line : w.log)
    if (line.rfind(x.address + " ", 0) == 0 && line.find(what) != std::string::npos)
      ++n;
  return n;
}

/// The author out of reach of f[0] for `wait` (a rotation every
/// `rotate`, or none), with `followers` followers in all: how many times
/// f[0] started pulling from each other follower.
std::vector<std::size_t> pull_starts_by_co_follower(std::chrono::milliseconds rotate, std::size_t followers,
                                                    std::chrono::seconds wait, std::uint64_t seed) {
  world w(seed);
  w.configure = [rotate](node_env& e) { e.settings.co_follower_rotate = rotate; };
  const auto net = author_with_followers(w, followers);
  auto& a = *net.author;
  const auto& f = net.followers;
  auto& x = *f[0];
  w.net->set_link(a.address, x.address, false);
  w.net->set_link(a.address, "sim:relay", false);
  w.run_until([] { return false; }, wait);
  std::vector<std::size_t> starts;
  for (std::size_t i = 1; i < f.size(); ++i)
    starts.push_back(pull_starts(w, x, w.id_of(*f[i])));
  return starts;
}

/// Of three co-followers: how many f[0] pulled from at all.
std::size_t co_followers_pulled(std::chrono::milliseconds rotate, std::chrono::seconds wait) {
  const auto starts = pull_starts_by_co_follower(rotate, 4, wait, 59);
  return static_cast<std::size_t>(std::count_if(starts.begin(), starts.end(), [](std::size_t n) { return n > 0; }));
}

} // namespace

TEST_CASE("a follower pulling an absent author's feed gives each known co-follower its turn, "
          "not only the first ones it reached",
          "[actors][relay]") {
  // Three co-followers, all reachable, two pulled at a time. Without
  // turns the third is never asked: if the two had missed a delete it
  // holds, they would keep the post for ever (churn-lifecycle.toml seed 65).
  CHECK(co_followers_pulled(std::chrono::seconds(20), std::chrono::seconds(90)) == 3);
  CHECK(co_followers_pulled(std::chrono::milliseconds(0), std::chrono::seconds(90)) == 2);
}

TEST_CASE("co-followers' turns go round all of them: none stays pulled for good while others wait",
          "[actors][relay]") {
  // Four co-followers, two pulled at a time, a turn every 20 s for about
  // ten turns: each is brought in again after its turn, so one that was
  // out of reach at its first turn is asked again.
  const auto starts = pull_starts_by_co_follower(std::chrono::seconds(20), 5, std::chrono::seconds(240), 61);
  REQUIRE(starts.size() == 4);
  for (std::size_t i = 0; i < starts.size(); ++i) {
    INFO("co-follower " << i + 1);
    CHECK(starts[i] >= 2);
  }
}
