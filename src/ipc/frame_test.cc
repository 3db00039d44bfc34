#include "ipc/frame.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace lai::ipc {
namespace {

testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

using HeaderBytes = std::array<std::byte, kFrameHeaderBytes>;

constexpr uint32_t kMax = 1u << 20;

HeaderBytes Encode(const FrameHeader& header) {
  HeaderBytes bytes{};
  EncodeFrameHeader(header, bytes.data());
  return bytes;
}

// Rewrites the check field after a test changed other bytes, so only the intended field is bad.
void Reseal(HeaderBytes& bytes) {
  uint32_t check = FrameCheck(bytes.data());
  std::memcpy(bytes.data() + 12, &check, sizeof(check));
}

// Expects a kProtocol error whose message contains `words`.
void ExpectRejected(const HeaderBytes& bytes, const std::string& words, uint32_t max = kMax) {
  Result<FrameHeader> decoded = DecodeFrameHeader(bytes.data(), max);
  ASSERT_FALSE(decoded.ok()) << "expected an error about " << words;
  EXPECT_EQ(decoded.error().code(), ErrorCode::kProtocol);
  EXPECT_TRUE(Contains(decoded.error().message(), words));
}

TEST(FrameTest, RoundTrip) {
  const FrameHeader headers[] = {
      {.flags = 0, .type = 1, .message_bytes = 0, .request_id = 0},
      {.flags = kFlagMore | kFlagResponse, .type = 2, .message_bytes = 12345, .request_id = 7},
      {.flags = kKnownFlags, .type = 255, .message_bytes = kMax, .request_id = UINT64_MAX},
      {.flags = kFlagNoReply, .type = 16, .message_bytes = 1, .request_id = 1ull << 63},
  };
  for (const FrameHeader& header : headers) {
    HeaderBytes bytes = Encode(header);
    Result<FrameHeader> decoded = DecodeFrameHeader(bytes.data(), kMax);
    ASSERT_TRUE(decoded.ok()) << decoded.error().ToString();
    EXPECT_EQ(decoded->flags, header.flags);
    EXPECT_EQ(decoded->type, header.type);
    EXPECT_EQ(decoded->message_bytes, header.message_bytes);
    EXPECT_EQ(decoded->request_id, header.request_id);
  }
}

TEST(FrameTest, EveryFlagCombinationRoundTrips) {
  for (uint32_t flags = 0; flags <= kKnownFlags; ++flags) {
    HeaderBytes bytes = Encode({.flags = static_cast<uint8_t>(flags), .type = 3});
    Result<FrameHeader> decoded = DecodeFrameHeader(bytes.data(), kMax);
    ASSERT_TRUE(decoded.ok()) << "flags " << flags << ": " << decoded.error().ToString();
    EXPECT_EQ(decoded->flags, flags);
  }
}

// The wire format, byte by byte (docs/protocol.md §5): magic "LAI1", version 1, flags, type u16,
// length u32, check u32, request id u64, all little-endian. The check values were computed
// independently from the algorithm written in docs/protocol.md, not by FrameCheck. Changing the
// encoding breaks every deployed client: these bytes may only change with the protocol version.
void ExpectEncoding(const FrameHeader& header, const std::array<uint8_t, kFrameHeaderBytes>& want) {
  HeaderBytes bytes = Encode(header);
  for (size_t i = 0; i < kFrameHeaderBytes; ++i) {
    EXPECT_EQ(static_cast<uint8_t>(bytes[i]), want[i]) << "byte " << i;
  }
  Result<FrameHeader> decoded =
      DecodeFrameHeader(reinterpret_cast<const std::byte*>(want.data()), UINT32_MAX);
  ASSERT_TRUE(decoded.ok()) << decoded.error().ToString();
  EXPECT_EQ(decoded->flags, header.flags);
  EXPECT_EQ(decoded->type, header.type);
  EXPECT_EQ(decoded->message_bytes, header.message_bytes);
  EXPECT_EQ(decoded->request_id, header.request_id);
}

TEST(FrameTest, GoldenBytes) {
  ExpectEncoding({.flags = kFlagMore | kFlagResponse,
                  .type = 2,
                  .message_bytes = 0x01020304,
                  .request_id = 0x1122334455667788},
                 {
                     0x4c, 0x41, 0x49, 0x31,                          // magic "LAI1"
                     0x01,                                            // version
                     0x03,                                            // flags: more | response
                     0x02, 0x00,                                      // type 2 (echo)
                     0x04, 0x03, 0x02, 0x01,                          // message bytes 0x01020304
                     0xaf, 0x2b, 0x4f, 0x60,                          // check 0x604f2baf
                     0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,  // request id
                 });
  HeaderBytes bytes = Encode(
      {.flags = 3, .type = 2, .message_bytes = 0x01020304, .request_id = 0x1122334455667788});
  EXPECT_EQ(FrameCheck(bytes.data()), 0x604f2bafu);
}

// The worked examples of docs/protocol.md §12.
TEST(FrameTest, GoldenBytesOfTheProtocolDocument) {
  ExpectEncoding({.flags = 0, .type = 2, .message_bytes = 5, .request_id = 1},
                 {0x4c, 0x41, 0x49, 0x31, 0x01, 0x00, 0x02, 0x00, 0x05, 0x00, 0x00, 0x00,
                  0xea, 0x2a, 0x96, 0xf9, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00});
  ExpectEncoding({.flags = kFlagResponse, .type = 2, .message_bytes = 5, .request_id = 1},
                 {0x4c, 0x41, 0x49, 0x31, 0x01, 0x02, 0x02, 0x00, 0x05, 0x00, 0x00, 0x00,
                  0x8e, 0xf8, 0x67, 0x0e, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00});
  ExpectEncoding({.flags = kFlagResponse, .type = 6, .message_bytes = 0, .request_id = 0},
                 {0x4c, 0x41, 0x49, 0x31, 0x01, 0x02, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00,
                  0x64, 0xf2, 0xdd, 0x77, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00});
}

TEST(FrameTest, RejectsBadMagic) {
  HeaderBytes bytes = Encode({.type = 2});
  bytes[3] = std::byte{'2'};
  Reseal(bytes);
  ExpectRejected(bytes, "magic");
}

TEST(FrameTest, RejectsOtherVersions) {
  for (uint8_t version : {0, 2, 255}) {
    HeaderBytes bytes = Encode({.type = 2});
    bytes[4] = std::byte{version};
    Reseal(bytes);
    ExpectRejected(bytes, "version " + std::to_string(version));
  }
}

TEST(FrameTest, RejectsUnknownFlags) {
  for (uint8_t flags : {0x20, 0x40, 0x80, 0xff}) {
    ExpectRejected(Encode({.flags = flags, .type = 2}), "flags");
  }
}

TEST(FrameTest, RejectsTypeOutOfRange) {
  ExpectRejected(Encode({.type = 0}), "type 0");
  ExpectRejected(Encode({.type = 256}), "type 256");
  ExpectRejected(Encode({.type = 65535}), "type 65535");
  EXPECT_TRUE(DecodeFrameHeader(Encode({.type = 255}).data(), kMax).ok());
  EXPECT_TRUE(DecodeFrameHeader(Encode({.type = 1}).data(), kMax).ok());
}

TEST(FrameTest, RejectsLengthOverMaximum) {
  ExpectRejected(Encode({.type = 2, .message_bytes = 101}), "101 bytes exceeds the maximum of 100",
                 100);
  ExpectRejected(Encode({.type = 2, .message_bytes = UINT32_MAX}), "exceeds the maximum",
                 UINT32_MAX - 1);
  EXPECT_TRUE(DecodeFrameHeader(Encode({.type = 2, .message_bytes = 100}).data(), 100).ok());
  EXPECT_TRUE(DecodeFrameHeader(Encode({.type = 2, .message_bytes = 0}).data(), 0).ok());
}

TEST(FrameTest, RejectsCheckMismatch) {
  HeaderBytes bytes = Encode({.type = 2, .message_bytes = 10, .request_id = 99});
  bytes[16] ^= std::byte{0x01};  // Request id 98: every field valid, but the check disagrees.
  ExpectRejected(bytes, "check");

  HeaderBytes bad_check = Encode({.type = 2});
  bad_check[13] ^= std::byte{0x80};
  ExpectRejected(bad_check, "check");
}

TEST(FrameTest, EverySingleBitFlipIsRejected) {
  const HeaderBytes good = Encode(
      {.flags = kFlagResponse, .type = 7, .message_bytes = 1000, .request_id = 0x0123456789abcdef});
  for (size_t i = 0; i < kFrameHeaderBytes; ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      HeaderBytes bytes = good;
      bytes[i] ^= std::byte{static_cast<uint8_t>(1u << bit)};
      Result<FrameHeader> decoded = DecodeFrameHeader(bytes.data(), UINT32_MAX);
      EXPECT_FALSE(decoded.ok()) << "byte " << i << " bit " << bit;
      if (!decoded.ok()) {
        EXPECT_EQ(decoded.error().code(), ErrorCode::kProtocol);
      }
    }
  }
}

