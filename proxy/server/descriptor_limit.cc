#include "proxy/server/descriptor_limit.h"

#include <sys/resource.h>

#include "telemetry/event_log.h"

namespace viscount {

uint64_t descriptorsNeeded(const Config& config) {
  const uint64_t workers = config.effectiveWorkers();
  // Per worker: its listening sockets, event loop, wake-up and io_uring descriptors; then the
  // process's own (admin, logs, config watch, TLS files being read).
  uint64_t needed = 64 + workers * (8 + config.listeners.size());
  for (const ListenerConfig& l : config.listeners)
    needed += l.limits.max_connections;
  for (const UpstreamConfig& u : config.upstreams)
    needed += uint64_t{u.pool.size} + u.pool.max_overflow;
  return needed;
}

DescriptorBudget raiseDescriptorLimit(const Config& config, EventLog& events) {
  DescriptorBudget budget;
  budget.needed = descriptorsNeeded(config);
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return budget;
  budget.soft_before = limit.rlim_cur;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  budget.limit = limit.rlim_cur;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < budget.needed) {
    events.log(LogLevel::kWarn, "fd_limit_low",
               {{"limit", budget.limit},
                {"hard_limit", static_cast<uint64_t>(limit.rlim_max)},
                {"needed", budget.needed},
                {"hint",
                 "lower listeners[].limits.max_connections or raise the nofile limit; "
                 "accepting pauses while descriptors run out"}});
  }
  return budget;
}

}  // namespace viscount
