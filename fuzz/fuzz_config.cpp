// fuzz_config: node::load_config on an arbitrary <home>/config.toml. The
// input is written to a temporary home once per input; load_config must
// return a config or an error that names the file, never crash or throw.
// A config it accepts must hold values the daemon can use.
//
// fuzz/CMakeLists.txt compiles the daemon's sources into this target with
// toml++ in header-only mode (the daemon links Debian's libtomlplusplus.so,
// the same version), so the parser itself is instrumented and the fuzzer
// sees its coverage.

#include "kith/node/daemon.hpp"

#include "common.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

using namespace kith;

namespace {

/// A private temporary home, removed when the process exits.
struct temp_home {
  std::string path;
  temp_home() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kith-fuzz-config-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      fuzz::invariant_failed("mkdtemp failed");
    path = tmpl;
  }
  ~temp_home() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

const temp_home& home() {
  static const temp_home h;
  return h;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& h = home();
  {
    std::ofstream f(h.path + "/config.toml", std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!f)
      fuzz::invariant_failed("cannot write the temporary config file");
  }
  const node::data_dir dir(h.path);
  auto c = node::load_config(dir);
  if (!c) {
    if (c.err().message.find("config.toml") == std::string::npos)
      fuzz::invariant_failed("a config error does not name the file", c.err().message);
    return 0;
  }
  if (c->anti_entropy_s < 1 || c->anti_entropy_s > 86400)
    fuzz::invariant_failed("an accepted anti_entropy_seconds is out of range");
  return 0;
}
