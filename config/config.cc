#include "config/config.h"

#include <sched.h>

#include <algorithm>
#include <fstream>
#include <thread>

namespace viscount {
namespace {

// The CPU quota of the container, rounded up, or 0 when there is none. A sidecar usually runs
// with a limit of a core or two on a much larger node, and one event loop per node core would
// spend the quota on contention instead of requests.
uint32_t cgroupCpuQuota() {
  // cgroup v2: "<quota> <period>" or "max <period>".
  if (std::ifstream v2("/sys/fs/cgroup/cpu.max"); v2) {
    std::string quota;
    long long period = 0;
    if (v2 >> quota >> period && quota != "max" && period > 0) {
      const long long q = std::stoll(quota);
      if (q > 0) return static_cast<uint32_t>((q + period - 1) / period);
    }
    return 0;
  }
  std::ifstream quota_file("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
  std::ifstream period_file("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  long long quota = -1;
  long long period = 0;
  if (quota_file >> quota && period_file >> period && quota > 0 && period > 0) {
    return static_cast<uint32_t>((quota + period - 1) / period);
  }
  return 0;
}

uint32_t availableCpus() {
  uint32_t cpus = std::thread::hardware_concurrency();
  // The affinity mask reflects cpusets (taskset, Kubernetes' static CPU manager).
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const auto allowed = static_cast<uint32_t>(CPU_COUNT(&set));
    if (allowed > 0 && (cpus == 0 || allowed < cpus)) cpus = allowed;
  }
  try {
    const uint32_t quota = cgroupCpuQuota();
    if (quota > 0 && (cpus == 0 || quota < cpus)) cpus = quota;
  } catch (const std::exception&) {
    // A malformed cgroup file is not worth failing startup over; the other counts stand.
  }
  return std::clamp<uint32_t>(cpus, 1, kMaxWorkers);
}

}  // namespace

std::string SocketAddress::text() const {
  if (isUnix()) return "unix:" + unix_path;
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::string UpstreamUrl::authority() const {
  if (isUnix()) return "localhost";
  return SocketAddress{host, port}.text();
}

const UpstreamConfig* Config::findUpstream(const std::string& name) const {
  for (const auto& upstream : upstreams) {
    if (upstream.name == name) return &upstream;
  }
  return nullptr;
}

uint32_t Config::effectiveWorkers() const {
  return workers != 0 ? workers : availableCpus();
}

const char* toString(UpstreamScheme scheme) {
  switch (scheme) {
    case UpstreamScheme::kHttp:
      return "http";
    case UpstreamScheme::kH2c:
      return "h2c";
    case UpstreamScheme::kHttps:
      return "https";
  }
  return "unknown";
}

const char* toString(IdFormat format) {
  switch (format) {
    case IdFormat::kUuid4:
      return "uuid4";
    case IdFormat::kUuid7:
      return "uuid7";
  }
  return "unknown";
}

const char* toString(LogFormat format) {
  switch (format) {
    case LogFormat::kJson:
      return "json";
    case LogFormat::kPretty:
      return "pretty";
  }
  return "unknown";
}

const char* toString(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return "trace";
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "unknown";
}

}  // namespace viscount
