#include "base/result.h"

#include <gtest/gtest.h>

namespace lai {
namespace {

Result<int> ParsePositive(int v) {
  if (v <= 0) return Error(ErrorCode::kInvalidArgument, "parse: not positive");
  return v;
}

Result<int> Doubled(int v) {
  ASSIGN_OR_RETURN(int x, ParsePositive(v));
  return x * 2;
}

Status Check(int v) {
  RETURN_IF_ERROR(ParsePositive(v));
  return OkStatus();
}

TEST(ResultTest, ValueAndErrorPropagate) {
  EXPECT_EQ(*Doubled(4), 8);
  Result<int> bad = Doubled(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().message(), "parse: not positive");
  EXPECT_TRUE(Check(1).ok());
  EXPECT_EQ(Check(0).code(), ErrorCode::kInvalidArgument);
}

TEST(ResultTest, ContextAndErrno) {
  Error e = ErrnoError("open shm 'x'", ENOENT).WithContext("connect");
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_EQ(e.message(), "connect: open shm 'x': No such file or directory");
  EXPECT_EQ(e.ToString(), "not found: connect: open shm 'x': No such file or directory");
}

}  // namespace
}  // namespace lai
