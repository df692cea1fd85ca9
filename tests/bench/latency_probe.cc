// latency_probe: an open-loop HTTP/1.1 load generator for latency at a fixed rate.
//
//   latency_probe PORT RATE [seconds=10] [connections=32] [path=/x] [warmup_seconds=1]
//
// Requests are due at a steady RATE per second whatever the server does; each goes out on an
// idle keep-alive connection to 127.0.0.1:PORT (one request at a time per connection), and its
// latency counts from when it was due, not from when it could be sent, so a server that falls
// behind is charged for the wait (closed-loop tools such as wrk measure only the requests they
// manage to send). It prints one line:
//   rate=R sent=N late_starts=L p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=.. errors=E
// `late_starts` counts requests that waited for a free connection. Responses must carry
// Content-Length (the benchmark upstream's do).

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Connection {
  int fd = -1;
  bool busy = false;
  Clock::time_point due;  // when its request in flight was due
  std::string in;
};

int connectTo(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The length of the first complete response in `in`, or 0 while incomplete; -1 if unusable.
long responseLength(std::string_view in) {
  const size_t head_end = in.find("\r\n\r\n");
  if (head_end == std::string_view::npos) return 0;
  const std::string_view head = in.substr(0, head_end);
  size_t at = 0;
  long body = -1;
  while (at < head.size()) {
    const size_t eol = std::min(head.find("\r\n", at), head.size());
    const std::string_view line = head.substr(at, eol - at);
    constexpr std::string_view kName = "content-length:";
    if (line.size() > kName.size()) {
      bool match = true;
      for (size_t i = 0; i < kName.size() && match; ++i)
        match = std::tolower(static_cast<unsigned char>(line[i])) == kName[i];
      if (match) body = std::strtol(std::string(line.substr(kName.size())).c_str(), nullptr, 10);
    }
    at = eol + 2;
  }
  if (body < 0) return -1;
  const size_t total = head_end + 4 + static_cast<size_t>(body);
  return in.size() >= total ? static_cast<long>(total) : 0;
}

double percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * (sorted.size() - 1) + 0.5));
  return sorted[i];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: latency_probe PORT RATE [seconds=10] [connections=32] [path=/x] "
                 "[warmup_seconds=1]\n");
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const double rate = std::atof(argv[2]);
  const double seconds = argc > 3 ? std::atof(argv[3]) : 10;
  const int nconns = argc > 4 ? std::atoi(argv[4]) : 32;
  const std::string path = argc > 5 ? argv[5] : "/x";
  const double warmup = argc > 6 ? std::atof(argv[6]) : 1;
  if (port <= 0 || rate <= 0 || seconds <= 0 || nconns <= 0) {
    std::fprintf(stderr, "latency_probe: bad arguments\n");
    return 2;
  }
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<Connection> conns(static_cast<size_t>(nconns));
  std::vector<size_t> idle;
  for (size_t i = 0; i < conns.size(); ++i) {
    conns[i].fd = connectTo(port);
    if (conns[i].fd < 0) {
      std::fprintf(stderr, "latency_probe: cannot connect to port %d\n", port);
      return 1;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
    idle.push_back(i);
  }

  const auto interval = std::chrono::duration<double>(1.0 / rate);
  const auto start = Clock::now() + std::chrono::milliseconds(100);  // connects settle
  const auto measure_from = start + std::chrono::duration<double>(warmup);
  const auto stop_sending = measure_from + std::chrono::duration<double>(seconds);
  std::deque<Clock::time_point> waiting;  // due but no idle connection yet
  std::vector<double> latencies;
  latencies.reserve(static_cast<size_t>(rate * seconds * 1.1) + 16);
  uint64_t due_count = 0;
  uint64_t late_starts = 0;
  uint64_t errors = 0;
  size_t in_flight = 0;

  auto send_on = [&](size_t i, Clock::time_point due) {
    Connection& c = conns[i];
    c.busy = true;
    c.due = due;
    ++in_flight;
    if (::send(c.fd, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
      ++errors;
    }
  };

  epoll_event events[64];
  while (true) {
    const auto now = Clock::now();
    // Everything due by now goes out (or waits for a connection).
    while (now < stop_sending) {
      const auto due = start + std::chrono::duration_cast<Clock::duration>(interval * due_count);
      if (due > now) break;
      ++due_count;
      if (!idle.empty()) {
        const size_t i = idle.back();
        idle.pop_back();
        send_on(i, due);
      } else {
        waiting.push_back(due);
        ++late_starts;
      }
    }
    if (now >= stop_sending && in_flight == 0 && waiting.empty()) break;
    if (now >= stop_sending + std::chrono::seconds(10)) {
      std::fprintf(stderr, "latency_probe: %zu responses missing\n", in_flight);
      errors += in_flight;
      break;
    }
    const auto next_due = start + std::chrono::duration_cast<Clock::duration>(interval * due_count);
    timespec timeout{};
    if (next_due > now && now < stop_sending) {
      const auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(next_due - now);
      timeout.tv_sec = static_cast<time_t>(wait.count() / 1000000000);
      timeout.tv_nsec = static_cast<long>(wait.count() % 1000000000);
    } else if (now >= stop_sending) {
      timeout.tv_nsec = 10 * 1000 * 1000;
    }
    const int n = ::epoll_pwait2(ep, events, 64, &timeout, nullptr);
    const auto got_at = Clock::now();
    for (int e = 0; e < n; ++e) {
      const size_t i = events[e].data.u64;
      Connection& c = conns[i];
      char buf[16384];
      while (true) {
        const ssize_t r = ::read(c.fd, buf, sizeof buf);
        if (r > 0) {
          c.in.append(buf, static_cast<size_t>(r));
          continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          std::fprintf(stderr, "latency_probe: connection closed by the server\n");
          return 1;
        }
        if (errno == EAGAIN) break;
      }
      const long length = responseLength(c.in);
      if (length < 0) {
        std::fprintf(stderr, "latency_probe: a response without Content-Length\n");
        return 1;
      }
      if (length == 0 || !c.busy) continue;
      if (c.in.compare(0, 12, "HTTP/1.1 200") != 0) ++errors;
      c.in.erase(0, static_cast<size_t>(length));
      c.busy = false;
      --in_flight;
      if (c.due >= measure_from) {
        latencies.push_back(std::chrono::duration<double, std::micro>(got_at - c.due).count());
      }
      if (!waiting.empty()) {
        const auto due = waiting.front();
        waiting.pop_front();
        send_on(i, due);
      } else {
        idle.push_back(i);
      }
    }
  }
  std::sort(latencies.begin(), latencies.end());
  std::printf(
      "rate=%.0f sent=%zu late_starts=%llu p50_us=%.0f p90_us=%.0f p99_us=%.0f p999_us=%.0f "
      "max_us=%.0f errors=%llu\n",
      rate, latencies.size(), static_cast<unsigned long long>(late_starts),
      percentile(latencies, 0.50), percentile(latencies, 0.90), percentile(latencies, 0.99),
      percentile(latencies, 0.999), latencies.empty() ? 0.0 : latencies.back(),
      static_cast<unsigned long long>(errors));
  for (auto& c : conns)
    ::close(c.fd);
  ::close(ep);
  return errors == 0 ? 0 : 1;
}
