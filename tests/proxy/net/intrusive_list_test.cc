// IntrusiveList: O(1) push, pop and unlink from anywhere, nodes that leave on destruction, and
// one object in several lists through different tags.

#include "proxy/net/intrusive_list.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace viscount {
namespace {

struct Item : ListHook<> {
  explicit Item(int v) : value(v) {}
  int value;
};

std::vector<int> values(const IntrusiveList<Item>& list) {
  std::vector<int> out;
  for (Item* i = list.front(); i; i = list.next(*i))
    out.push_back(i->value);
  return out;
}

TEST(IntrusiveListTest, StartsEmpty) {
  IntrusiveList<Item> list;
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.size(), 0u);
  EXPECT_EQ(list.front(), nullptr);
  EXPECT_EQ(list.back(), nullptr);
  EXPECT_EQ(list.popFront(), nullptr);
  EXPECT_EQ(list.popBack(), nullptr);
}

TEST(IntrusiveListTest, PushAndPopAtBothEnds) {
  Item a(1), b(2), c(3), d(4);
  IntrusiveList<Item> list;
  list.pushBack(b);
  list.pushBack(c);
  list.pushFront(a);
  list.pushBack(d);
  EXPECT_EQ(values(list), (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(list.size(), 4u);
  EXPECT_EQ(list.front(), &a);
  EXPECT_EQ(list.back(), &d);
  EXPECT_TRUE(a.inList());

  EXPECT_EQ(list.popFront(), &a);
  EXPECT_FALSE(a.inList());
  EXPECT_EQ(list.popBack(), &d);
  EXPECT_FALSE(d.inList());
  EXPECT_EQ(values(list), (std::vector<int>{2, 3}));
}

TEST(IntrusiveListTest, UnlinkFromTheMiddle) {
  Item a(1), b(2), c(3), d(4);
  IntrusiveList<Item> list;
  for (Item* i : {&a, &b, &c, &d})
    list.pushBack(*i);
  c.leaveList();
  EXPECT_FALSE(c.inList());
  EXPECT_EQ(values(list), (std::vector<int>{1, 2, 4}));
  b.leaveList();
  EXPECT_EQ(values(list), (std::vector<int>{1, 4}));
  b.leaveList();  // leaving twice is harmless
  EXPECT_EQ(list.size(), 2u);
  EXPECT_EQ(list.next(b), nullptr) << "an unlinked item has no next";
  EXPECT_EQ(list.next(d), nullptr) << "the last item has no next";
}

TEST(IntrusiveListTest, PushingALinkedItemMovesIt) {
  Item a(1), b(2), c(3);
  IntrusiveList<Item> list;
  for (Item* i : {&a, &b, &c})
    list.pushBack(*i);
  list.pushBack(a);
  EXPECT_EQ(values(list), (std::vector<int>{2, 3, 1}));
  list.pushFront(c);
  EXPECT_EQ(values(list), (std::vector<int>{3, 2, 1}));
  EXPECT_EQ(list.size(), 3u);
}

TEST(IntrusiveListTest, MovingBetweenListsOfTheSameTag) {
  Item a(1), b(2);
  IntrusiveList<Item> idle;
  IntrusiveList<Item> busy;
  idle.pushBack(a);
  idle.pushBack(b);
  busy.pushBack(a);  // joining another list leaves the first
  EXPECT_EQ(values(idle), (std::vector<int>{2}));
  EXPECT_EQ(values(busy), (std::vector<int>{1}));
}

TEST(IntrusiveListTest, ItemLeavesTheListWhenDestroyed) {
  Item a(1), c(3);
  IntrusiveList<Item> list;
  list.pushBack(a);
  {
    Item b(2);
    list.pushBack(b);
    list.pushBack(c);
    EXPECT_EQ(list.size(), 3u);
  }
  EXPECT_EQ(values(list), (std::vector<int>{1, 3}));
  EXPECT_EQ(list.back(), &c);
}

TEST(IntrusiveListTest, DestroyingItemsWhileDraining) {
  IntrusiveList<Item> list;
  std::vector<std::unique_ptr<Item>> owned;
  for (int i = 0; i < 5; ++i) {
    owned.push_back(std::make_unique<Item>(i));
    list.pushBack(*owned.back());
  }
  // Each destructor unlinks, so the list shrinks as the owners go.
  for (size_t i = 0; i < owned.size(); i += 2)
    owned[i].reset();
  EXPECT_EQ(values(list), (std::vector<int>{1, 3}));
  owned.clear();
  EXPECT_TRUE(list.empty());
}

TEST(IntrusiveListTest, DestroyingTheListUnlinksItsItems) {
  Item a(1), b(2);
  {
    IntrusiveList<Item> list;
    list.pushBack(a);
    list.pushBack(b);
  }
  EXPECT_FALSE(a.inList());
  EXPECT_FALSE(b.inList());
  IntrusiveList<Item> again;
  again.pushBack(b);
  EXPECT_EQ(values(again), (std::vector<int>{2}));
}

struct TagA {};
struct TagB {};

struct Both : ListHook<TagA>, ListHook<TagB> {
  explicit Both(int v) : value(v) {}
  bool inA() const { return static_cast<const ListHook<TagA>&>(*this).inList(); }
  bool inB() const { return static_cast<const ListHook<TagB>&>(*this).inList(); }
  int value;
};

template <class Tag>
std::vector<int> valuesOf(const IntrusiveList<Both, Tag>& list) {
  std::vector<int> out;
  for (Both* i = list.front(); i; i = list.next(*i))
    out.push_back(i->value);
  return out;
}

TEST(IntrusiveListTest, OneObjectInTwoListsWithDifferentTags) {
  Both x(1), y(2), z(3);
  IntrusiveList<Both, TagA> a;
  IntrusiveList<Both, TagB> b;
  a.pushBack(x);
  a.pushBack(y);
  a.pushBack(z);
  b.pushBack(z);
  b.pushBack(x);
  EXPECT_EQ(valuesOf(a), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(valuesOf(b), (std::vector<int>{3, 1}));

  static_cast<ListHook<TagA>&>(x).leaveList();
  EXPECT_FALSE(x.inA());
  EXPECT_TRUE(x.inB()) << "leaving one list keeps the other";
  EXPECT_EQ(valuesOf(a), (std::vector<int>{2, 3}));
  EXPECT_EQ(valuesOf(b), (std::vector<int>{3, 1}));

  EXPECT_EQ(b.popFront(), &z);
  EXPECT_TRUE(z.inA());
  EXPECT_FALSE(z.inB());
}

TEST(IntrusiveListTest, ObjectInTwoListsLeavesBothWhenDestroyed) {
  IntrusiveList<Both, TagA> a;
  IntrusiveList<Both, TagB> b;
  Both keep(1);
  a.pushBack(keep);
  {
    Both gone(2);
    a.pushBack(gone);
    b.pushBack(gone);
    b.pushBack(keep);
  }
  EXPECT_EQ(valuesOf(a), (std::vector<int>{1}));
  EXPECT_EQ(valuesOf(b), (std::vector<int>{1}));
}

}  // namespace
}  // namespace viscount
