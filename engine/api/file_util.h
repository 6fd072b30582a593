// Whole-file reads shared by the loaders (config.json, index files,
// tokenizer.json, tokenizer_config.json, generation_config.json).
#pragma once

#include <filesystem>
#include <string>

#include "absl/status/statusor.h"

namespace muserve {

// Reads the whole of `path`. Error codes, each message naming the path:
//   NotFound          the path (or a directory on it) does not exist;
//   PermissionDenied  the file may not be opened for reading;
//   InvalidArgument   the path is not a regular file (directory, FIFO, device):
//                     it is opened non-blocking, so a FIFO never hangs the caller;
//   Internal          any other open, stat or read failure.
absl::StatusOr<std::string> ReadFileToString(const std::filesystem::path& path);

}  // namespace muserve
