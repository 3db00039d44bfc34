#include "base/lock_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace lai {
namespace {

class LockFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "lai-lock-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/x.lock";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  bool Exists() const { return ::access(path_.c_str(), F_OK) == 0; }

  std::string dir_;
  std::string path_;
};

// One holder at a time (a second open here counts as another holder, as another process
// would); the file names the holder's pid, is private, and goes away with the lock.
TEST_F(LockFileTest, OneHolderAtATimeAndTheFileLastsAsLongAsTheLock) {
  EXPECT_FALSE(LockFile::IsHeld(path_));
  {
    Result<LockFile> held = LockFile::Take(path_);
    ASSERT_TRUE(held.ok()) << held.error().ToString();
    EXPECT_TRUE(held->is_held());
    EXPECT_TRUE(LockFile::IsHeld(path_));
    EXPECT_EQ(LockFile::HolderOf(path_), std::to_string(::getpid()));
    struct stat info {};
    ASSERT_EQ(::stat(path_.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0600u);
    Result<LockFile> second = LockFile::Take(path_);
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.error().code(), ErrorCode::kUnavailable);
    EXPECT_TRUE(Exists()) << "a refused taker removed the holder's file";
    EXPECT_TRUE(LockFile::IsHeld(path_));
  }
  EXPECT_FALSE(Exists());
  EXPECT_FALSE(LockFile::IsHeld(path_));
  EXPECT_EQ(LockFile::HolderOf(path_), "");
  Result<LockFile> again = LockFile::Take(path_);
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  again->Reset();
  EXPECT_FALSE(again->is_held());
  EXPECT_FALSE(Exists());
}

// Moving keeps one holder; assigning over a held lock releases it (and removes its file).
TEST_F(LockFileTest, MovesKeepTheLockAndAssignmentReleasesTheOldOne) {
  Result<LockFile> first = LockFile::Take(path_);
  ASSERT_TRUE(first.ok());
  LockFile moved = std::move(*first);
  EXPECT_TRUE(moved.is_held());
  EXPECT_TRUE(LockFile::IsHeld(path_));
  Result<LockFile> other = LockFile::Take(dir_ + "/y.lock");
  ASSERT_TRUE(other.ok());
  moved = std::move(*other);
  EXPECT_FALSE(Exists()) << "the lock assigned over was not released";
  EXPECT_TRUE(LockFile::IsHeld(dir_ + "/y.lock"));
}

// A file left by a holder that died (kill -9 leaves it, unlocked) is taken over.
TEST_F(LockFileTest, AFileLeftByADeadHolderIsTakenOver) {
  int fd = ::open(path_.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "999999\n", 7), 7);
  ::close(fd);
  EXPECT_FALSE(LockFile::IsHeld(path_));
  Result<LockFile> held = LockFile::Take(path_);
  ASSERT_TRUE(held.ok()) << held.error().ToString();
  EXPECT_EQ(LockFile::HolderOf(path_), std::to_string(::getpid()));
}

// A link at the path is never followed (it could point at any of the user's files).
TEST_F(LockFileTest, ALinkAtThePathIsRefused) {
  std::string target = dir_ + "/target";
  ASSERT_EQ(::symlink(target.c_str(), path_.c_str()), 0);
  Result<LockFile> held = LockFile::Take(path_);
  ASSERT_FALSE(held.ok());
  EXPECT_NE(::access(target.c_str(), F_OK), 0) << "the link was followed";
}

}  // namespace
}  // namespace lai
