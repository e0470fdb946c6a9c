// One output file written with write(2): the collector formats into an in-memory buffer during a
// drain cycle and hands it to the kernel at the end of the cycle (or earlier when the buffer passes
// kEagerWriteBytes). No stdio buffering, so after a cycle every formatted row is in the page cache
// and survives SIGKILL of the process.
#pragma once

#include <string>

#include "core/format.hpp"

namespace profilemate {

struct IoError {
  std::string path;
  int err = 0;  // errno
};

class FileWriter {
 public:
  static constexpr std::size_t kEagerWriteBytes = 1u << 20;

  FileWriter() = default;
  ~FileWriter();
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;

  // Modes of what the core creates (the umask may only take more away).
  static constexpr unsigned kFileMode = 0600;

  // Creates/truncates path (mode 0600; an existing file loses group/other access). Refuses a
  // symbolic link at the path (ELOOP) and anything but a regular file (EINVAL); close-on-exec.
  // Returns 0 or errno.
  int open(std::string path);
  // Creates a new file from a mkostemp template ("...XXXXXX"): O_EXCL, unpredictable name, mode
  // 0600, close-on-exec; path() is the name it got. Returns 0 or errno.
  int open_temp(std::string path_template);
  bool is_open() const noexcept { return fd_ >= 0; }
  const std::string& path() const noexcept { return path_; }

  fmt::OutBuf& buf() noexcept { return buf_; }

  // Writes the whole buffer. Returns 0 or errno (the buffer keeps what was not written).
  int write_pending();
  // write_pending() when the buffer is large; for use in the middle of a cycle.
  int maybe_write_early() { return buf_.size() >= kEagerWriteBytes ? write_pending() : 0; }

  // Closes the descriptor (no write). Used at session end after write_pending() and by a forked
  // child, which must not write the parent's buffered rows into its own files.
  void close_fd() noexcept;

 private:
  int fd_ = -1;
  std::string path_;
  fmt::OutBuf buf_;
};

inline constexpr unsigned kDirMode = 0700;

// Creates dir and its missing parents (mode 0700). Returns 0 or errno.
int make_dirs(const std::string& dir);

// Creates dir (mode 0700; its parent must exist), or accepts one that exists as a real folder owned
// by this user. Refuses a symbolic link (ELOOP) and a folder owned by another user (EPERM), with
// the reason in *why. Returns 0 or errno.
int make_private_dir(const std::string& dir, std::string* why);

// Writes content to path atomically: a new temporary next to it (".<name>.XXXXXX", O_EXCL, mode
// 0600), then rename(2), which replaces whatever is at path (a symbolic link included) without
// following it. Returns 0 or errno.
int write_file_atomic(const std::string& path, std::string_view content);

}  // namespace profilemate
