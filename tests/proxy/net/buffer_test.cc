// Buffer and BufferCache: contiguous bytes with cheap consume, blocks recycled per worker, and
// offsets relative to data() that survive growth and compaction.

#include "proxy/net/buffer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace viscount {
namespace {

constexpr size_t kBlock = BufferCache::kBlockSize;

std::string pattern(size_t n, size_t seed = 0) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>('a' + (i + seed) % 26);
  return s;
}

TEST(BufferTest, StartsEmptyWithoutMemory) {
  BufferCache cache;
  Buffer b(&cache);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_EQ(b.view(), "");
  b.releaseIfEmpty();
  EXPECT_EQ(cache.cachedBlocks(), 0u);
}

TEST(BufferTest, AppendAndConsume) {
  BufferCache cache;
  Buffer b(&cache);
  b.append("hello");
  b.append(' ');
  b.append(std::string_view("world"));
  const char raw[] = {'!', '?'};
  b.append(raw, sizeof(raw));
  b.append("", 0);
  EXPECT_EQ(b.view(), "hello world!?");
  EXPECT_EQ(b.capacity(), kBlock) << "the first write takes one standard block";

  b.consume(6);
  EXPECT_EQ(b.view(), "world!?");
  EXPECT_EQ(b.size(), 7u);
  b.consume(7);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.capacity(), kBlock) << "consuming keeps the memory until released";

  // A drained buffer starts again at the front of its block.
  b.append("again");
  EXPECT_EQ(b.view(), "again");
  EXPECT_EQ(b.tailroom(), kBlock - 5);
}

TEST(BufferTest, ConsumingMoreThanBufferedEmptiesIt) {
  Buffer b;
  b.append("abc");
  b.consume(10);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.size(), 0u);
}

TEST(BufferTest, ReserveAndCommit) {
  BufferCache cache;
  Buffer b(&cache);
  b.append("head:");
  char* p = b.reserve(100);
  ASSERT_NE(p, nullptr);
  EXPECT_GE(b.tailroom(), 100u);
  EXPECT_EQ(p, b.data() + b.size()) << "reserved room follows the readable bytes";
  std::memcpy(p, "tail", 4);
  EXPECT_EQ(b.view(), "head:") << "reserved bytes are not readable before commit";
  b.commit(4);
  EXPECT_EQ(b.view(), "head:tail");
}

TEST(BufferTest, ClearKeepsTheBlock) {
  BufferCache cache;
  Buffer b(&cache);
  b.append("data");
  b.clear();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.capacity(), kBlock);
  EXPECT_EQ(cache.cachedBlocks(), 0u);
}

TEST(BufferTest, ReleaseReturnsTheBlockToTheCache) {
  BufferCache cache;
  {
    Buffer b(&cache);
    b.append("x");
    b.releaseIfEmpty();
    EXPECT_EQ(b.capacity(), kBlock) << "not empty: nothing released";
    EXPECT_EQ(cache.cachedBlocks(), 0u);
    b.consume(1);
    b.releaseIfEmpty();
    EXPECT_EQ(b.capacity(), 0u);
    EXPECT_EQ(cache.cachedBlocks(), 1u);
  }
  {
    Buffer b(&cache);
    b.append("y");
    EXPECT_EQ(cache.cachedBlocks(), 0u) << "the cached block is taken again";
  }
  EXPECT_EQ(cache.cachedBlocks(), 1u) << "the destructor gives it back";
}

TEST(BufferTest, ReleaseDropsBufferedBytes) {
  BufferCache cache;
  Buffer b(&cache);
  b.append("pending");
  b.release();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_EQ(cache.cachedBlocks(), 1u);
}

TEST(BufferTest, CacheHandsOutTheMostRecentlyReturnedBlock) {
  BufferCache cache;
  char* a = cache.take();
  char* b = cache.take();
  EXPECT_NE(a, b);
  cache.give(a);
  cache.give(b);
  EXPECT_EQ(cache.cachedBlocks(), 2u);
  EXPECT_EQ(cache.take(), b);
  EXPECT_EQ(cache.take(), a);
  EXPECT_EQ(cache.cachedBlocks(), 0u);
  cache.give(a);
  cache.give(b);
}

TEST(BufferTest, CacheKeepsABoundedNumberOfBlocks) {
  BufferCache cache;
  std::vector<char*> blocks;
  for (int i = 0; i < 600; ++i)
    blocks.push_back(cache.take());
  for (char* block : blocks)
    cache.give(block);
  EXPECT_EQ(cache.cachedBlocks(), 512u) << "the rest were freed";
}

TEST(BufferTest, GrowsBeyondOneBlock) {
  BufferCache cache;
  Buffer b(&cache);
  const std::string big = pattern(3 * kBlock + 100);
  b.append(big);
  EXPECT_EQ(b.view(), big);
  EXPECT_EQ(b.capacity(), 4 * kBlock) << "grown by doubling from one block";
  b.release();
  EXPECT_EQ(cache.cachedBlocks(), 0u) << "only standard blocks are cached";
}

