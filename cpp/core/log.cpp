#include "core/log.hpp"

#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

#include "core/format.hpp"

namespace profilemate {

void warn_line(std::string_view text) noexcept {
  char prefix[40];
  char* p = fmt::write_str(prefix, "[profilemate ");
  p = fmt::write_int(p, ::getpid());
  p = fmt::write_str(p, "] ");
  char newline[] = "\n";
  iovec parts[3] = {{prefix, static_cast<std::size_t>(p - prefix)},
                    {const_cast<char*>(text.data()), text.size()},
                    {newline, 1}};
  [[maybe_unused]] ssize_t n = ::writev(2, parts, 3);
}

std::string errno_text(int err) {
  char buf[256];
  // GNU strerror_r returns the message pointer (possibly not buf).
  return std::string(::strerror_r(err, buf, sizeof buf));
}

}  // namespace profilemate
