#include "views/write_pipeline.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace freshet {
namespace {

TEST(WritePipeline, RunsWritesInOrderOnOneThreadBesideTheCaller) {
  WritePipeline pipeline("test-writes");
  std::vector<int> order;
  std::vector<std::thread::id> threads;
  std::vector<std::future<Status>> done;
  for (int i = 0; i < 5; ++i)
    done.push_back(pipeline.Submit([&order, &threads, i] {
      order.push_back(i);
      threads.push_back(std::this_thread::get_id());
      return i == 3 ? Status::Unavailable("store down") : Status::Ok();
    }));
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(done[i].get().code(), i == 3 ? StatusCode::kUnavailable : StatusCode::kOk);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  for (const auto& id : threads) {
    EXPECT_EQ(id, threads[0]);
    EXPECT_NE(id, std::this_thread::get_id());
  }
}

TEST(WritePipeline, DestructorRunsWhatWasSubmitted) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  int ran = 0;
  std::future<Status> last;
  {
    WritePipeline pipeline("test-writes");
    pipeline.Submit([released] {
      released.wait();
      return Status::Ok();
    });
    last = pipeline.Submit([&ran] {
      ++ran;
      return Status::Ok();
    });
    release.set_value();
  }
  EXPECT_EQ(ran, 1);
  EXPECT_TRUE(last.get().ok());
}

}  // namespace
}  // namespace freshet
