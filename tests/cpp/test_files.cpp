// Files and folders the core creates: folders 0700, files 0600 (a stricter umask still applies),
// opened without following symbolic links; temporaries with unpredictable names and O_EXCL; a
// process folder that is a symbolic link or belongs to another user is refused.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "hardening_util.hpp"
#include "json_check.hpp"
#include "profilemate/clock.hpp"
#include "profilemate/engine.hpp"
#include "test_util.hpp"

namespace pm = profilemate;
using pmtest::finish;
using pmtest::hardening_options;
using pmtest::hardening_table;
using pmtest::process_dir_for;
using pmtest::read_file;

namespace fs = std::filesystem;

namespace {

class Umask {
 public:
  explicit Umask(mode_t m) : saved_(::umask(m)) {}
  ~Umask() { ::umask(saved_); }

 private:
  mode_t saved_;
};

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

}  // namespace

TEST(Files, FoldersAre0700AndFiles0600) {
  Umask loose(022);
  pmtest::TempDir tmp;
  const std::string session = tmp.path() + "/made/by/core";
  pm::StartOptions o = hardening_options(session, "modes");
  o.trace = true;
  const std::string dir = pm::start(o);
  pm::record_instant(hardening_table(), 1, pm::now_ns());
  pm::flush();
  pm::stop();
  EXPECT_EQ(mode_of(tmp.path() + "/made"), 0700u);
  EXPECT_EQ(mode_of(session), 0700u);
  EXPECT_EQ(mode_of(dir), 0700u);
  for (const char* f : {"hardening_rows.csv", "trace.json", "summary.json"}) {
    EXPECT_EQ(mode_of(dir + "/" + f), 0600u) << f;
  }
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++entries;
  EXPECT_EQ(entries, 3u);  // no probe or temporary file left behind
}

TEST(Files, StricterUmaskStillApplies) {
  // Without owner write and search bits only root can still create the files inside.
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to write into a folder made 0500 by the umask";
  Umask strict(0277);
  pmtest::TempDir tmp;
  const std::string dir = pm::start(hardening_options(tmp.path(), "umask"));
  pm::stop();
  EXPECT_EQ(mode_of(dir), 0500u);
  EXPECT_EQ(mode_of(dir + "/summary.json"), 0400u);
  ::chmod(dir.c_str(), 0700);  // so the temporary folder can be removed
}

TEST(Files, SymlinkPlantedAtCsvPathIsNotFollowed) {
  pmtest::TempDir tmp;
  const std::string target = tmp.path() + "/precious.txt";
  std::ofstream(target) << "precious";
  const std::string dir = pm::start(hardening_options(tmp.path() + "/s", "csvlink"));
  ASSERT_EQ(::symlink(target.c_str(), (dir + "/hardening_rows.csv").c_str()), 0);
  testing::internal::CaptureStderr();
  pm::record_instant(hardening_table(), 1, pm::now_ns());
  pm::flush();
  const pm::Stats st = pm::stats();
  pm::stop();
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(read_file(target), "precious");
  EXPECT_EQ(st.write_errors, 1u);
  EXPECT_NE(err.find(dir + "/hardening_rows.csv"), std::string::npos) << err;
}

TEST(Files, SymlinkAtProcessFolderIsRefused) {
  pmtest::TempDir tmp;
  const std::string elsewhere = tmp.path() + "/elsewhere";
  fs::create_directories(elsewhere);
  fs::create_directories(tmp.path() + "/s");
  const std::string dir = process_dir_for(tmp.path() + "/s", "dirlink");
  ASSERT_EQ(::symlink(elsewhere.c_str(), dir.c_str()), 0);
  try {
    pm::start(hardening_options(tmp.path() + "/s", "dirlink"));
    pm::stop();
    ADD_FAILURE() << "start() used a process folder that is a symbolic link";
  } catch (const pm::OsError& e) {
    EXPECT_EQ(e.path(), dir);
    EXPECT_NE(std::string(e.what()).find(dir), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("symbolic link"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(pm::enabled());
  EXPECT_TRUE(fs::is_empty(elsewhere));
}

TEST(Files, ProcessFolderOwnedByAnotherUserIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make a folder owned by another user";
  pmtest::TempDir tmp;
  fs::create_directories(tmp.path() + "/s");
  const std::string dir = process_dir_for(tmp.path() + "/s", "theirs");
  ASSERT_EQ(::mkdir(dir.c_str(), 0777), 0);
  ASSERT_EQ(::chown(dir.c_str(), 65534, 65534), 0);
  try {
    pm::start(hardening_options(tmp.path() + "/s", "theirs"));
    pm::stop();
    ADD_FAILURE() << "start() used a process folder owned by another user";
  } catch (const pm::OsError& e) {
    EXPECT_EQ(e.path(), dir);
    EXPECT_NE(std::string(e.what()).find("owned by another user"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::is_empty(dir));
}

TEST(Files, ExistingOwnFolderIsReused) {
  pmtest::TempDir tmp;
  fs::create_directories(tmp.path() + "/s");
  const std::string dir = process_dir_for(tmp.path() + "/s", "mine");
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  EXPECT_EQ(pm::start(hardening_options(tmp.path() + "/s", "mine")), dir);
  pm::stop();
  EXPECT_TRUE(fs::exists(dir + "/summary.json"));
}

TEST(Files, WriteTestProbeDoesNotFollowAPlantedSymlink) {
  pmtest::TempDir tmp;
  const std::string target = tmp.path() + "/precious.txt";
  std::ofstream(target) << "precious";
  fs::create_directories(tmp.path() + "/s");
  const std::string dir = process_dir_for(tmp.path() + "/s", "probe");
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  ASSERT_EQ(::symlink(target.c_str(), (dir + "/.profilemate-write-test").c_str()), 0);
  pm::start(hardening_options(tmp.path() + "/s", "probe"));
  pm::stop();
  EXPECT_EQ(read_file(target), "precious");
}

TEST(Files, SummaryTemporaryDoesNotFollowAPlantedSymlink) {
  pmtest::TempDir tmp;
  const std::string target = tmp.path() + "/precious.txt";
  std::ofstream(target) << "precious";
  const std::string dir = pm::start(hardening_options(tmp.path() + "/s", "tmplink"));
  ASSERT_EQ(::symlink(target.c_str(), (dir + "/summary.json.tmp").c_str()), 0);
  pm::stop();
  EXPECT_EQ(read_file(target), "precious");
  struct stat st {};
  ASSERT_EQ(::lstat((dir + "/summary.json").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_TRUE(pmtest::is_valid_json(read_file(dir + "/summary.json")));
}
