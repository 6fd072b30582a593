// A minimal HTTP/1.0 GET over a POSIX socket, for tests that read a running
// server's /metrics endpoint the way Prometheus does.
#pragma once

#include <optional>
#include <string>

namespace muserve::testing {

// The whole response (status line, headers, body) to GET
// http://127.0.0.1:port/path, or nullopt when the connection fails.
std::optional<std::string> HttpGetResponse(int port, const std::string& path);

// The response body, or nullopt when the connection fails or the status is
// not 200.
std::optional<std::string> HttpGet(int port, const std::string& path);

// The value of an unlabelled sample `name` in Prometheus text format, or
// nullopt when absent.
std::optional<double> PrometheusValue(const std::string& exposition, const std::string& name);

}  // namespace muserve::testing
