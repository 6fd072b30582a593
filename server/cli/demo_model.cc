#include "server/cli/demo_model.h"

#include <unistd.h>

#include <cstdlib>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "engine/model/make_model.h"
#include "server/observability/logging.h"
#include "spdlog/spdlog.h"

namespace muserve::cli {
namespace {

std::filesystem::path CacheDir() {
  if (const char* dir = std::getenv("MUSERVE_CACHE_DIR"); dir != nullptr && *dir) return dir;
  if (const char* dir = std::getenv("XDG_CACHE_HOME"); dir != nullptr && *dir) {
    return std::filesystem::path(dir) / "muserve";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home) {
    return std::filesystem::path(home) / ".cache" / "muserve";
  }
  return std::filesystem::temp_directory_path() / "muserve-cache";
}

}  // namespace

absl::StatusOr<std::filesystem::path> EnsureDemoModel() {
  const std::filesystem::path dir = CacheDir() / "demo-model-tiny-v1";
  std::error_code error;
  if (std::filesystem::exists(dir / "config.json", error)) return dir;
  std::filesystem::create_directories(dir.parent_path(), error);
  if (error) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", dir.parent_path().string(), ": ", error.message()));
  }
  const std::filesystem::path staging =
      dir.parent_path() / absl::StrCat(dir.filename().string(), ".tmp-", getpid());
  if (absl::Status made = MakeModel({.out_dir = staging, .preset = ModelPreset::kTiny});
      !made.ok()) {
    return made;
  }
  std::filesystem::rename(staging, dir, error);
  if (error) {
    std::filesystem::remove_all(staging, error);
    // Another server may have won the race; its model is as good.
    if (std::filesystem::exists(dir / "config.json")) return dir;
    return absl::InternalError(absl::StrCat("cannot create ", dir.string()));
  }
  server::LogEvent(spdlog::level::info, "created the demo model", {{"dir", dir.string()}});
  return dir;
}

}  // namespace muserve::cli
