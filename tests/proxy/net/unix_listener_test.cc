// openUnixListener and removeUnixSocketFile: which files at the path are replaced, which are
// refused, and that only the file viscount created is ever removed.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "proxy/net/socket.h"

namespace viscount {
namespace {

class UnixListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/viscount-unix-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/s.sock";
  }
  void TearDown() override {
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }

  // A socket bound at the path by "another process": listening or not.
  int bindOther(bool listening) {
    ResolvedAddress address;
    EXPECT_TRUE(makeUnixAddress(path_, &address));
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    EXPECT_EQ(bind(fd, reinterpret_cast<const sockaddr*>(&address.addr), address.len), 0);
    if (listening) {
      EXPECT_EQ(listen(fd, 4), 0);
    }
    return fd;
  }

  int open(UnixSocketFile* file, std::string* error, uint32_t mode = 0660) {
    return openUnixListener(path_, mode, 16, file, error);
  }

  std::string dir_;
  std::string path_;
};

TEST_F(UnixListenerTest, BindsWithTheModeAndRemovesItsFile) {
  UnixSocketFile file;
  std::string error;
  const int fd = open(&file, &error, 0600);
  ASSERT_GE(fd, 0) << error;
  struct stat st {};
  ASSERT_EQ(lstat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  close(fd);
  removeUnixSocketFile(file);
  EXPECT_NE(access(path_.c_str(), F_OK), 0);
  removeUnixSocketFile(file);  // twice is harmless
}

TEST_F(UnixListenerTest, AStaleSocketIsReplacedALiveOneRefused) {
  close(bindOther(/*listening=*/false));  // left behind, nobody accepts
  UnixSocketFile file;
  std::string error;
  const int fd = open(&file, &error);
  ASSERT_GE(fd, 0) << error;

  UnixSocketFile second;
  EXPECT_LT(open(&second, &error), 0);  // the first one is alive
  EXPECT_NE(error.find("another process is listening"), std::string::npos) << error;
  close(fd);
  removeUnixSocketFile(file);
}

TEST_F(UnixListenerTest, AFileThatIsNotASocketIsNeverReplaced) {
  std::ofstream(path_) << "precious";
  UnixSocketFile file;
  std::string error;
  EXPECT_LT(open(&file, &error), 0);
  EXPECT_NE(error.find("exists and is not a socket"), std::string::npos) << error;
  std::string content;
  std::ifstream(path_) >> content;
  EXPECT_EQ(content, "precious");
}

TEST_F(UnixListenerTest, AFileBoundSinceBySomeoneElseIsNotRemoved) {
  UnixSocketFile file;
  std::string error;
  const int fd = open(&file, &error);
  ASSERT_GE(fd, 0) << error;
  // A new process took the path while ours still listens (the open socket keeps our inode in
  // use, so its number cannot be handed to the new file).
  unlink(path_.c_str());
  const int other = bindOther(/*listening=*/true);
  removeUnixSocketFile(file);
  EXPECT_EQ(access(path_.c_str(), F_OK), 0);
  close(other);
  close(fd);
}

}  // namespace
}  // namespace viscount
