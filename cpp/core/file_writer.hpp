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

  // Creates/truncates path. Returns 0 or errno.
  int open(std::string path);
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

// Creates dir and its parents (mode 0755). Returns 0 or errno.
int make_dirs(const std::string& dir);

// Writes content to path atomically (tmp file + rename). Returns 0 or errno.
int write_file_atomic(const std::string& path, std::string_view content);

}  // namespace profilemate
