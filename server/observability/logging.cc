#include "server/observability/logging.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/api/absl_string_view.h"
#include "fmt/format.h"
#include "server/observability/json_text.h"
#include "spdlog/async.h"
#include "spdlog/formatter.h"
#include "spdlog/logger.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace muserve::server {
namespace {

enum class LogFormat { kText, kJson };

// Read by LogEvent on any thread; written by ConfigureLogging at startup.
std::atomic<LogFormat> g_format{LogFormat::kText};

// LogEvent passes this pointer as the record's source function name to tell
// the formatter that the payload is already rendered for the line format (in
// JSON: the members after "level", without braces). No other caller can pass
// the same pointer, so a plain spdlog::info payload is always escaped.
constexpr char kRenderedPayload[] = "muserve::server::LogEvent";

std::string_view LevelName(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "off";
  }
}

// RFC 3339, UTC, milliseconds: 2024-05-01T12:00:00.123Z.
void AppendTimestamp(spdlog::log_clock::time_point time, std::string& out) {
  const auto since_epoch = time.time_since_epoch();
  const auto seconds = std::chrono::floor<std::chrono::seconds>(since_epoch);
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds);
  const std::time_t time_t_seconds = static_cast<std::time_t>(seconds.count());
  std::tm utc{};
  gmtime_r(&time_t_seconds, &utc);
  fmt::format_to(std::back_inserter(out), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                 utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                 utc.tm_sec, static_cast<int>(millis.count()));
}

class LineFormatter final : public spdlog::formatter {
 public:
  explicit LineFormatter(LogFormat format) : format_(format) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    const bool rendered = msg.source.funcname == kRenderedPayload;
    std::string line;
    line.reserve(payload.size() + 64);
    if (format_ == LogFormat::kJson) {
      line += "{\"ts\":\"";
      AppendTimestamp(msg.time, line);
      absl::StrAppend(&line, "\",\"level\":\"", AsAbsl(LevelName(msg.level)), "\",");
      if (rendered) {
        line += payload;
      } else {
        line += "\"msg\":";
        AppendJsonString(payload, line);
      }
      line += '}';
    } else {
      AppendTimestamp(msg.time, line);
      absl::StrAppend(&line, " ", AsAbsl(LevelName(msg.level)), " ");
      if (rendered) {
        line += payload;
      } else {
        AppendOneLine(payload, line);
      }
    }
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<LineFormatter>(format_);
  }

 private:
  const LogFormat format_;
};

std::optional<spdlog::level::level_enum> ParseLevel(std::string_view level) {
  if (level == "trace") return spdlog::level::trace;
  if (level == "debug") return spdlog::level::debug;
  if (level == "info") return spdlog::level::info;
  if (level == "warn") return spdlog::level::warn;
  if (level == "error") return spdlog::level::err;
  if (level == "off") return spdlog::level::off;
  return std::nullopt;
}

std::optional<LogFormat> ParseFormat(std::string_view format) {
  if (format == "text") return LogFormat::kText;
  if (format == "json") return LogFormat::kJson;
  return std::nullopt;
}

std::string FormatDouble(double value) { return fmt::format("{}", value); }

void AppendTextValue(const LogField& field, std::string& out) {
  if (const auto* text = std::get_if<std::string_view>(&field.value)) {
    if (IsBareWord(*text)) {
      out += *text;
    } else {
      AppendJsonString(*text, out);
    }
  } else if (const auto* integer = std::get_if<int64_t>(&field.value)) {
    out += std::to_string(*integer);
  } else if (const auto* real = std::get_if<double>(&field.value)) {
    out += FormatDouble(*real);
  } else {
    out += std::get<bool>(field.value) ? "true" : "false";
  }
}

void AppendJsonValue(const LogField& field, std::string& out) {
  if (const auto* text = std::get_if<std::string_view>(&field.value)) {
    AppendJsonString(*text, out);
  } else if (const auto* integer = std::get_if<int64_t>(&field.value)) {
    out += std::to_string(*integer);
  } else if (const auto* real = std::get_if<double>(&field.value)) {
    out += std::isfinite(*real) ? FormatDouble(*real) : "null";
  } else {
    out += std::get<bool>(field.value) ? "true" : "false";
  }
}

std::string RenderPayload(LogFormat format, std::string_view message,
                          std::span<const LogField> fields) {
  std::string payload;
  if (format == LogFormat::kJson) {
    payload += "\"msg\":";
    AppendJsonString(message, payload);
    for (const LogField& field : fields) {
      payload += ',';
      AppendJsonString(field.key, payload);
      payload += ':';
      AppendJsonValue(field, payload);
    }
  } else {
    AppendOneLine(message, payload);
    for (const LogField& field : fields) {
      payload += ' ';
      AppendOneLine(field.key, payload);
      payload += '=';
      AppendTextValue(field, payload);
    }
  }
  return payload;
}

double ToMilliseconds(double seconds) { return std::round(seconds * 1e6) / 1e3; }

