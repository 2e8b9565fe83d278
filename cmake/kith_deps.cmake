# Finds the six external dependencies and exposes them as imported targets.
# See docs/building.md for the Debian packages behind each.

find_package(PkgConfig REQUIRED)

# --- CAF 0.17: Debian ships no CMake config and no .pc, so build targets here.
find_path(CAF_INCLUDE_DIR caf/all.hpp)
find_library(CAF_CORE_LIBRARY caf_core)
find_library(CAF_IO_LIBRARY caf_io)
if(NOT CAF_INCLUDE_DIR OR NOT CAF_CORE_LIBRARY OR NOT CAF_IO_LIBRARY)
  message(FATAL_ERROR "CAF not found: run scripts/install-deps.sh (package libcaf-dev)")
endif()
file(STRINGS "${CAF_INCLUDE_DIR}/caf/config.hpp" caf_version_line
     REGEX "^#define CAF_VERSION [0-9]+")
string(REGEX REPLACE "^#define CAF_VERSION ([0-9]+).*" "\\1" CAF_VERSION "${caf_version_line}")
if(CAF_VERSION LESS 1700 OR CAF_VERSION GREATER_EQUAL 1800)
  message(FATAL_ERROR "CAF 0.17.x required, found CAF_VERSION=${CAF_VERSION}")
endif()
message(STATUS "CAF ${CAF_VERSION}: ${CAF_CORE_LIBRARY}")
if(NOT TARGET CAF::core)
  add_library(CAF::core UNKNOWN IMPORTED)
  set_target_properties(CAF::core PROPERTIES
    IMPORTED_LOCATION "${CAF_CORE_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}")
  add_library(CAF::io UNKNOWN IMPORTED)
  set_target_properties(CAF::io PROPERTIES
    IMPORTED_LOCATION "${CAF_IO_LIBRARY}"
    INTERFACE_LINK_LIBRARIES CAF::core)
endif()

# --- libsodium: pkg-config only.
pkg_check_modules(sodium REQUIRED IMPORTED_TARGET libsodium)

# --- RocksDB: the shared library, not the 33 MB static archive.
find_package(RocksDB CONFIG REQUIRED)

# --- Boost (Asio, Beast are header-only in 1.74).
find_package(Boost 1.74 CONFIG REQUIRED)

# --- Cap'n Proto (its config probes libatomic with C, hence LANGUAGES C CXX).
find_package(CapnProto CONFIG REQUIRED)

# --- Catch2 v2 for tests.
find_package(Catch2 2.13 CONFIG REQUIRED)
include(Catch)

# --- JSON (documents) and the command-line parser, both header-only.
find_package(nlohmann_json 3.11 CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)

# --- The daemon's logger and config parser (Debian: libspdlog-dev,
# libtomlplusplus-dev).
find_package(spdlog CONFIG REQUIRED)
find_package(tomlplusplus CONFIG REQUIRED)
