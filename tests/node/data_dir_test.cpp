#include "kith/node/daemon.hpp"
#include "kith/node/data_dir.hpp"
#include "kith/storage/store.hpp"

#include "../storage/fixture.hpp"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

using namespace kith;

TEST_CASE("init writes an owner-only key and never overwrites one by accident", "[node]") {
  test::temp_dir tmp;
  node::data_dir dir(tmp.sub("home"));
  auto first = protocol::identity::from_seed(protocol::key_seed{1});
  auto moved = dir.create_identity(first, false);
  REQUIRE(moved);
  CHECK(moved->empty());
  struct stat st{};
  REQUIRE(::stat(dir.key_file().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto loaded = dir.load_identity();
  REQUIRE(loaded);
  CHECK(loaded->pub() == first.pub());

  auto second = protocol::identity::from_seed(protocol::key_seed{2});
  auto again = dir.create_identity(second, false);
  REQUIRE_FALSE(again);
  CHECK(again.err().code == storage::errc::already_exists);
  CHECK(dir.load_identity()->pub() == first.pub());

  // --force keeps the old key, moved aside.
  auto replaced = dir.create_identity(second, true);
  REQUIRE(replaced);
  REQUIRE_FALSE(replaced->empty());
  CHECK(node::data_dir(*replaced).load_identity()->pub() == first.pub());
  CHECK(dir.load_identity()->pub() == second.pub());
}

TEST_CASE("a key file others can read, or a damaged one, is refused with a reason", "[node]") {
  test::temp_dir tmp;
  node::data_dir dir(tmp.sub("home"));
  REQUIRE(dir.create_identity(protocol::identity::from_seed(protocol::key_seed{3}), false));
  ::chmod(dir.key_file().c_str(), 0644);
  auto open = dir.load_identity();
  REQUIRE_FALSE(open);
  CHECK(open.err().message.find("chmod 600") != std::string::npos);
  ::chmod(dir.key_file().c_str(), 0600);
  {
    std::ofstream(dir.key_file(), std::ios::trunc) << "kith-identity-v1\nzz\n";
  }
  ::chmod(dir.key_file().c_str(), 0600);
  auto bad = dir.load_identity();
  REQUIRE_FALSE(bad);
  CHECK(bad.err().code == storage::errc::corrupt);
  node::data_dir none(tmp.sub("nothing"));
  auto missing = none.load_identity();
  REQUIRE_FALSE(missing);
  CHECK(missing.err().message.find("kith init") != std::string::npos);
}

TEST_CASE("a node that loses its store comes back with a new replica id", "[node]") {
  test::temp_dir tmp;
  node::data_dir dir(tmp.sub("home"));
  auto me = protocol::identity::from_seed(protocol::key_seed{4});
  REQUIRE(dir.create_identity(me, false));
  {
    causality::replica_id before;
    {
      auto s = storage::store::open(dir.store_dir(), me, true);
      REQUIRE(s);
      before = (*s)->self_id();
      CHECK(protocol::check_binding((*s)->binding()));
    }
    std::filesystem::remove_all(dir.store_dir());
    auto s = storage::store::open(dir.store_dir(), me, true);
    REQUIRE(s);
    CHECK((*s)->self_id() != before);
    CHECK((*s)->binding().author == me.pub());
  }
}

TEST_CASE("config.toml sets the retirement period, and a bad one is refused naming the key", "[node]") {
  test::temp_dir tmp;
  node::data_dir dir(tmp.sub("home"));
  std::filesystem::create_directories(dir.path());
  auto write = [&](const std::string& text) { std::ofstream(dir.path() + "/config.toml") << text; };

  auto defaults = node::load_config(dir);
  REQUIRE(defaults);
  CHECK(defaults->retire_after_s == 7 * 24 * 3600);
  CHECK(defaults->co_follower_retire_after_s == 600);
  CHECK_FALSE(defaults->co_follower_linger_s);
  CHECK_FALSE(defaults->peer_sleep_after_s);

  write("[sync]\nretire_after_seconds = 0\n");
  auto never = node::load_config(dir);
  REQUIRE(never);
  CHECK(never->retire_after_s == 0);

  write("[sync]\nretire_after_seconds = 3600\nanti_entropy_seconds = 10\n"
        "co_follower_retire_after_seconds = 120\nco_follower_linger_seconds = 0\n"
        "peer_sleep_after_seconds = 0\n");
  auto hour = node::load_config(dir);
  REQUIRE(hour);
  CHECK(hour->retire_after_s == 3600);
  CHECK(hour->anti_entropy_s == 10);
  CHECK(hour->co_follower_retire_after_s == 120);
  CHECK(hour->co_follower_linger_s == std::optional<std::uint32_t>(0));
  CHECK(hour->peer_sleep_after_s == std::optional<std::uint32_t>(0));
  write("[sync]\npeer_sleep_after_seconds = -1\n");
  auto never_negative = node::load_config(dir);
  REQUIRE_FALSE(never_negative);
  CHECK(never_negative.err().message.find("sync.peer_sleep_after_seconds") != std::string::npos);
  write("[sync]\nco_follower_linger_seconds = 90000\n");
  auto day = node::load_config(dir);
  REQUIRE_FALSE(day);
  CHECK(day.err().message.find("sync.co_follower_linger_seconds") != std::string::npos);
  write("[sync]\nco_follower_retire_after_seconds = -5\n");
  auto neg = node::load_config(dir);
  REQUIRE_FALSE(neg);
  CHECK(neg.err().message.find("sync.co_follower_retire_after_seconds") != std::string::npos);

  for (const char* bad : {"-1", "40000000", "\"a week\""}) {
    write(std::string("[sync]\nretire_after_seconds = ") + bad + "\n");
    auto c = node::load_config(dir);
    REQUIRE_FALSE(c);
    CHECK(c.err().message.find("sync.retire_after_seconds") != std::string::npos);
    CHECK(c.err().message.find("config.toml") != std::string::npos);
  }
}