// TryDecodeFrameHeader (the receive hot path) must accept exactly what DecodeFrameHeader accepts.
TEST(FrameTest, FastDecodeAgreesWithDecode) {
  const HeaderBytes good = Encode(
      {.flags = kFlagStream, .type = 9, .message_bytes = 4096, .request_id = 0xfeedfacecafebeef});
  std::vector<HeaderBytes> cases = {good};
  for (size_t i = 0; i < kFrameHeaderBytes; ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      HeaderBytes flipped = good;
      flipped[i] ^= std::byte{static_cast<uint8_t>(1u << bit)};
      cases.push_back(flipped);
      Reseal(flipped);  // Field errors alone, with a matching check.
      cases.push_back(flipped);
    }
  }
  for (uint32_t max : {0u, 4095u, 4096u, UINT32_MAX}) {
    for (const HeaderBytes& bytes : cases) {
      Result<FrameHeader> slow = DecodeFrameHeader(bytes.data(), max);
      std::optional<FrameHeader> fast = TryDecodeFrameHeader(bytes.data(), max);
      ASSERT_EQ(fast.has_value(), slow.ok()) << (slow.ok() ? "" : slow.error().message());
      if (fast) {
        EXPECT_EQ(fast->flags, slow->flags);
        EXPECT_EQ(fast->type, slow->type);
        EXPECT_EQ(fast->message_bytes, slow->message_bytes);
        EXPECT_EQ(fast->request_id, slow->request_id);
      }
    }
  }
}

