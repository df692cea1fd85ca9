#pragma once

// Notices that the config file changed, with inotify on the main loop: nothing polls the disk and
// the workers never see it. Editors and Kubernetes replace a file rather than write it in place (a
// ConfigMap volume swaps its `..data` symlink in one rename), so the watch is on the directory
// holding the path, and also on the directory of the file it resolves to when it is a symlink.
// Events are coalesced for `settle`, then the file's bytes are compared with the last ones seen:
// unrelated files in the directory and rewrites with the same content do not count as a change.

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "proxy/net/event_loop.h"
#include "proxy/net/timer_queue.h"

struct event;

namespace viscount {

class ConfigWatcher {
 public:
  // `on_change` runs on the loop's thread once the content differs from the last seen.
  ConfigWatcher(EventLoop& loop, std::string path, std::chrono::milliseconds settle,
                std::function<void()> on_change);
  ConfigWatcher(const ConfigWatcher&) = delete;
  ConfigWatcher& operator=(const ConfigWatcher&) = delete;
  ~ConfigWatcher();

  // Reads the current content as the baseline and starts watching; false with `error` when
  // inotify is unavailable or the directory cannot be watched.
  bool start(std::string* error);
  // The directories watched now (for the event log and tests).
  std::vector<std::string> watchedDirectories() const;

 private:
  static void onReadable(int fd, short, void* arg);
  static void onSettled(void* arg);
  // Watches the directories the path involves now; a ConfigMap swap changes the symlink's target.
  bool updateWatches(std::string* error);
  std::optional<std::string> readContent() const;

  EventLoop& loop_;
  const std::string path_;
  const std::chrono::milliseconds settle_;
  std::function<void()> on_change_;
  int fd_ = -1;
  event* readable_ = nullptr;
  Timer settle_timer_;
  std::map<int, std::string> watches_;  // watch descriptor -> directory
  std::optional<std::string> last_content_;
};

}  // namespace viscount
