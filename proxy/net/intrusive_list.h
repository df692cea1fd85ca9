#pragma once

// A doubly linked list whose nodes live inside the listed objects: O(1) unlink from anywhere, no
// allocation. Used for timers, idle pool connections and per-worker connection sets, where an
// object leaves the list from its own destructor or callback. An object joins a list by deriving
// from ListHook<Tag>; different tags let one object sit in several lists.

#include <cstddef>

namespace viscount {

class ListNode {
 public:
  ListNode() = default;
  ListNode(const ListNode&) = delete;
  ListNode& operator=(const ListNode&) = delete;
  ~ListNode() { unlink(); }

  bool linked() const { return next_ != nullptr; }
  void unlink() {
    if (!next_) return;
    prev_->next_ = next_;
    next_->prev_ = prev_;
    next_ = prev_ = nullptr;
  }

 private:
  template <class T, class Tag>
  friend class IntrusiveList;
  ListNode* prev_ = nullptr;
  ListNode* next_ = nullptr;
};

struct DefaultListTag {};

template <class Tag = DefaultListTag>
class ListHook : public ListNode {
 public:
  bool inList() const { return linked(); }
  void leaveList() { unlink(); }
};

template <class T, class Tag = DefaultListTag>
class IntrusiveList {
  using Hook = ListHook<Tag>;

 public:
  IntrusiveList() { head_.prev_ = head_.next_ = &head_; }
  IntrusiveList(const IntrusiveList&) = delete;
  IntrusiveList& operator=(const IntrusiveList&) = delete;
  ~IntrusiveList() {
    while (!empty())
      head_.next_->unlink();
    head_.prev_ = head_.next_ = nullptr;
  }

  bool empty() const { return head_.next_ == &head_; }
  size_t size() const {
    size_t n = 0;
    for (const ListNode* p = head_.next_; p != &head_; p = p->next_)
      ++n;
    return n;
  }
  T* front() const { return empty() ? nullptr : owner(head_.next_); }
  T* back() const { return empty() ? nullptr : owner(head_.prev_); }
  void pushBack(T& item) { insertBefore(&head_, item); }
  void pushFront(T& item) { insertBefore(head_.next_, item); }
  T* popFront() {
    T* item = front();
    if (item) static_cast<Hook&>(*item).unlink();
    return item;
  }
  T* popBack() {
    T* item = back();
    if (item) static_cast<Hook&>(*item).unlink();
    return item;
  }
  T* next(const T& item) const {
    const ListNode* n = static_cast<const Hook&>(item).next_;
    return (n == nullptr || n == &head_) ? nullptr : owner(n);
  }

 private:
  static T* owner(const ListNode* node) {
    return static_cast<T*>(static_cast<Hook*>(const_cast<ListNode*>(node)));
  }
  void insertBefore(ListNode* pos, T& item) {
    ListNode& n = static_cast<Hook&>(item);
    n.unlink();
    n.next_ = pos;
    n.prev_ = pos->prev_;
    pos->prev_->next_ = &n;
    pos->prev_ = &n;
  }

  ListNode head_;
};

}  // namespace viscount
