// Helpers shared by tests: locating fixtures and temporary directories.
#pragma once

#include <filesystem>
#include <string>

#include "nlohmann/json.hpp"

namespace muserve::testing {

// <source>/tests/fixtures/<relative>.
std::filesystem::path FixturePath(const std::string& relative);

// <source>/../shared/fixtures/<relative> (the shared fixtures beside the repo).
std::filesystem::path SharedFixturePath(const std::string& relative);

// Reads a whole file; fails the current test (and returns "") if it cannot.
std::string ReadFileOrFail(const std::filesystem::path& path);

// Parses a JSON fixture; fails the current test if it cannot.
nlohmann::json ReadJsonOrFail(const std::filesystem::path& path);

// A fresh, empty directory under the test temp dir, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace muserve::testing
