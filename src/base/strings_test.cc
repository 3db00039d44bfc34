#include "base/strings.h"

#include <gtest/gtest.h>

namespace lai {
namespace {

TEST(VisibleTest, ControlCharactersAreShownNotObeyed) {
  EXPECT_EQ(Visible("plain text, ünïcode\n\tindented"), "plain text, ünïcode\n\tindented");
  EXPECT_EQ(Visible("rm -rf x #\r\033[2K\033[1Gls -la"), "rm -rf x #^M^[[2K^[[1Gls -la");
  EXPECT_EQ(Visible("\033]0;title\a"), "^[]0;title^G");
  EXPECT_EQ(Visible(std::string_view("a\0b\x7f", 4)), "a^@b^?");
  EXPECT_EQ(Visible("\xc2\x9b"
                    "31m"),
            "\\u009b31m");                     // CSI as a UTF-8 C1 control.
  EXPECT_EQ(Visible("\xc2\xa0"), "\xc2\xa0");  // A no-break space is text.
  EXPECT_EQ(Visible(""), "");
}

}  // namespace
}  // namespace lai
