#include "core/file_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace profilemate {

FileWriter::~FileWriter() { close_fd(); }

int FileWriter::open(std::string path) {
  close_fd();
  path_ = std::move(path);
  int fd;
  // O_NOFOLLOW: a symbolic link planted at the path is refused (ELOOP), not written through.
  // O_NONBLOCK: a FIFO planted there cannot block the collector (regular files ignore it).
  do {
    fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK,
                kFileMode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return errno;
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return EINVAL;  // not a regular file
  }
  // A file that existed before keeps its mode on open: take group and other access away.
  if ((st.st_mode & 077) != 0) ::fchmod(fd, st.st_mode & 0700);
  fd_ = fd;
  return 0;
}

int FileWriter::open_temp(std::string path_template) {
  close_fd();
  // mkostemp: O_CREAT | O_EXCL under an unpredictable name, mode 0600 (less by the umask).
  int fd;
  do {
    fd = ::mkostemp(path_template.data(), O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return errno;
  path_ = std::move(path_template);
  fd_ = fd;
  return 0;
}

int FileWriter::write_pending() {
  if (buf_.empty()) return 0;
  if (fd_ < 0) return EBADF;
  std::size_t done = 0;
  while (done < buf_.size()) {
    const ssize_t n = ::write(fd_, buf_.data() + done, buf_.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      buf_.consume(done);
      return err;
    }
    if (n == 0) {  // no progress on a regular file means no space
      buf_.consume(done);
      return ENOSPC;
    }
    done += static_cast<std::size_t>(n);
  }
  buf_.clear();
  buf_.shrink_if_idle();
  return 0;
}

void FileWriter::close_fd() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);  // no retry on EINTR: on Linux the descriptor is released regardless
    fd_ = -1;
  }
}

int make_dirs(const std::string& dir) {
  if (dir.empty()) return ENOENT;
  std::string partial;
  partial.reserve(dir.size());
  std::size_t pos = 0;
  while (pos <= dir.size()) {
    const std::size_t next = dir.find('/', pos);
    const std::size_t end = next == std::string::npos ? dir.size() : next;
    partial.assign(dir, 0, end);
    if (!partial.empty() && ::mkdir(partial.c_str(), kDirMode) != 0 && errno != EEXIST) {
      return errno;
    }
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return errno;
  if (!S_ISDIR(st.st_mode)) return ENOTDIR;
  return 0;
}

int make_private_dir(const std::string& dir, std::string* why) {
  if (::mkdir(dir.c_str(), kDirMode) == 0) return 0;
  if (errno != EEXIST) return errno;
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) return errno;
  if (S_ISLNK(st.st_mode)) {
    if (why) *why = "it is a symbolic link";
    return ELOOP;
  }
  if (!S_ISDIR(st.st_mode)) return ENOTDIR;
  if (st.st_uid != ::geteuid()) {
    if (why) *why = "it is owned by another user (uid " + std::to_string(st.st_uid) + ")";
    return EPERM;
  }
  return 0;
}

int write_file_atomic(const std::string& path, std::string_view content) {
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? std::string(".") : path.substr(0, slash);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  FileWriter w;
  if (int err = w.open_temp(dir + "/." + base + ".XXXXXX")) return err;
  const std::string tmp = w.path();
  w.buf().append(content);
  if (int err = w.write_pending()) {
    w.close_fd();
    ::unlink(tmp.c_str());
    return err;
  }
  w.close_fd();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return err;
  }
  return 0;
}

}  // namespace profilemate
