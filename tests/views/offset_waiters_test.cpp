#include "views/offset_waiters.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <thread>

namespace freshet {
namespace {

using std::chrono::steady_clock;

// A wait on `applied` reaching `offset`, whose answer lands in a future.
struct TestWait {
  std::shared_ptr<std::promise<Status>> answer = std::make_shared<std::promise<Status>>();
  std::future<Status> future = answer->get_future();
  std::shared_ptr<std::atomic<int>> answers = std::make_shared<std::atomic<int>>(0);

  OffsetWaiters::Wait Make(const std::atomic<int64_t>& applied, int64_t offset,
                           steady_clock::duration timeout = std::chrono::seconds(30)) {
    OffsetWaiters::Wait w;
    w.reached = [&applied, offset] { return applied.load() > offset; };
    w.done = [answer = answer, answers = answers](const Status& st) {
      if (answers->fetch_add(1) == 0) answer->set_value(st);
    };
    w.deadline = steady_clock::now() + timeout;
    return w;
  }
  bool Answered() { return future.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }
  Status Get() {
    EXPECT_EQ(future.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    return future.get();
  }
};

TEST(OffsetWaiters, AnswersWhenACommitReachesTheOffset) {
  OffsetWaiters waiters(8);
  std::atomic<int64_t> applied{0};
  TestWait wait;
  ASSERT_TRUE(waiters.Add(wait.Make(applied, 5)).ok());
  applied = 3;
  waiters.Notify();
  applied = 6;
  waiters.Notify();
  EXPECT_TRUE(wait.Get().ok());
  EXPECT_EQ(wait.answers->load(), 1);
}

TEST(OffsetWaiters, AlreadyReachedIsAnsweredWithoutANotify) {
  OffsetWaiters waiters(8);
  std::atomic<int64_t> applied{10};
  TestWait wait;
  ASSERT_TRUE(waiters.Add(wait.Make(applied, 5)).ok());
  EXPECT_TRUE(wait.Get().ok());
}

TEST(OffsetWaiters, TimesOutAtTheDeadlineWithoutAnyCommit) {
  OffsetWaiters waiters(8);
  std::atomic<int64_t> applied{0};
  TestWait slow, quick;
  ASSERT_TRUE(waiters.Add(slow.Make(applied, 5, std::chrono::hours(1))).ok());
  auto start = steady_clock::now();
  ASSERT_TRUE(waiters.Add(quick.Make(applied, 5, std::chrono::milliseconds(50))).ok());
  EXPECT_EQ(quick.Get().code(), StatusCode::kTimeout);
  EXPECT_GE(steady_clock::now() - start, std::chrono::milliseconds(50));
  EXPECT_FALSE(slow.Answered());
  // The count drops when the waiters' thread ends its pass, just after it
  // answered the quick one.
  auto until = steady_clock::now() + std::chrono::seconds(5);
  while (waiters.held() != 1u && steady_clock::now() < until) std::this_thread::yield();
  EXPECT_EQ(waiters.held(), 1u);
}

TEST(OffsetWaiters, AdmitRefusalIsTheAnswer) {
  OffsetWaiters waiters(8);
  std::atomic<int64_t> applied{0};
  TestWait wait;
  OffsetWaiters::Wait w = wait.Make(applied, 5);
  w.admit = [] { return Status::InvalidArgument("min_offset: partition 9 does not exist"); };
  ASSERT_TRUE(waiters.Add(std::move(w)).ok());
  Status st = wait.Get();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "min_offset: partition 9 does not exist");
}

TEST(OffsetWaiters, RefusesBeyondCapacity) {
  OffsetWaiters waiters(2);
  std::atomic<int64_t> applied{0};
  TestWait a, b, c;
  ASSERT_TRUE(waiters.Add(a.Make(applied, 5)).ok());
  ASSERT_TRUE(waiters.Add(b.Make(applied, 5)).ok());
  Status refused = waiters.Add(c.Make(applied, 5));
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable);
  EXPECT_FALSE(c.Answered());
  applied = 6;
  waiters.Notify();
  EXPECT_TRUE(a.Get().ok());
  EXPECT_TRUE(b.Get().ok());
}

TEST(OffsetWaiters, StopAnswersEveryWaitOnceAndRefusesNewOnes) {
  std::atomic<int64_t> applied{0};
  TestWait reached, pending, late;
  {
    OffsetWaiters waiters(8);
    ASSERT_TRUE(waiters.Add(pending.Make(applied, 5)).ok());
    ASSERT_TRUE(waiters.Add(reached.Make(applied, 1)).ok());
    applied = 3;  // the last flush before the stop reached one of them
    waiters.Stop();
    EXPECT_EQ(waiters.held(), 0u);
    EXPECT_EQ(waiters.Add(late.Make(applied, 0)).code(), StatusCode::kUnavailable);
  }
  EXPECT_TRUE(reached.Get().ok());
  EXPECT_EQ(pending.Get().code(), StatusCode::kUnavailable);
  EXPECT_EQ(pending.answers->load(), 1);
  EXPECT_FALSE(late.Answered());
}

}  // namespace
}  // namespace freshet
