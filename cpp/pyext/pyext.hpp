// Python-facing pieces that need the CPython/nanobind API and so cannot live in the core:
// the C++ timing wrapper, the OSError translation and the stats() dict. The binding table
// (cpp/bindings/module.cpp) only registers these.
#pragma once

#include <nanobind/nanobind.h>

#include <cstddef>
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

// record_row(table, name, ts_ns, dur_ns, step, ctx, values, text=None): one row of up to 16
// values (ts_ns 0 = now; dur_ns > 0 makes it a span) and an optional text (the `text` column, at
// most 112 UTF-8 bytes: a request id; it travels in the row, not through the interner).
// record_rows(table, name, ts_ns, step, ncols, values, ctx): len(values) / ncols instant rows in
// one call, the loop in C++; returns the rows recorded.
void record_row_py(std::uint32_t table, std::uint32_t name, std::int64_t ts_ns, std::int64_t dur_ns,
                   std::int64_t step, std::uint32_t ctx, nanobind::handle values,
                   nanobind::handle text);
std::size_t record_rows_py(std::uint32_t table, std::uint32_t name, std::int64_t ts_ns,
                           std::int64_t step, int ncols, nanobind::handle values,
                           std::uint32_t ctx);
// How many items of a tuple or list equal 0 (exact ints checked without a Python call).
std::size_t count_zero_py(nanobind::handle values);

// profilemate::OsError -> OSError(errno, message, path); other exceptions pass through.
void translate_errors(const std::exception_ptr& p, void*);

// stats() as the dict documented in docs/CORE_API.md.
nanobind::dict stats_dict();

}  // namespace profilemate::pyext
