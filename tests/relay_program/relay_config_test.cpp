// relay.toml parsing without a process: every key reaches its field.

#include "harness.hpp"

#include "relay_config.hpp"

using namespace kith::relay;
using namespace kith::relay::program;
using namespace kith::relay::program_test;

TEST_CASE("a missing relay.toml gives the defaults of relay_limits", "[relay_program]") {
  temp_dir d;
  auto r = load_relay_config(d.path + "/relay.toml");
  REQUIRE(std::holds_alternative<relay_config>(r));
  const auto& c = std::get<relay_config>(r);
  const relay_limits defaults;
  CHECK(c.listen == "0.0.0.0:7480");
  CHECK(c.http == "127.0.0.1:7481");
  CHECK(c.log_level == "info");
  CHECK(c.restart_spread_ms == 30'000);
  CHECK(c.restart_drain_ms == 10'000);
  CHECK(c.limits.max_connections == defaults.max_connections);
  CHECK(c.limits.circuit_max_bytes == defaults.circuit_max_bytes);
  CHECK(c.limits.wire.max_payload_bytes == defaults.wire.max_payload_bytes);
}

TEST_CASE("every relay.toml key reaches its field", "[relay_program]") {
  temp_dir d;
  spit(d.path + "/relay.toml", R"([relay]
listen = "[::1]:9000"
http = ""
log_level = "debug"
max_queued_bytes = 1048576

[limits]
max_connections = 1001
max_registrations = 1002
max_registrations_per_ip = 1003
handshake_timeout_ms = 1004
idle_timeout_ms = 1005
max_frame_bytes = 200000
request_rate_per_s = 1007
request_burst = 1008
max_rate_strikes = 1009
max_record_ttl_ms = 1010
max_clock_skew_ms = 1011
max_record_addresses = 12
max_address_bytes = 1013
max_record_bytes = 1014
max_topic_bytes = 15
max_topics_per_connection = 1016
max_watches_per_connection = 1017
max_presence_watches_per_connection = 1031
max_presence_watches = 1032
max_members_per_topic = 1018
max_topics = 1019
max_page_size = 20
max_circuits = 1021
max_circuits_per_identity = 1022
circuit_max_bytes = 1023
circuit_max_duration_ms = 1024
circuit_accept_timeout_ms = 1025
max_circuit_frame_bytes = 1026

[limits.wire]
max_message_bytes = 2001
traversal_limit_words = 2002
nesting_limit = 3
max_addresses = 2004
max_address_bytes = 2005
max_topic_bytes = 2006
max_page_ids = 2007
max_reason_bytes = 2008
max_payload_bytes = 2009

[restart]
spread_seconds = 7
drain_seconds = 3
)");
  auto r = load_relay_config(d.path + "/relay.toml");
  if (auto* e = std::get_if<config_error>(&r))
    FAIL(e->message);
  const auto& c = std::get<relay_config>(r);
  CHECK(c.listen == "[::1]:9000");
  CHECK(c.http.empty());
  CHECK(c.log_level == "debug");
  CHECK(c.max_queued_bytes == 1048576);
  CHECK(c.restart_spread_ms == 7000);
  CHECK(c.restart_drain_ms == 3000);
  const auto& l = c.limits;
  CHECK(l.max_connections == 1001);
  CHECK(l.max_registrations == 1002);
  CHECK(l.max_registrations_per_ip == 1003);
  CHECK(l.handshake_timeout_ms == 1004);
  CHECK(l.idle_timeout_ms == 1005);
  CHECK(l.max_frame_bytes == 200000);
  CHECK(l.request_rate_per_s == 1007);
  CHECK(l.request_burst == 1008);
  CHECK(l.max_rate_strikes == 1009);
  CHECK(l.max_record_ttl_ms == 1010);
  CHECK(l.max_clock_skew_ms == 1011);
  CHECK(l.max_record_addresses == 12);
  CHECK(l.max_address_bytes == 1013);
  CHECK(l.max_record_bytes == 1014);
  CHECK(l.max_topic_bytes == 15);
  CHECK(l.max_topics_per_connection == 1016);
  CHECK(l.max_watches_per_connection == 1017);
  CHECK(l.max_presence_watches_per_connection == 1031);
  CHECK(l.max_presence_watches == 1032);
  CHECK(l.max_members_per_topic == 1018);
  CHECK(l.max_topics == 1019);
  CHECK(l.max_page_size == 20);
  CHECK(l.max_circuits == 1021);
  CHECK(l.max_circuits_per_identity == 1022);
  CHECK(l.circuit_max_bytes == 1023);
  CHECK(l.circuit_max_duration_ms == 1024);
  CHECK(l.circuit_accept_timeout_ms == 1025);
  CHECK(l.max_circuit_frame_bytes == 1026);
  CHECK(l.wire.max_message_bytes == 2001);
  CHECK(l.wire.traversal_limit_words == 2002);
  CHECK(l.wire.nesting_limit == 3);
  CHECK(l.wire.max_addresses == 2004);
  CHECK(l.wire.max_address_bytes == 2005);
  CHECK(l.wire.max_topic_bytes == 2006);
  CHECK(l.wire.max_page_ids == 2007);
  CHECK(l.wire.max_reason_bytes == 2008);
  CHECK(l.wire.max_payload_bytes == 2009);
}

TEST_CASE("relay.toml errors name the file, the line and the key", "[relay_program]") {
  temp_dir d;
  spit(d.path + "/relay.toml", "[relay]\nlog_level = \"info\"\n\n[limits]\nmax_topics = true\n");
  auto r = load_relay_config(d.path + "/relay.toml");
  REQUIRE(std::holds_alternative<config_error>(r));
  const auto& m = std::get<config_error>(r).message;
  CHECK(m.find(d.path + "/relay.toml:5") != std::string::npos);
  CHECK(m.find("'limits.max_topics'") != std::string::npos);
  CHECK(m.find("a boolean") != std::string::npos);
}

TEST_CASE("host:port parsing takes IP literals only", "[relay_program]") {
  CHECK(parse_host_port("127.0.0.1:0"));
  CHECK(parse_host_port("[::]:7480")->first == "::");
  CHECK_FALSE(parse_host_port("127.0.0.1:0", false));
  CHECK_FALSE(parse_host_port("::1:7480"));
  CHECK_FALSE(parse_host_port("localhost:7480"));
  CHECK_FALSE(parse_host_port("127.0.0.1:65536"));
  CHECK_FALSE(parse_host_port("127.0.0.1:"));
  CHECK_FALSE(parse_host_port("127.0.0.1:1234567"));
}
