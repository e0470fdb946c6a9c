// Python-facing pieces that need the CPython/nanobind API and so cannot live in the core:
// the C++ timing wrapper, the OSError translation and the stats() dict. The binding table
// (cpp/bindings/module.cpp) only registers these.
#pragma once

#include <nanobind/nanobind.h>

#include <cstdint>
#include <exception>

namespace profilemate::pyext {

// timed(fn, table, name, ctx=0, *, before=None, after=None, params=(), sets_step=False,
// on_error=None): a callable that runs the hooks, calls fn once and records a span (timed.cpp).
nanobind::object timed(nanobind::handle fn, std::uint32_t table, std::uint32_t name,
                       std::uint32_t ctx, nanobind::handle before, nanobind::handle after,
                       nanobind::handle params, bool sets_step, nanobind::handle on_error);
// The `table` that makes timed() record no row of its own: its hooks record theirs (a probe whose
// rows are not one per call: per forward out of N graph pieces, deferred to the device's time).
inline constexpr std::uint32_t kNoRowTable = 0xFFFFFFFFu;
// The TimedCallable type object (created on first use).
nanobind::handle timed_type();

// profilemate::OsError -> OSError(errno, message, path); other exceptions pass through.
void translate_errors(const std::exception_ptr& p, void*);

// stats() as the dict documented in docs/CORE_API.md.
nanobind::dict stats_dict();

}  // namespace profilemate::pyext
