#include "workspace/text.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <thread>
#include <vector>

#include "workspace/test_support.h"

namespace lai::workspace {
namespace {

using testing::TempTree;

TEST(LooksBinaryTest, NulAndControlBytesAreBinary) {
  EXPECT_TRUE(LooksBinary(std::string_view("abc\0def", 7)));
  EXPECT_TRUE(LooksBinary("\x89PNG\r\n\x1a\n\x01\x02\x03\x04\x05\x06\x07\x0e\x0f\x10"));
  std::string noise;
  for (int i = 0; i < 1000; ++i) noise.push_back(static_cast<char>(0x80 + (i * 37) % 128));
  EXPECT_TRUE(LooksBinary(noise));
}

TEST(LooksBinaryTest, TextInAnyScriptIsText) {
  EXPECT_FALSE(LooksBinary(""));
  EXPECT_FALSE(LooksBinary("int main() {\r\n\treturn 0;\r\n}\n"));
  EXPECT_FALSE(LooksBinary("Привет, мир! 你好，世界！ こんにちは 🎉 مرحبا\n"));
  EXPECT_FALSE(LooksBinary("\x1b[31mred\x1b[0m\n"));                // ANSI colours.
  EXPECT_FALSE(LooksBinary("caf\xe9 cr\xe8me br\xfbl\xe9\xe9\n"));  // Latin-1 text.
  // A multi-byte character cut by the 8 KiB window does not count against the text.
  std::string long_text(8191, 'a');
  long_text += "\xe4\xbd\xa0";
  EXPECT_FALSE(LooksBinary(long_text));
}

TEST(DecodeTextTest, CrlfAndBomRoundTrip) {
  std::string bytes = "\xEF\xBB\xBFline one\r\nline two\r\n";
  TextFile file = DecodeText(bytes);
  EXPECT_TRUE(file.has_bom);
  EXPECT_EQ(file.line_ending, LineEnding::kCrlf);
  EXPECT_EQ(file.text, "line one\nline two\n");
  EXPECT_EQ(EncodeText(file), bytes);
}

TEST(DecodeTextTest, LfStaysLfAndLoneCrIsKept) {
  TextFile file = DecodeText("a\nb\rc\n");
  EXPECT_FALSE(file.has_bom);
  EXPECT_EQ(file.line_ending, LineEnding::kLf);
  EXPECT_EQ(file.text, "a\nb\rc\n");
  EXPECT_EQ(EncodeText(file), "a\nb\rc\n");
}

TEST(DecodeTextTest, CarriageReturnsAtTheEdges) {
  TextFile file = DecodeText("\r\r\nx\r\ny\r");
  EXPECT_EQ(file.text, "\r\nx\ny\r");
  EXPECT_EQ(file.line_ending, LineEnding::kCrlf);
  EXPECT_EQ(EncodeText(file), "\r\r\nx\r\ny\r");
  EXPECT_EQ(EncodeText("p\nq", file), "p\r\nq");
  EXPECT_EQ(DecodeText("").text, "");
  EXPECT_EQ(DecodeText("\r").text, "\r");
}

TEST(DecodeTextTest, MixedEndingsTakeTheDominantOne) {
  TextFile file = DecodeText("a\r\nb\r\nc\nd\r\n");
  EXPECT_EQ(file.line_ending, LineEnding::kCrlf);
  EXPECT_EQ(file.text, "a\nb\nc\nd\n");
  EXPECT_EQ(EncodeText(file), "a\r\nb\r\nc\r\nd\r\n");
  EXPECT_EQ(DecodeText("a\r\nb\nc\n").line_ending, LineEnding::kLf);
  EXPECT_EQ(DecodeText("a\r\nb\n").line_ending, LineEnding::kLf);  // A tie goes to LF.
}

// A Latin-1 / Windows-1252 file reads as its characters and is written back in its own bytes:
// an edit keeps every other byte (it wrote U+FFFD over every accented letter).
TEST(DecodeTextTest, WindowsCodePageFilesRoundTrip) {
  const std::string bytes = "caf\xE9 = 1\r\nname = Jos\xE9 \x93q\x94 \x80\x81\r\n";
  TextFile file = DecodeText(bytes);
  EXPECT_TRUE(file.is_windows_1252);
  EXPECT_EQ(file.text, "café = 1\nname = José \u201cq\u201d \u20ac\u0081\n");
  EXPECT_EQ(EncodeText(file), bytes);
  EXPECT_EQ(FirstUnencodable(file.text, file), std::nullopt);
  std::string edited = "café = 2\nname = José \u201cq\u201d \u20ac\u0081\n";
  EXPECT_EQ(EncodeText(edited, file), "caf\xE9 = 2\r\nname = Jos\xE9 \x93q\x94 \x80\x81\r\n");
  EXPECT_EQ(FirstUnencodable("ok \u4e2d x", file), 3u);
  EXPECT_EQ(FirstUnencodable("ok \U0001F600", file), 3u);
  EXPECT_FALSE(DecodeText("caf\xC3\xA9\n").is_windows_1252);  // UTF-8.
  // UTF-8 with a stray byte stays UTF-8: its characters are not turned into mojibake.
  TextFile stray = DecodeText("caf\xC3\xA9 na\xC3\xAFve \xFF\n");
  EXPECT_FALSE(stray.is_windows_1252);
  EXPECT_EQ(EncodeText(stray), "caf\xC3\xA9 na\xC3\xAFve \xFF\n");
  EXPECT_EQ(FirstUnencodable("\u4e2d", DecodeText("utf-8\n")), std::nullopt);
  EXPECT_TRUE(IsUtf8("plain ascii text, longer than eight bytes"));
  EXPECT_FALSE(IsUtf8("eight by\xE9"));
  EXPECT_FALSE(IsUtf8("\xE2\x82"));  // Cut short.
}

TEST(ReadTextFileTest, ReadsAndReportsErrors) {
  TempTree tree;
  tree.File("crlf.txt", "\xEF\xBB\xBFx\r\ny\r\n");
  tree.File("binary.bin", std::string("\x7f"
                                      "ELF\0\0\0",
                                      7));
  tree.File("big.txt", std::string(2000, 'a'));
  tree.Dir("dir");
  auto text = ReadTextFile(tree.Path("crlf.txt"));
  ASSERT_TRUE(text.ok()) << text.error().ToString();
  EXPECT_EQ(text->text, "x\ny\n");
  EXPECT_TRUE(text->has_bom);
  EXPECT_EQ(text->line_ending, LineEnding::kCrlf);
  EXPECT_EQ(ReadTextFile(tree.Path("missing.txt")).status().code(), ErrorCode::kNotFound);
  auto dir = ReadTextFile(tree.Path("dir"));
  EXPECT_EQ(dir.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(dir.error().message().find("is a directory"), std::string::npos);
  auto binary = ReadTextFile(tree.Path("binary.bin"));
  EXPECT_EQ(binary.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(binary.error().message().find("binary"), std::string::npos);
  EXPECT_EQ(ReadTextFile(tree.Path("big.txt"), 1000).status().code(),
            ErrorCode::kResourceExhausted);
}

TEST(ReadTextFileTest, FifoDoesNotBlock) {
  TempTree tree;
  ASSERT_EQ(::mkfifo(tree.Path("pipe").c_str(), 0600), 0);
  EXPECT_EQ(ReadTextFile(tree.Path("pipe")).status().code(), ErrorCode::kInvalidArgument);
}

mode_t ModeOf(const std::string& path) {
  struct stat info;
  EXPECT_EQ(::stat(path.c_str(), &info), 0) << path;
  return info.st_mode & 07777;
}

int CurrentUmask() {
  std::string status = testing::ReadAll("/proc/self/status");
  size_t at = status.find("Umask:");
  return at == std::string::npos ? 022 : static_cast<int>(std::strtol(&status[at + 6], nullptr, 8));
}

// Check-then-write sequences on files of one directory take turns, between threads (each lock
// opens the directory anew) and so between processes; a path whose directory does not exist yet
// locks the nearest one that does.
TEST(DirectoryWriteLockTest, HoldersOfOneDirectoryTakeTurns) {
  TempTree tree;
  std::atomic<int> inside{0};
  std::atomic<int> most_inside{0};
  auto edit = [&](const std::string& path) {
    DirectoryWriteLock lock(path);
    int now = ++inside;
    most_inside = std::max(most_inside.load(), now);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    --inside;
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back(edit, tree.Path("f.txt"));
    threads.emplace_back(edit, tree.Path("new/dir/g.txt"));  // Locks the root too.
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(most_inside.load(), 1);
  // Another directory's lock does not wait for this one's.
  std::filesystem::create_directories(tree.Path("other"));
  DirectoryWriteLock held(tree.Path("f.txt"));
  auto started = std::chrono::steady_clock::now();
  { DirectoryWriteLock other(tree.Path("other/h.txt")); }
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
}

TEST(WriteFileAtomicallyTest, CreatesParentsWithDefaultModes) {
  TempTree tree;
  std::string path = tree.Path("a/b/new.txt");
  ASSERT_TRUE(WriteFileAtomically(path, "hello\n").ok());
  EXPECT_EQ(testing::ReadAll(path), "hello\n");
  EXPECT_EQ(ModeOf(path), static_cast<mode_t>(0644 & ~CurrentUmask()));
  EXPECT_EQ(ModeOf(tree.Path("a/b")), static_cast<mode_t>(0755 & ~CurrentUmask()));
  // No temporary file is left behind.
  size_t entries = 0;
  for (auto& entry : std::filesystem::directory_iterator(tree.Path("a/b"))) {
    (void)entry;
    ++entries;
  }
  EXPECT_EQ(entries, 1u);
  EXPECT_FALSE(WriteFileAtomically(tree.Path("c/d.txt"), "x", /*create_parents=*/false).ok());
}

TEST(WriteFileAtomicallyTest, KeepsAnExistingFilesMode) {
  TempTree tree;
  tree.File("script.sh", "old");
  ASSERT_EQ(::chmod(tree.Path("script.sh").c_str(), 0751), 0);
  ASSERT_TRUE(WriteFileAtomically(tree.Path("script.sh"), "#!/bin/sh\n").ok());
  EXPECT_EQ(ModeOf(tree.Path("script.sh")), 0751u);
  EXPECT_EQ(testing::ReadAll(tree.Path("script.sh")), "#!/bin/sh\n");
}

TEST(WriteFileAtomicallyTest, RefusesDirectories) {
  TempTree tree;
  tree.Dir("dir");
  EXPECT_EQ(WriteFileAtomically(tree.Path("dir"), "x").code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(WriteFileAtomically("relative.txt", "x").code(), ErrorCode::kInvalidArgument);
}

// A hard-linked file is written in place: both names keep the same, new content (the rename
// gave one name a new file and left the other with the old text).
TEST(WriteFileAtomicallyTest, KeepsHardLinks) {
  TempTree tree;
  tree.File("one.txt", "old\n");
  ASSERT_EQ(::link(tree.Path("one.txt").c_str(), tree.Path("two.txt").c_str()), 0);
  ASSERT_TRUE(WriteFileAtomically(tree.Path("one.txt"), "new\n").ok());
  EXPECT_EQ(testing::ReadAll(tree.Path("two.txt")), "new\n");
  struct stat one {};
  struct stat two {};
  ASSERT_EQ(::stat(tree.Path("one.txt").c_str(), &one), 0);
  ASSERT_EQ(::stat(tree.Path("two.txt").c_str(), &two), 0);
  EXPECT_EQ(one.st_ino, two.st_ino);
}

// A file of another user keeps its owner (a root engine, as in a dev container, made itself the
// owner of the user's files).
TEST(WriteFileAtomicallyTest, KeepsAnotherUsersOwnership) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a file to another user";
  TempTree tree;
  tree.File("theirs.txt", "old\n");
  ASSERT_EQ(::chown(tree.Path("theirs.txt").c_str(), 1000, 1000), 0);
  ASSERT_TRUE(WriteFileAtomically(tree.Path("theirs.txt"), "new\n").ok());
  struct stat info {};
  ASSERT_EQ(::stat(tree.Path("theirs.txt").c_str(), &info), 0);
  EXPECT_EQ(info.st_uid, 1000u);
  EXPECT_EQ(info.st_gid, 1000u);
  EXPECT_EQ(testing::ReadAll(tree.Path("theirs.txt")), "new\n");
}

// A read-only file is not written, by root either; nor a FIFO, which is refused at once (a read
// or write of one waited for ever).
TEST(WriteFileAtomicallyTest, RefusesReadOnlyFilesAndFifos) {
  TempTree tree;
  tree.File("locked.txt", "keep\n");
  ASSERT_EQ(::chmod(tree.Path("locked.txt").c_str(), 0444), 0);
  Status refused = WriteFileAtomically(tree.Path("locked.txt"), "changed\n");
  EXPECT_EQ(refused.code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(refused.error().message().find("is read-only (mode 0444); it was not changed"),
            std::string::npos)
      << refused.error().message();
  EXPECT_EQ(testing::ReadAll(tree.Path("locked.txt")), "keep\n");
  ASSERT_EQ(::mkfifo(tree.Path("pipe").c_str(), 0600), 0);
  EXPECT_EQ(WriteFileAtomically(tree.Path("pipe"), "x").code(), ErrorCode::kInvalidArgument);
  Result<std::string> read = ReadFileBytes(tree.Path("pipe"), 1 << 20);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.error().message().find("is not a regular file"), std::string::npos);
  Result<std::string> big = ReadFileBytes(tree.Path("locked.txt"), 3);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code(), ErrorCode::kResourceExhausted);
}

// A write in place that cannot be completed (here the file-size limit; a full disk alike)
// leaves the file as it was: it was left cut short.
TEST(WriteFileAtomicallyTest, AFailedWriteInPlaceLeavesTheFileAsItWas) {
  TempTree tree;
  const std::string old_text(1000, 'o');
  tree.File("one.txt", old_text);
  ASSERT_EQ(::link(tree.Path("one.txt").c_str(), tree.Path("two.txt").c_str()), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit limit{1500, 1500};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    Status written = WriteFileAtomically(tree.Path("one.txt"), std::string(3000, 'n'));
    ::_exit(written.ok() ? 0
            : written.error().message().find("left as it was") != std::string::npos ||
                    written.error().message().find("was not changed") != std::string::npos
                ? 3
                : 4);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3) << "0: written past the limit; 4: another error";
  EXPECT_EQ(testing::ReadAll(tree.Path("two.txt")), old_text);
}

// Extended attributes (ACLs, user tags) stay with the file (the rename's new file had none).
TEST(WriteFileAtomicallyTest, KeepsExtendedAttributes) {
  TempTree tree;
  tree.File("tagged.txt", "old\n");
  if (::setxattr(tree.Path("tagged.txt").c_str(), "user.tag", "kept", 4, 0) != 0) {
    GTEST_SKIP() << "no user xattrs on this file system";
  }
  ASSERT_TRUE(WriteFileAtomically(tree.Path("tagged.txt"), "new\n").ok());
  char value[16] = {};
  EXPECT_EQ(::getxattr(tree.Path("tagged.txt").c_str(), "user.tag", value, sizeof value), 4);
  EXPECT_STREQ(value, "kept");
  EXPECT_EQ(testing::ReadAll(tree.Path("tagged.txt")), "new\n");
}

}  // namespace
}  // namespace lai::workspace
