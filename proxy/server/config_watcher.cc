#include "proxy/server/config_watcher.h"

#include <event2/event.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

namespace viscount {

namespace {

// What replaces or rewrites a file in a directory, and the directory itself going away.
constexpr uint32_t kWatchMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                                IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

}  // namespace

ConfigWatcher::ConfigWatcher(EventLoop& loop, std::string path, std::chrono::milliseconds settle,
                             std::function<void()> on_change)
    : loop_(loop),
      path_(std::filesystem::absolute(path).lexically_normal().string()),
      settle_(settle),
      on_change_(std::move(on_change)),
      settle_timer_(loop.timers(), &ConfigWatcher::onSettled, this) {}

ConfigWatcher::~ConfigWatcher() {
  if (readable_ != nullptr) event_free(readable_);
  if (fd_ >= 0) ::close(fd_);
}

bool ConfigWatcher::start(std::string* error) {
  fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) {
    *error = std::string("inotify: ") + std::strerror(errno);
    return false;
  }
  if (!updateWatches(error)) return false;
  last_content_ = readContent();
  readable_ = event_new(loop_.base(), fd_, EV_READ | EV_PERSIST, &ConfigWatcher::onReadable, this);
  event_add(readable_, nullptr);
  return true;
}

std::vector<std::string> ConfigWatcher::watchedDirectories() const {
  std::vector<std::string> dirs;
  for (const auto& [wd, dir] : watches_)
    dirs.push_back(dir);
  return dirs;
}

bool ConfigWatcher::updateWatches(std::string* error) {
  namespace fs = std::filesystem;
  std::set<std::string> wanted{fs::path(path_).parent_path().string()};
  std::error_code ec;
  const fs::path target = fs::canonical(path_, ec);
  if (!ec) wanted.insert(target.parent_path().string());

  for (auto it = watches_.begin(); it != watches_.end();) {
    if (wanted.erase(it->second) == 0) {
      ::inotify_rm_watch(fd_, it->first);  // may already be gone with its directory
      it = watches_.erase(it);
    } else {
      ++it;
    }
  }
  for (const std::string& dir : wanted) {
    const int wd = ::inotify_add_watch(fd_, dir.c_str(), kWatchMask);
    if (wd < 0) {
      if (error != nullptr) *error = "cannot watch " + dir + ": " + std::strerror(errno);
      return false;
    }
    watches_[wd] = dir;
  }
  return true;
}

std::optional<std::string> ConfigWatcher::readContent() const {
  std::ifstream in(path_, std::ios::binary);
  if (!in) return std::nullopt;
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return std::nullopt;
  return content;
}

void ConfigWatcher::onReadable(int fd, short, void* arg) {
  auto* self = static_cast<ConfigWatcher*>(arg);
  alignas(inotify_event) std::array<char, 4096> buffer;
  bool any = false;
  for (;;) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n <= 0) break;  // EAGAIN: all read
    size_t at = 0;
    while (at + sizeof(inotify_event) <= static_cast<size_t>(n)) {
      inotify_event header;
      std::memcpy(&header, buffer.data() + at, sizeof header);
      if ((header.mask & IN_IGNORED) != 0) self->watches_.erase(header.wd);
      any = true;
      at += sizeof(inotify_event) + header.len;
    }
  }
  // Another event before the timer fires pushes it back: a burst settles as one check.
  if (any) self->settle_timer_.arm(self->settle_);
}

void ConfigWatcher::onSettled(void* arg) {
  auto* self = static_cast<ConfigWatcher*>(arg);
  self->updateWatches(nullptr);  // a directory that vanished is simply no longer watched
  std::optional<std::string> content = self->readContent();
  // A file missing halfway through a replacement is not a change; it counts once it is back.
  if (!content || content == self->last_content_) return;
  self->last_content_ = std::move(content);
  self->on_change_();
}

}  // namespace viscount
