#include "kith/node/data_dir.hpp"

#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace kith::node {

namespace fs = std::filesystem;
using storage::errc;
using storage::error;

namespace {
constexpr const char* key_header = "kith-identity-v1";
}

std::string data_dir::default_path() {
  if (const char* h = std::getenv("KITH_HOME"); h && *h)
    return h;
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.kith";
  return ".kith";
}

storage::result<std::string> data_dir::create_identity(const protocol::identity& id,
                                                       bool replace) {
  std::error_code ec;
  fs::create_directories(path_, ec);
  if (ec)
    return error{errc::io, "cannot create " + path_ + ": " + ec.message()};
  ::chmod(path_.c_str(), 0700);
  std::string moved;
  if (fs::exists(key_file())) {
    if (!replace)
      return error{errc::already_exists,
                   "an identity already exists in " + path_ +
                       "; refusing to overwrite it. Its secret key cannot be recovered once "
                       "lost. To start over anyway, pass --force: the old key and store are "
                       "moved aside, not deleted."};
    auto stamp = std::to_string(
        std::chrono::duration_cast<std::chrono::seconds>(
            std::chrono::system_clock::now().time_since_epoch()).count());
    moved = path_ + "/old-" + stamp;
    fs::create_directories(moved, ec);
    fs::rename(key_file(), moved + "/identity.key", ec);
    if (!ec && fs::exists(store_dir()))
      fs::rename(store_dir(), moved + "/store", ec);
    if (ec)
      return error{errc::io, "cannot move the old identity aside: " + ec.message()};
  }
  // Written to a temporary file with owner-only permissions, synced, then
  // renamed: a crash leaves either no key or a whole one.
  const std::string tmp = key_file() + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0)
    return error{errc::io, "cannot write " + tmp + ": " + std::strerror(errno)};
  std::string text = std::string(key_header) + "\n" +
                     protocol::to_hex({reinterpret_cast<const char*>(id.seed().data()), 32}) +
                     "\n" + protocol::to_text(id.pub()) + "\n";
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), key_file().c_str()) != 0)
    return error{errc::io, "cannot write " + key_file() + ": " + std::strerror(errno)};
  return moved;
}

storage::result<protocol::identity> data_dir::load_identity() const {
  struct stat st{};
  if (::stat(key_file().c_str(), &st) != 0)
    return error{errc::not_found, "no identity in " + path_ + "; run `kith init` first"};
  if ((st.st_mode & 077) != 0)
  {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
    return error{errc::invalid, key_file() + " is readable by others (mode " + mode +
                                    "); run `chmod 600 " + key_file() + "`"};
  }
  std::ifstream in(key_file());
  std::string header, hex, text;
  std::getline(in, header);
  std::getline(in, hex);
  std::getline(in, text);
  if (header != key_header || hex.size() != 64)
    return error{errc::corrupt, key_file() + " is not a kith identity file"};
  protocol::key_seed seed{};
  for (std::size_t i = 0; i < 32; ++i) {
    auto byte = hex.substr(2 * i, 2);
    if (byte.find_first_not_of("0123456789abcdef") != std::string::npos)
      return error{errc::corrupt, key_file() + " is damaged (bad hex)"};
    seed[i] = static_cast<std::uint8_t>(std::stoul(byte, nullptr, 16));
  }
  auto id = protocol::identity::from_seed(seed);
  if (!text.empty() && text != protocol::to_text(id.pub()))
    return error{errc::corrupt, key_file() + " is damaged: its key does not match its id line"};
  return id;
}

} // namespace kith::node
