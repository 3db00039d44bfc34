#include "base/json_text.h"

#include <gtest/gtest.h>

#include <string>

namespace lai {
namespace {

std::string Escaped(std::string_view text) {
  std::string out = "x";  // Appends: what was there stays.
  AppendJsonEscaped(out, text);
  return out;
}

TEST(JsonTextTest, EscapesQuotesBackslashesAndControlBytesOnly) {
  EXPECT_EQ(Escaped(""), "x\"\"");
  EXPECT_EQ(Escaped("plain text, longer than eight bytes"),
            "x\"plain text, longer than eight bytes\"");
  EXPECT_EQ(Escaped("a\"b\\c\nd\re\tf\bg\fh\x01i\x1f"),
            "x\"a\\\"b\\\\c\\nd\\re\\tf\\bg\\fh\\u0001i\\u001f\"");
  // An escape at every offset of an eight-byte step, and bytes from 0x7f up copied as they are.
  for (size_t at = 0; at < 17; ++at) {
    std::string text(17, 'a');
    text[at] = '"';
    std::string expected = "x\"" + std::string(at, 'a') + "\\\"" + std::string(16 - at, 'a') + "\"";
    EXPECT_EQ(Escaped(text), expected) << at;
  }
  EXPECT_EQ(Escaped("\x7f\xc3\xa9"), "x\"\x7f\xc3\xa9\"");
}

// A cost summed from prices carries float noise; what a client reads is the number meant.
TEST(RoundForJsonTest, DropsFloatNoiseAndKeepsTwelveDigits) {
  double noisy = 0.0003 * 2.5 + 0.000175;  // 0.0009249999999999999 as summed.
  EXPECT_EQ(RoundForJson(noisy), 0.000925);
  EXPECT_EQ(RoundForJson(0.0), 0.0);
  EXPECT_EQ(RoundForJson(1.5), 1.5);
  EXPECT_EQ(RoundForJson(123.456789012345), 123.456789012);
}

}  // namespace
}  // namespace lai
