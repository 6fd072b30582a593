#include "tests/testing/fixtures.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace muserve::testing {

std::filesystem::path FixturePath(const std::string& relative) {
  return std::filesystem::path(MUSERVE_SOURCE_DIR) / "tests" / "fixtures" / relative;
}

std::filesystem::path SharedFixturePath(const std::string& relative) {
  return std::filesystem::path(MUSERVE_SHARED_DIR) / "fixtures" / relative;
}

std::string ReadFileOrFail(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "cannot read fixture " << path;
    return "";
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

nlohmann::json ReadJsonOrFail(const std::filesystem::path& path) {
  const std::string text = ReadFileOrFail(path);
  nlohmann::json parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) ADD_FAILURE() << "fixture is not valid JSON: " << path;
  return parsed;
}

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  const char* base = std::getenv("TEST_TMPDIR");
  std::filesystem::path root = base ? base : std::filesystem::temp_directory_path();
  path_ = root / ("muserve-test-" + std::to_string(::getpid()) + "-" +
                  std::to_string(counter.fetch_add(1)));
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace muserve::testing
