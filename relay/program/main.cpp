// The `kith-relay` program: init, id and run. docs/operations.md is the
// operator's guide; docs/relay-protocol.md specifies what it speaks.
//
// Exit codes: 0 done (including a graceful stop), 1 a runtime failure
// (cannot bind, cannot write the data directory), 2 a usage or
// configuration error.

#include "identity_file.hpp"
#include "relay_config.hpp"
#include "relay_server.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <iostream>

namespace {

using namespace kith::relay::program;
namespace protocol = kith::protocol;

int fail(const std::string& message, int code) {
  std::cerr << "kith-relay: " << message << "\n";
  return code;
}

int do_init(const std::string& dir) {
  auto r = create_identity(dir);
  if (auto* e = std::get_if<identity_error>(&r))
    return fail(e->message, 1);
  std::cout << protocol::to_text(std::get<protocol::identity>(r).pub()) << "\n";
  return 0;
}

int do_id(const std::string& dir) {
  auto r = load_identity(dir);
  if (auto* e = std::get_if<identity_error>(&r))
    return fail(e->message, 1);
  std::cout << protocol::to_text(std::get<protocol::identity>(r).pub()) << "\n";
  return 0;
}

int do_run(const std::string& dir, const CLI::App& run, const std::string& listen,
           const std::string& http, const std::string& log_level) {
  const std::string config_path = dir + "/relay.toml";
  auto loaded = load_relay_config(config_path);
  if (auto* e = std::get_if<config_error>(&loaded))
    return fail(e->message, 2);
  auto cfg = std::get<relay_config>(loaded);
  if (run.count("--listen") != 0)
    cfg.listen = listen;
  if (run.count("--http") != 0)
    cfg.http = http;
  if (run.count("--log-level") != 0)
    cfg.log_level = log_level;
  if (auto e = validate(cfg, config_path + " and the command line"))
    return fail(e->message, 2);

  // Same format as the node's log: time, level, message; journald adds the rest.
  auto log = spdlog::stderr_color_mt("kith-relay");
  log->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  log->set_level(spdlog::level::from_str(cfg.log_level));
  log->flush_on(spdlog::level::trace); // lines reach journald and tests as they happen

  auto id = load_identity(dir);
  if (auto* e = std::get_if<identity_error>(&id)) {
    if (e->what != identity_error::kind::missing) {
      log->error("{}", e->message);
      return 1;
    }
    id = create_identity(dir);
    if (auto* e2 = std::get_if<identity_error>(&id)) {
      log->error("{}", e2->message);
      return 1;
    }
    log->info("created a new relay identity in {}", identity_path(dir));
  }

  // Writes go to sockets with MSG_NOSIGNAL already; this covers the rest.
  std::signal(SIGPIPE, SIG_IGN);
  boost::asio::io_context io(1);
  int code = 0;
  {
    relay_server server(io, std::get<protocol::identity>(id), cfg, dir, log);
    if (auto err = server.start()) {
      log->error("{}", *err);
      return 1;
    }
    code = server.run();
  }
  spdlog::drop("kith-relay");
  return code;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"kith-relay: helps kith nodes find and reach each other (docs/operations.md)"};
  app.require_subcommand(1);
  std::string dir;
  auto data_dir_option = [&dir](CLI::App* sub) {
    sub->add_option("-d,--data-dir", dir, "the relay's directory (identity, relay.toml, address files)")
        ->required()
        ->envname("KITH_RELAY_DATA_DIR");
  };

  auto* init = app.add_subcommand("init", "create the relay's identity (refuses to overwrite one)");
  data_dir_option(init);
  auto* id = app.add_subcommand("id", "print the relay's id (clients may pin it)");
  data_dir_option(id);
  auto* run = app.add_subcommand(
      "run", "run the relay until SIGINT (stop now) or SIGTERM/SIGHUP (graceful restart)");
  data_dir_option(run);
  std::string listen, http, log_level;
  run->add_option("--listen", listen, "relay address, IP:port (default 0.0.0.0:7480; port 0: any)");
  run->add_option("--http", http,
                  "metrics and health address, IP:port (default 127.0.0.1:7481; \"\" for none)");
  run->add_option("--log-level", log_level,
                  "trace, debug, info, warn, error, critical or off (default info)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (init->parsed())
    return do_init(dir);
  if (id->parsed())
    return do_id(dir);
  return do_run(dir, *run, listen, http, log_level);
}
