// Context isolation under concurrency: hundreds of requests with distinct ids in flight at once
// over many client connections, both workers and many pooled upstream connections. Every id must
// stay with its own request: in what the upstream saw, in the response and in the access log.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/integration/http_client.h"
#include "tests/integration/proxy_under_test.h"
#include "tests/integration/test_upstream.h"

namespace viscount::test {
namespace {

using nlohmann::json;

constexpr int kClients = 64;
constexpr int kRequestsPerClient = 8;
constexpr size_t kTotal = static_cast<size_t>(kClients) * kRequestsPerClient;

// The echo handler with a small random delay, so that requests overlap and finish out of order.
UpstreamReply slowEcho(const ReceivedRequest& request) {
  thread_local std::mt19937 rng(std::random_device{}());
  UpstreamReply r = TestUpstream::echoContext(request);
  r.delay = std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 4)(rng));
  return r;
}

struct Outcome {
  // What the client sent (empty request_id: none, the proxy generates one).
  std::string sent_request_id;
  std::string sent_user_id;
  std::string sent_trace_id;
  std::string path;
  // What came back.
  bool answered = false;
  int status = 0;
  size_t response_id_count = 0;
  std::string response_request_id;
  std::string response_correlation_id;
  json seen;  // the upstream's echo body
};

// Releases all client threads at once.
class StartLine {
 public:
  void wait() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return open_; });
  }
  void open() {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

std::string traceIdFor(int client, int i) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016x%016x", 0xabc00000u + static_cast<unsigned>(client),
                0xdef00000u + static_cast<unsigned>(i));
  return buf;
}

// Runs kClients threads. Even clients keep one connection alive for all their requests; odd
// ones open a connection per request, so both connection reuse and fresh accepts are covered.
std::vector<Outcome> runClients(uint16_t port, bool send_ids) {
  std::vector<Outcome> outcomes(kTotal);
  StartLine start;
  std::vector<std::thread> threads;
  for (int client = 0; client < kClients; ++client) {
    threads.emplace_back([&, client] {
      start.wait();
      std::unique_ptr<RawConnection> keep;
      for (int i = 0; i < kRequestsPerClient; ++i) {
        Outcome& o = outcomes[static_cast<size_t>(client * kRequestsPerClient + i)];
        const std::string tag = std::to_string(client) + "-" + std::to_string(i);
        o.path = "/iso/" + std::to_string(client) + "/" + std::to_string(i) + "?tag=" + tag;
        o.sent_user_id = "user-" + tag + "@example.com";
        o.sent_trace_id = traceIdFor(client, i);
        Headers headers = {{"x-user-id", o.sent_user_id},
                           {"traceparent", "00-" + o.sent_trace_id + "-00f067aa0ba902b7-01"}};
        if (send_ids) {
          o.sent_request_id = "rid-" + tag + "-" + std::to_string(port);
          headers.emplace_back("x-request-id", o.sent_request_id);
        }
        std::unique_ptr<RawConnection> fresh;
        RawConnection* c = nullptr;
        try {
          if (client % 2 == 0) {
            if (!keep) keep = std::make_unique<RawConnection>(port);
            c = keep.get();
          } else {
            fresh = std::make_unique<RawConnection>(port);
            c = fresh.get();
          }
        } catch (const std::exception&) {
          continue;  // counted as unanswered
        }
        if (!c->send(buildRequest("GET", o.path, headers))) continue;
        auto r = c->readResponse();
        if (!r) continue;
        o.answered = true;
        o.status = r->status;
        o.response_id_count = r->count("x-request-id");
        o.response_request_id = r->header("x-request-id");
        o.response_correlation_id = r->header("x-correlation-id");
        try {
          o.seen = json::parse(r->body);
        } catch (const std::exception&) {
          o.seen = json::object();
        }
      }
    });
  }
  start.open();
  for (auto& t : threads)
    t.join();
  return outcomes;
}

// Collects mismatch descriptions; reports how many and the first few.
class Mismatches {
 public:
  void add(const std::string& what) {
    if (notes_.size() < 12) notes_.push_back(what);
    ++count_;
  }
  size_t count() const { return count_; }
  std::string report() const {
    std::ostringstream out;
    out << count_ << " mismatches out of " << kTotal << " requests";
    for (const auto& n : notes_)
      out << "\n  " << n;
    return out.str();
  }

 private:
  size_t count_ = 0;
  std::vector<std::string> notes_;
};

