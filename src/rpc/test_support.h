// Helpers shared by the rpc tests (test code only): transports that record or forward messages,
// and a latch with a deadline. Thread-safe unless stated.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "rpc/peer.h"

namespace lai::rpc::test_support {

// Upper bound for anything that should happen at once; only reached when a test fails.
inline constexpr std::chrono::milliseconds kWait{5000};

// Counts down to zero; Wait() is bounded by kWait.
class Latch {
 public:
  explicit Latch(int count = 1) : count_(count) {}
  void CountDown() {
    std::lock_guard lock(mutex_);
    if (count_ > 0 && --count_ == 0) changed_.notify_all();
  }
  bool Wait(std::chrono::milliseconds timeout = kWait) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [this] { return count_ == 0; });
  }
  bool is_done() {
    std::lock_guard lock(mutex_);
    return count_ == 0;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int count_;
};

// Keeps every message sent through it.
class RecordingTransport : public Transport {
 public:
  Status Send(std::string_view message) override {
    std::lock_guard lock(mutex_);
    messages_.emplace_back(message);
    changed_.notify_all();
    return OkStatus();
  }
  // The n-th message sent (0-based), waiting for it up to kWait; empty if it never came.
  std::string At(size_t n) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, kWait, [&] { return messages_.size() > n; });
    return messages_.size() > n ? messages_[n] : std::string();
  }
  size_t size() {
    std::lock_guard lock(mutex_);
    return messages_.size();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> messages_;
};

// Delivers messages to another peer from its own reader thread, as a real transport would.
class QueueTransport : public Transport {
 public:
  QueueTransport() : reader_([this] { Run(); }) {}
  ~QueueTransport() override { Stop(); }
  void Connect(Peer& target) {
    std::lock_guard lock(mutex_);
    target_ = &target;
  }
  void Stop() {
    {
      std::lock_guard lock(mutex_);
      is_stopping_ = true;
      changed_.notify_all();
    }
    if (reader_.joinable()) reader_.join();
  }
  Status Send(std::string_view message) override {
    std::lock_guard lock(mutex_);
    if (is_stopping_) return Error(ErrorCode::kUnavailable, "queue transport stopped");
    queue_.emplace_back(message);
    changed_.notify_all();
    return OkStatus();
  }

 private:
  void Run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      changed_.wait(lock, [this] { return is_stopping_ || (!queue_.empty() && target_); });
      if (is_stopping_) return;
      std::string message = std::move(queue_.front());
      queue_.pop_front();
      Peer* target = target_;
      lock.unlock();
      target->OnMessage(message);
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::string> queue_;
  Peer* target_ = nullptr;
  bool is_stopping_ = false;
  std::thread reader_;
};

inline nlohmann::json ParseJson(std::string_view text) {
  return nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
}

}  // namespace lai::rpc::test_support
