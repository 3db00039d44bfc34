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
  // Bidirectional overrides reorder what follows on the screen; right-to-left text is text.
  EXPECT_EQ(Visible("RTL\xe2\x80\xae"
                    "evil\xe2\x81\xa9"),
            "RTL\\u202eevil\\u2069");
  EXPECT_EQ(Visible("\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d \xe2\x80\x94"),
            "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d \xe2\x80\x94");
  EXPECT_EQ(Visible(""), "");
}

}  // namespace
TEST(ValidUtf8Test, ReplacesEachBadByteAndKeepsValidText) {
  EXPECT_EQ(ValidUtf8("plain ascii"), "plain ascii");
  EXPECT_EQ(ValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  const std::string bad = "\xef\xbf\xbd";
  EXPECT_EQ(ValidUtf8("bad \xff\xfe title"), "bad " + bad + bad + " title");  // Latin-1 bytes.
  EXPECT_EQ(ValidUtf8("\x80x"), bad + "x");                                   // Stray continuation.
  EXPECT_EQ(ValidUtf8("\xc0\xaf"), bad + bad);                                // Overlong '/'.
  EXPECT_EQ(ValidUtf8("\xed\xa0\x80"), bad + bad + bad);                      // A surrogate.
  EXPECT_EQ(ValidUtf8("\xf4\x90\x80\x80"), bad + bad + bad + bad);            // Past U+10FFFF.
  EXPECT_EQ(ValidUtf8("end \xe2\x82"), "end " + bad + bad);                   // Cut off.
}

TEST(Utf8CutPositionTest, NeverSplitsACharacter) {
  const std::string text =
      "ab\xe6\x97\xa5"
      "c";  // "ab日c": the kanji is bytes 2 to 4.
  EXPECT_EQ(Utf8CutPosition(text, 2), 2u);
  EXPECT_EQ(Utf8CutPosition(text, 3), 2u);
  EXPECT_EQ(Utf8CutPosition(text, 4), 2u);
  EXPECT_EQ(Utf8CutPosition(text, 5), 5u);
  EXPECT_EQ(Utf8CutPosition(text, 6), 6u);
  EXPECT_EQ(Utf8CutPosition(text, 100), 6u);
  EXPECT_EQ(Utf8CutPosition("\x80\x80", 1), 0u);  // Nothing but continuation bytes.
}

TEST(DisplayWidthTest, WideCharactersTakeTwoColumnsAndMarksNone) {
  EXPECT_EQ(DisplayWidth("abc"), 3u);
  EXPECT_EQ(DisplayWidth("\xe6\x97\xa5\xe6\x9c\xac"), 4u);  // 日本
  EXPECT_EQ(DisplayWidth("\xf0\x9f\x98\x80"), 2u);          // 😀
  EXPECT_EQ(DisplayWidth("\xf0\x9f\x9a\x80"), 2u);          // 🚀 (transport symbols)
  EXPECT_EQ(DisplayWidth("\xe2\x9c\x85\xe2\x9a\xa1"), 4u);  // ✅⚡ (below U+10000)
  EXPECT_EQ(DisplayWidth("\xe2\x9c\x93"), 1u);              // ✓ is narrow.
  EXPECT_EQ(DisplayWidth("e\xcc\x81"), 1u);                 // e + combining acute
  EXPECT_EQ(DisplayWidth("\xff"), 1u);                      // A bad byte.
  EXPECT_EQ(CutToWidth("abcdef", 6), "abcdef");
  EXPECT_EQ(CutToWidth("abcdef", 4), "abc…");
  // 日本語 is 6 columns: in 4, one character and the ellipsis (a second would need 5).
  EXPECT_EQ(CutToWidth("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 4), "\xe6\x97\xa5…");
  EXPECT_EQ(CutToWidth("abc", 0), "");
}

}  // namespace lai
