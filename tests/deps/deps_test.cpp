// One smoke check per external dependency: if the packages or the CMake
// wiring break, these fail first and say which one.
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <capnp/any.h>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <sodium.h>

#include <catch2/catch.hpp>

#include <memory>

TEST_CASE("libsodium signs and verifies with ed25519", "[deps]") {
  REQUIRE(sodium_init() >= 0);
  unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
  unsigned char seed[crypto_sign_SEEDBYTES] = {1};
  crypto_sign_seed_keypair(pk, sk, seed);
  const unsigned char msg[] = "kith";
  unsigned char sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, nullptr, msg, sizeof msg, sk);
  CHECK(crypto_sign_verify_detached(sig, msg, sizeof msg, pk) == 0);
  sig[0] ^= 1;
  CHECK(crypto_sign_verify_detached(sig, msg, sizeof msg, pk) != 0);
}

TEST_CASE("RocksDB opens an in-memory store and reads back a write", "[deps]") {
  std::unique_ptr<rocksdb::Env> env{rocksdb::NewMemEnv(rocksdb::Env::Default())};
  rocksdb::Options opts;
  opts.env = env.get();
  opts.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  REQUIRE(rocksdb::DB::Open(opts, "/kith-test", &raw).ok());
  std::unique_ptr<rocksdb::DB> db{raw};
  REQUIRE(db->Put(rocksdb::WriteOptions{}, "k", "v").ok());
  std::string v;
  REQUIRE(db->Get(rocksdb::ReadOptions{}, "k", &v).ok());
  CHECK(v == "v");
}

TEST_CASE("Cap'n Proto serializes and parses with explicit read limits", "[deps]") {
  capnp::MallocMessageBuilder b;
  b.initRoot<capnp::AnyPointer>().setAs<capnp::Text>("hello");
  auto words = capnp::messageToFlatArray(b);
  capnp::ReaderOptions limits;
  limits.traversalLimitInWords = 1024;
  limits.nestingLimit = 8;
  capnp::FlatArrayMessageReader r{words.asPtr(), limits};
  CHECK(r.getRoot<capnp::AnyPointer>().getAs<capnp::Text>() == "hello");
}

TEST_CASE("Boost.Asio runs a posted handler", "[deps]") {
  boost::asio::io_context io;
  int ran = 0;
  boost::asio::post(io, [&] { ++ran; });
  io.run();
  CHECK(ran == 1);
}

TEST_CASE("CAF 0.17 spawns an actor and answers a request", "[deps]") {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 1);
  caf::actor_system sys{cfg};
  // Function actors get at least one argument: for an empty argument pack
  // CAF 0.17's init_fun_factory dereferences a null shared_ptr, which UBSan
  // (make asan) reports. Class-based actors and actors with arguments are
  // not affected; docs/building.md records this for the actor layer.
  auto doubler = sys.spawn([](int factor) -> caf::behavior {
    return {[factor](int x) { return x * factor; }};
  }, 2);
  caf::scoped_actor self{sys};
  int answer = 0;
  self->request(doubler, caf::infinite, 21).receive([&](int y) { answer = y; },
                                                    [](caf::error&) {});
  CHECK(answer == 42);
  self->send_exit(doubler, caf::exit_reason::user_shutdown);
}