void LogFields(spdlog::level::level_enum level, std::string_view message,
               std::span<const LogField> fields) {
  spdlog::logger* logger = spdlog::default_logger_raw();
  if (!logger->should_log(level)) return;
  const std::string payload = RenderPayload(g_format.load(), message, fields);
  logger->log(spdlog::source_loc(__FILE__, __LINE__, kRenderedPayload), level,
              spdlog::string_view_t(payload.data(), payload.size()));
}

}  // namespace

namespace {

// Validates the flags, then installs the logger make() builds as the default.
absl::Status Install(std::string_view level, std::string_view format,
                     const std::function<std::shared_ptr<spdlog::logger>()>& make) {
  const std::optional<spdlog::level::level_enum> parsed_level = ParseLevel(level);
  if (!parsed_level.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--log-level: ", CheckLogLevel(level).message()));
  }
  const std::optional<LogFormat> parsed_format = ParseFormat(format);
  if (!parsed_format.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--log-format: ", CheckLogFormat(format).message()));
  }
  std::shared_ptr<spdlog::logger> logger = make();
  logger->set_formatter(std::make_unique<LineFormatter>(*parsed_format));
  logger->set_level(*parsed_level);
  logger->flush_on(spdlog::level::warn);
  g_format.store(*parsed_format);
  spdlog::set_default_logger(std::move(logger));
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckLogLevel(std::string_view level) {
  if (ParseLevel(level).has_value()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("\"", AsAbsl(level), "\" is not one of trace, debug, info, warn, error, off"));
}

absl::Status CheckLogFormat(std::string_view format) {
  if (ParseFormat(format).has_value()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("\"", AsAbsl(format), "\" is not one of text, json"));
}

absl::Status ConfigureLogging(std::string_view level, std::string_view format) {
  // Asynchronous: a request's line may be written from the engine-loop
  // thread (when its client left before the engine finished), and the loop
  // must never wait on a slow stderr. Lines queue for one writer thread; when
  // kQueuedLines are waiting, the oldest are dropped rather than block.
  constexpr size_t kQueuedLines = 8192;
  static std::once_flag pool_once;
  std::call_once(pool_once, [] { spdlog::init_thread_pool(kQueuedLines, 1); });
  return Install(level, format, [] {
    return std::make_shared<spdlog::async_logger>(
        "muserve", std::make_shared<spdlog::sinks::stderr_sink_mt>(), spdlog::thread_pool(),
        spdlog::async_overflow_policy::overrun_oldest);
  });
}

absl::Status ConfigureLogging(std::string_view level, std::string_view format,
                              std::shared_ptr<spdlog::sinks::sink> sink) {
  return Install(level, format,
                 [&sink] { return std::make_shared<spdlog::logger>("muserve", std::move(sink)); });
}

void FlushLogs() {
  std::shared_ptr<spdlog::logger> current = spdlog::default_logger();
  if (current == nullptr) return;
  // An asynchronous logger's flush only queues a request; shutting spdlog's
  // registry down joins the writer thread after it has written every queued
  // line. Anything logged later goes to stderr synchronously.
  auto sync = std::make_shared<spdlog::logger>("muserve",
                                               std::make_shared<spdlog::sinks::stderr_sink_mt>());
  sync->set_formatter(std::make_unique<LineFormatter>(g_format.load()));
  sync->set_level(current->level());
  current.reset();
  spdlog::shutdown();
  spdlog::set_default_logger(std::move(sync));
}

void LogEvent(spdlog::level::level_enum level, std::string_view message,
              std::initializer_list<LogField> fields) {
  LogFields(level, message, std::span<const LogField>(fields.begin(), fields.size()));
}

void LogRequestFinished(const RequestRecord& record) {
  const bool server_fault = record.code == absl::StatusCode::kInternal ||
                            record.code == absl::StatusCode::kUnknown ||
                            record.code == absl::StatusCode::kDataLoss;
  const spdlog::level::level_enum level = server_fault ? spdlog::level::warn : spdlog::level::info;
  if (!spdlog::default_logger_raw()->should_log(level)) return;
  const std::string code = absl::StatusCodeToString(record.code);
  const std::string_view finish_reason =
      record.finish_reason.empty() ? std::string_view("none") : record.finish_reason;
  std::vector<LogField> fields = {
      {"id", std::string_view(record.request_id)},
      {"rpc", std::string_view(record.rpc)},
      {"finish_reason", finish_reason},
      {"code", std::string_view(code)},
      {"prompt_tokens", int64_t{record.prompt_tokens}},
      {"completion_tokens", int64_t{record.completion_tokens}},
      {"cached_prompt_tokens", int64_t{record.cached_prompt_tokens}},
  };
  if (record.time_to_first_token_seconds.has_value()) {
    fields.push_back({"ttft_ms", ToMilliseconds(*record.time_to_first_token_seconds)});
  }
  if (record.queue_seconds.has_value()) {
    fields.push_back({"queue_ms", ToMilliseconds(*record.queue_seconds)});
  }
  fields.push_back({"total_ms", ToMilliseconds(record.e2e_seconds)});
  fields.push_back({"preemptions", int64_t{record.num_preemptions}});
  LogFields(level, "request finished", fields);
}

}  // namespace muserve::server
