// Process-wide logging through spdlog's default logger, in one of two line
// formats chosen at startup:
//   text: "2024-05-01T12:00:00.123Z info request finished id=r1 rpc=Generate"
//         (UTC timestamp, level, message, key=value fields; a value that is
//         empty or holds spaces, quotes, '=', '\', control characters or
//         ill-formed UTF-8 is written as a JSON string literal).
//   json: one object per line: {"ts":"2024-05-01T12:00:00.123Z","level":"info",
//         "msg":"request finished","id":"r1",...}; every string JSON-escaped,
//         ill-formed UTF-8 replaced by U+FFFD, non-finite doubles as null.
// Levels are named trace, debug, info, warn, error, critical in both formats.
// Messages logged straight through spdlog (spdlog::info(...)) get the same
// line format, without fields.
//
// Thread safety: ConfigureLogging once at startup, before other threads log;
// LogEvent and LogRequestFinished from any thread.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string_view>
#include <variant>

#include "absl/status/status.h"
#include "server/observability/request_record.h"
#include "spdlog/common.h"
#include "spdlog/sinks/sink.h"

namespace muserve::server {

// level: trace|debug|info|warn|error|off; format: text|json. InvalidArgument
// naming the flag (--log-level / --log-format) and the allowed values, and
// then logging is left as it was. Logs go to stderr through a writer thread,
// so that logging never blocks the caller (a full queue drops the oldest
// lines); call FlushLogs before exiting.
absl::Status ConfigureLogging(std::string_view level, std::string_view format);
// The checks ConfigureLogging makes, one value at a time, configuring
// nothing: InvalidArgument with the allowed values (not naming a flag, so
// that the caller can name where the value came from).
absl::Status CheckLogLevel(std::string_view level);
absl::Status CheckLogFormat(std::string_view format);
// The same, writing to `sink` synchronously instead of stderr (tests, files).
absl::Status ConfigureLogging(std::string_view level, std::string_view format,
                              std::shared_ptr<spdlog::sinks::sink> sink);

// Writes out every queued line; later lines are written synchronously. Call
// before exiting.
void FlushLogs();

// One field of a log line. `key` must be a plain identifier other than ts,
// level and msg (those name the line's own members in JSON). Integers wider
// than int64_t or unsigned ones must be cast: the variant refuses narrowing.
struct LogField {
  std::string_view key;
  std::variant<int64_t, double, bool, std::string_view> value;
};

// One line at `level` (skipped cheaply when the level is off).
void LogEvent(spdlog::level::level_enum level, std::string_view message,
              std::initializer_list<LogField> fields);

// "request finished" at info (warn when the status is INTERNAL, UNKNOWN or
// DATA_LOSS) with id, rpc, finish_reason ("none" when empty), code (e.g. "OK"),
// prompt_tokens, completion_tokens, cached_prompt_tokens, ttft_ms and
// queue_ms (only when known), total_ms, preemptions. Times in ms, rounded to us.
void LogRequestFinished(const RequestRecord& record);

}  // namespace muserve::server
