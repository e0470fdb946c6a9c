// One-line diagnostics on stderr, with the same prefix as the Python logger: "[profilemate <pid>]
// ". Core messages say what failed and the path; advice about settings is the Python layer's job.
#pragma once

#include <string>
#include <string_view>

namespace profilemate {

// Writes "[profilemate <pid>] <text>\n" to fd 2 with one writev(2): no stdio buffer, no allocation,
// so it is usable from any thread (and its prefix formatting from a signal handler), and a line is
// never torn by other threads' writes.
void warn_line(std::string_view text) noexcept;

// strerror_r's text for an errno value.
std::string errno_text(int err);

}  // namespace profilemate
