// protocol::topic_name and string_pool: one copy of each id while any
// holder lives, found by plain strings without making one.

#include "kith/protocol/string_pool.hpp"
#include "kith/protocol/topic_name.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <thread>
#include <vector>

using kith::protocol::string_pool;
using kith::protocol::topic_name;

TEST_CASE("topic names with the same id share one copy, which goes with its last holder",
          "[topic_name]") {
  const auto before = topic_name::held();
  const std::string id = "feed/topic-name-test-" + std::string(40, 'a');
  {
    topic_name a(id);
    topic_name b{std::string_view(id)};
    CHECK(&a.str() == &b.str()); // one copy
    CHECK(a.str() == id);
    CHECK(a == b);
    CHECK(a == id);
    CHECK(id == a);
    CHECK(topic_name::held() == before + 1);
    topic_name c("feed/another-" + std::string(40, 'b'));
    CHECK(topic_name::held() == before + 2);
    CHECK(a != c);
    CHECK((a < c) == (id < c.str()));
    CHECK("<" + a + ">" == "<" + id + ">");
  }
  CHECK(topic_name::held() == before);
  topic_name none;
  CHECK(none.empty());
  CHECK(none.str().empty());
  CHECK(topic_name("").empty());
}

TEST_CASE("tables keyed by topic name find plain strings without holding a copy of them",
          "[topic_name]") {
  std::map<topic_name, int, std::less<>> m;
  m.emplace(topic_name("feed/x"), 1);
  m.emplace(topic_name("feed/y"), 2);
  const auto held = topic_name::held();
  const std::string y = "feed/y", z = "feed/z";
  auto it = m.find(y);
  REQUIRE(it != m.end());
  CHECK(it->second == 2);
  CHECK(m.find(z) == m.end());
  CHECK(m.count(std::string_view("feed/x")) == 1);
  CHECK(topic_name::held() == held); // no lookup made one
  // In id order, as a std::string key would be.
  std::set<topic_name, std::less<>> s{topic_name("b"), topic_name("a"), topic_name("c")};
  std::vector<std::string> order(s.begin(), s.end());
  CHECK(order == std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("a string pool shares values across threads and drops each with its last holder",
          "[topic_name][string_pool]") {
  string_pool pool;
  std::vector<std::shared_ptr<const std::string>> got(8);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < got.size(); ++i)
    threads.emplace_back([&, i] {
      for (int n = 0; n < 1000; ++n)
        got[i] = pool.intern(n % 2 ? "odd value, long enough to be worth sharing"
                                   : "even value, long enough to be worth sharing");
    });
  for (auto& t : threads)
    t.join();
  // Every thread ended on the odd value (n = 999): one copy of it.
  for (const auto& g : got)
    CHECK(g.get() == got[0].get());
  CHECK(pool.size() == 1);
  CHECK(pool.bytes() == got[0]->size());
  got.clear();
  CHECK(pool.size() == 0);
  CHECK(pool.bytes() == 0);
  // The pool may go before the values it gave out.
  auto kept = std::make_unique<string_pool>()->intern("outlives its pool");
  CHECK(*kept == "outlives its pool");
}