TEST(BufferTest, GrowingFromABlockGivesTheBlockBack) {
  BufferCache cache;
  Buffer b(&cache);
  b.append(pattern(kBlock - 10));
  EXPECT_EQ(b.capacity(), kBlock);
  b.append(pattern(100, 7));
  EXPECT_EQ(b.capacity(), 2 * kBlock);
  EXPECT_EQ(cache.cachedBlocks(), 1u) << "the outgrown block went back to the cache";
  EXPECT_EQ(b.view(), pattern(kBlock - 10) + pattern(100, 7));
}

TEST(BufferTest, OffsetsStayValidAcrossGrowth) {
  BufferCache cache;
  Buffer b(&cache);
  b.append("GET /path HTTP/1.1\r\nX-Name: value\r\n");
  const size_t name_off = b.view().find("X-Name");
  const size_t value_off = b.view().find("value");
  const char* before = b.data();
  for (int i = 0; i < 5; ++i)
    b.append(pattern(kBlock, static_cast<size_t>(i)));
  EXPECT_NE(b.data(), before) << "the bytes moved to a larger allocation";
  EXPECT_EQ(std::string_view(b.data() + name_off, 6), "X-Name");
  EXPECT_EQ(std::string_view(b.data() + value_off, 5), "value");
}

TEST(BufferTest, CompactsWhenTheConsumedPrefixMakesRoom) {
  BufferCache cache;
  Buffer b(&cache);
  const std::string first = pattern(16000);
  b.append(first);
  b.consume(15000);  // 1000 bytes left near the end of the block
  const std::string kept = first.substr(15000);
  EXPECT_LT(b.tailroom(), 2000u);
  b.reserve(2000);
  EXPECT_EQ(b.capacity(), kBlock) << "compacted in place, no new allocation";
  EXPECT_GE(b.tailroom(), 2000u);
  EXPECT_EQ(b.view(), kept);
  const std::string more = pattern(2000, 3);
  b.append(more);
  EXPECT_EQ(b.view(), kept + more);
  EXPECT_EQ(cache.cachedBlocks(), 0u);
}

TEST(BufferTest, OffsetsStayValidAcrossCompaction) {
  Buffer b;
  b.append(pattern(15000));
  b.consume(14000);
  b.append("marker");
  const size_t off = b.size() - 6;
  b.append(pattern(3000, 1));  // forces compaction (or growth)
  EXPECT_EQ(std::string_view(b.data() + off, 6), "marker");
}

TEST(BufferTest, GrowsInsteadOfCompactingWhenLittleWasConsumed) {
  BufferCache cache;
  Buffer b(&cache);
  const std::string data = pattern(16000);
  b.append(data);
  b.consume(100);
  b.append(pattern(1000, 5));
  EXPECT_EQ(b.capacity(), 2 * kBlock);
  EXPECT_EQ(b.view(), data.substr(100) + pattern(1000, 5));
}

TEST(BufferTest, WorksWithoutACache) {
  Buffer b;
  b.append("no cache");
  EXPECT_EQ(b.capacity(), kBlock);
  b.append(pattern(2 * kBlock));
  EXPECT_EQ(b.view().substr(0, 8), "no cache");
  b.release();
  EXPECT_EQ(b.capacity(), 0u);
}

TEST(BufferTest, MoveConstructionTakesTheBytes) {
  BufferCache cache;
  Buffer a(&cache);
  a.append("moved bytes");
  a.consume(6);
  Buffer b(std::move(a));
  EXPECT_EQ(b.view(), "bytes");
  EXPECT_EQ(b.capacity(), kBlock);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): moved-from state is specified
  EXPECT_EQ(a.capacity(), 0u);
  b.release();
  EXPECT_EQ(cache.cachedBlocks(), 1u) << "the moved-to buffer kept the cache";
}

TEST(BufferTest, MoveAssignmentReleasesTheOldBlock) {
  BufferCache cache;
  Buffer a(&cache);
  Buffer b(&cache);
  a.append("from a");
  b.append("old b");
  b = std::move(a);
  EXPECT_EQ(b.view(), "from a");
  EXPECT_EQ(cache.cachedBlocks(), 1u) << "b's old block went back to the cache";
  EXPECT_EQ(a.capacity(), 0u);  // NOLINT(bugprone-use-after-move)
  a.append("reusable");
  EXPECT_EQ(a.view(), "reusable");
  EXPECT_EQ(cache.cachedBlocks(), 0u);
}

TEST(BufferTest, SelfMoveAssignmentKeepsTheBytes) {
  Buffer a;
  a.append("self");
  Buffer& alias = a;
  a = std::move(alias);
  EXPECT_EQ(a.view(), "self");
}

}  // namespace
}  // namespace viscount
