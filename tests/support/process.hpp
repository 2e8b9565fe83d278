#pragma once

// Child processes and scratch directories for the tests and benchmarks
// that drive real kith, kith-relay and helper programs.

#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

extern char** environ;

namespace kith::test {

/// Starts args[0] (a path) with stdin from /dev/null and stdout and stderr
/// appended to `log`. Returns the pid, or -1 with the reason in *why.
inline pid_t spawn_logged(const std::vector<std::string>& args, const std::string& log,
                          std::string* why = nullptr) {
  std::vector<char*> argv;
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    if (why)
      *why = "cannot start " + args[0] + ": " + std::strerror(rc);
    return -1;
  }
  return pid;
}

/// <parent or the system temp dir>/<prefix>-<pid>, made empty at start and
/// removed at scope exit unless kept.
class scratch_dir {
public:
  scratch_dir(const std::string& parent, const std::string& prefix, bool keep) : keep_(keep) {
    namespace fs = std::filesystem;
    const fs::path base = parent.empty() ? fs::temp_directory_path() : fs::path(parent);
    path_ = base / (prefix + "-" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~scratch_dir() {
    if (keep_) {
      std::cerr << "kept " << path_.string() << '\n';
      return;
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

private:
  std::filesystem::path path_;
  bool keep_;
};

} // namespace kith::test