TEST(FrameTest, MessageTypeNames) {
  EXPECT_EQ(MessageTypeName(static_cast<uint16_t>(MessageType::kEcho)), "echo");
  EXPECT_EQ(MessageTypeName(static_cast<uint16_t>(MessageType::kError)), "error");
  EXPECT_EQ(MessageTypeName(static_cast<uint16_t>(MessageType::kShutdown)), "shutdown");
  EXPECT_EQ(MessageTypeName(static_cast<uint16_t>(MessageType::kChecksum)), "checksum");
  EXPECT_EQ(MessageTypeName(0), "");
  EXPECT_EQ(MessageTypeName(200), "");
}

// Little-endian 64-bit words summed with wrap-around; a last partial word counts as if padded
// with zeros, so its bytes keep their place value.
TEST(FrameTest, PayloadChecksumSumsLittleEndianWords) {
  auto sum = [](std::vector<uint8_t> bytes) {
    return PayloadChecksum(std::as_bytes(std::span(bytes)));
  };
  EXPECT_EQ(sum({}), 0u);
  EXPECT_EQ(sum({0x01}), 0x01u);
  EXPECT_EQ(sum({0x01, 0x02, 0x03}), 0x030201u);
  EXPECT_EQ(sum({1, 0, 0, 0, 0, 0, 0, 0, 2}), 3u);
  EXPECT_EQ(sum({0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x80, 5}), 5u);  // 2^63 twice.
  std::vector<uint8_t> ones(1000, 0xff);  // 125 words of 2^64 - 1: -125 modulo 2^64.
  EXPECT_EQ(sum(ones), uint64_t{0} - 125);
}

}  // namespace
}  // namespace lai::ipc
