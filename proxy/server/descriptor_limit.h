#pragma once

// Descriptors are the first thing a busy proxy runs out of: every client connection holds one,
// and so does every upstream connection. At start the soft RLIMIT_NOFILE is raised to the hard
// limit (the default soft limit is often 1024 whatever the hard one), and one warning says so
// when the configured connection limits still cannot all be open at once.

#include "config/config.h"

namespace viscount {

class EventLog;

struct DescriptorBudget {
  uint64_t soft_before = 0;  // the soft limit found at start
  uint64_t limit = 0;        // the soft limit now
  uint64_t needed = 0;       // what the config may open at once, with a reserve for the rest
};

// Descriptors the config may hold at once: every listener's max_connections, every upstream's
// pool size + max_overflow, and a reserve for listening sockets, the loops and the logs.
uint64_t descriptorsNeeded(const Config& config);

// Raises the soft limit as far as the hard limit allows and logs `fd_limit_low` (warn) when it
// is still below descriptorsNeeded().
DescriptorBudget raiseDescriptorLimit(const Config& config, EventLog& events);

}  // namespace viscount
