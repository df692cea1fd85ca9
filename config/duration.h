#pragma once

// The two unit-carrying value types of the YAML schema. Durations: "250ms", "15s", "5m", "1h",
// combinations such as "1h30m" and decimals such as "1.5s" as long as they come to whole
// milliseconds; a unit is always required. Sizes: plain integers are bytes; binary units
// "KiB", "MiB", "GiB", "TiB" (also Kubernetes' "Ki", "Mi", ...) and decimal "KB"/"kB", "MB",
// "GB", "TB". The bare "K"/"M"/"G" are rejected because nginx reads them as binary and
// Kubernetes as decimal, so either reading would surprise someone.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"

namespace viscount {

// Large enough to mean "never" for any timeout, small enough that adding it to a clock reading in
// nanoseconds cannot overflow.
constexpr Duration kMaxDuration = std::chrono::hours(10000);

// On failure returns nullopt and, when `error` is given, says why ("missing unit ...").
std::optional<Duration> parseDuration(std::string_view text, std::string* error = nullptr);
std::optional<uint64_t> parseSize(std::string_view text, std::string* error = nullptr);

// A plain decimal integer: no sign, no spaces, no hex, no exponent.
std::optional<uint64_t> parseUnsigned(std::string_view text);

// The largest unit that represents the value exactly: 90000ms -> "90s", 5400000ms -> "90m",
// 0 -> "0s". parseDuration(formatDuration(d)) == d.
std::string formatDuration(Duration duration);
// Binary units when exact (61440 -> "60KiB"), else plain bytes. parseSize(formatSize(n)) == n.
std::string formatSize(uint64_t bytes);

}  // namespace viscount