// Checks one outcome against what the upstream saw and what the access log recorded. `id` is
// the request id the request must carry everywhere.
void checkOutcome(const Outcome& o, const std::string& id,
                  const std::map<std::string, std::vector<json>>& log_by_id, Mismatches& bad) {
  const std::string where = o.path + " (id " + id + ")";
  if (!o.answered) return bad.add(where + ": no response");
  if (o.status != 200) return bad.add(where + ": status " + std::to_string(o.status));
  if (o.response_id_count != 1) {
    bad.add(where + ": " + std::to_string(o.response_id_count) + " x-request-id in response");
  }
  if (o.response_request_id != id) {
    bad.add(where + ": response header says " + o.response_request_id);
  }
  if (o.seen.value("request_id", "") != id) {
    bad.add(where + ": upstream saw request id " + o.seen.value("request_id", "?"));
  }
  if (o.seen.value("request_id_count", 0) != 1) bad.add(where + ": upstream saw id count != 1");
  if (o.seen.value("target", "") != o.path) {
    bad.add(where + ": upstream saw target " + o.seen.value("target", "?"));
  }
  if (o.seen.value("user_id", "") != o.sent_user_id) {
    bad.add(where + ": upstream saw user " + o.seen.value("user_id", "?"));
  }
  if (o.seen.value("correlation_id", "") != o.response_correlation_id) {
    bad.add(where + ": correlation id differs between upstream and response");
  }
  const std::string tp = o.seen.value("traceparent", "");
  if (tp.size() != 55 || tp.substr(3, 32) != o.sent_trace_id) {
    bad.add(where + ": upstream saw traceparent " + tp);
  }
  auto it = log_by_id.find(id);
  if (it == log_by_id.end()) return bad.add(where + ": no access log line");
  if (it->second.size() != 1) {
    return bad.add(where + ": " + std::to_string(it->second.size()) + " access log lines");
  }
  const json& line = it->second[0];
  if (line.value("path", "") != o.path) bad.add(where + ": logged path " + line.value("path", ""));
  if (!line["user_id"].is_string() || line["user_id"] != o.sent_user_id) {
    bad.add(where + ": logged user " + line["user_id"].dump());
  }
  if (line.value("correlation_id", "") != o.response_correlation_id) {
    bad.add(where + ": logged correlation id " + line.value("correlation_id", ""));
  }
  if (line.value("trace_id", "") != o.sent_trace_id) {
    bad.add(where + ": logged trace id " + line["trace_id"].dump());
  }
  if (line.value("status", 0) != 200) bad.add(where + ": logged status " + line["status"].dump());
}

std::map<std::string, std::vector<json>> logById(const std::vector<json>& lines) {
  std::map<std::string, std::vector<json>> by_id;
  for (const auto& l : lines)
    by_id[l.value("request_id", "")].push_back(l);
  return by_id;
}

TEST(Isolation, ClientSuppliedIdsNeverCross) {
  TestUpstream upstream(&slowEcho);
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  const auto outcomes = runClients(proxy.port(), /*send_ids=*/true);

  auto lines = proxy.accessLog(kTotal, std::chrono::seconds(10));
  EXPECT_EQ(lines.size(), kTotal) << "access log lines for " << kTotal << " requests";
  const auto by_id = logById(lines);

  Mismatches bad;
  for (const Outcome& o : outcomes)
    checkOutcome(o, o.sent_request_id, by_id, bad);
  EXPECT_EQ(bad.count(), 0u) << bad.report();
  EXPECT_EQ(upstream.requestCount(), kTotal);
  // The point of the exercise: requests really were spread over several upstream connections.
  EXPECT_GT(upstream.connectionsAccepted(), 1);
}

TEST(Isolation, GeneratedIdsAreUniqueAndConsistent) {
  TestUpstream upstream(&slowEcho);
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  const auto outcomes = runClients(proxy.port(), /*send_ids=*/false);

  auto lines = proxy.accessLog(kTotal, std::chrono::seconds(10));
  EXPECT_EQ(lines.size(), kTotal) << "access log lines for " << kTotal << " requests";
  const auto by_id = logById(lines);

  Mismatches bad;
  std::set<std::string> request_ids;
  std::set<std::string> correlation_ids;
  for (const Outcome& o : outcomes) {
    // The generated id is whatever the response says; everything else must agree with it.
    checkOutcome(o, o.response_request_id, by_id, bad);
    if (o.answered && o.status == 200) {
      request_ids.insert(o.response_request_id);
      correlation_ids.insert(o.response_correlation_id);
    }
  }
  EXPECT_EQ(bad.count(), 0u) << bad.report();
  EXPECT_EQ(request_ids.size(), kTotal) << "distinct generated request ids";
  EXPECT_EQ(correlation_ids.size(), kTotal) << "distinct generated correlation ids";
  size_t shared = 0;
  for (const auto& id : request_ids)
    shared += correlation_ids.count(id);
  EXPECT_EQ(shared, 0u) << "generated ids used both as request and correlation id";
  EXPECT_EQ(by_id.size(), kTotal) << "distinct request ids in the access log";
}

}  // namespace
}  // namespace viscount::test
