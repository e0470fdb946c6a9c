// profilemate._core: a table of bindings, no logic. The contract is docs/CORE_API.md.
#include <nanobind/nanobind.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "profilemate/clock.hpp"
#include "profilemate/engine.hpp"
#include "profilemate/gpu_timer.hpp"
#include "profilemate/report.hpp"
#include "profilemate/version.hpp"
#include "pyext/block_clock.hpp"
#include "pyext/pyext.hpp"
#include "pyext/session.hpp"

namespace nb = nanobind;
namespace pm = profilemate;
using namespace nb::literals;
using std::int64_t;
using std::string;

NB_MODULE(_core, m) {
  m.doc() = "ProfileMate's C++ core: rings, collector, CSV/trace/summary writers.";
  nb::register_exception_translator(&pm::pyext::translate_errors, nullptr);

  m.def("version", &pm::version, "The package version.");
  m.def("now_ns", &pm::now_ns, "CLOCK_MONOTONIC in nanoseconds (the clock of every event).");

  // Session.
  m.def("start", &pm::pyext::start, "session_dir"_a, "label"_a, nb::kw_only(),
        "ring_capacity"_a = pm::kDefaultRingCapacity,
        "flush_interval_ms"_a = pm::kDefaultFlushIntervalMs, "trace"_a = pm::kDefaultTrace,
        "session_start_ns"_a = 0,
        "Create <session_dir>/<label>-<pid>/, start the collector; returns the process dir.");
  // start()'s defaults and limits: the Python layer's copies (profilemate.config) are checked
  // against these by tests/python/test_config_core_agree.py.
  m.attr("RING_CAPACITY_DEFAULT") = pm::kDefaultRingCapacity;
  m.attr("RING_CAPACITY_MIN") = pm::kMinRingCapacity;
  m.attr("RING_CAPACITY_MAX") = pm::kMaxRingCapacity;
  m.attr("FLUSH_INTERVAL_MS_DEFAULT") = pm::kDefaultFlushIntervalMs;
  m.attr("FLUSH_INTERVAL_MS_MIN") = pm::kMinFlushIntervalMs;
  m.attr("FLUSH_INTERVAL_MS_MAX") = pm::kMaxFlushIntervalMs;
  m.attr("TRACE_DEFAULT") = pm::kDefaultTrace;
  m.def("relabel", &pm::relabel, "label"_a, nb::call_guard<nb::gil_scoped_release>(),
        "Move this process's session to <session_dir>/<label>-<pid>/ (a forked child's own role): "
        "created now; a session already writing under another label is stopped first. Returns the "
        "process dir.");
  m.def("stop", &pm::stop, nb::call_guard<nb::gil_scoped_release>(),
        "Drain, write the remaining rows and summary.json, close the trace. Idempotent.");
  m.def("flush", &pm::flush, nb::call_guard<nb::gil_scoped_release>(),
        "Return once everything recorded before the call is written.");
  m.def("enabled", &pm::enabled, "True while the core records.");
  m.def("process_dir", &pm::process_dir, "The process dir of the running session, or ''.");

  // Tables and strings.
  m.def("define_table", &pm::define_table, "name"_a, "columns"_a,
        "Declare <process dir>/<name>.csv; columns are (header, source) pairs.");
  m.def("intern", &pm::intern, "s"_a, "A stable id (> 0) for a string; 0 is ''.");

  // Recording (hot path).
  m.def("record_span", &pm::record_span, "table"_a, "name"_a, "start_ns"_a, "dur_ns"_a,
        "step"_a = int64_t{-1}, "ctx"_a = 0u, "a0"_a = 0.0, "a1"_a = 0.0, "a2"_a = 0.0,
        "a3"_a = 0.0, "Record a complete span.");
  m.def("record_instant", &pm::record_instant, "table"_a, "name"_a, "ts_ns"_a,
        "step"_a = int64_t{-1}, "ctx"_a = 0u, "a0"_a = 0.0, "a1"_a = 0.0, "a2"_a = 0.0,
        "a3"_a = 0.0, "Record an instant event.");
  m.def("record_row", &pm::pyext::record_row_py, "table"_a, "name"_a, "ts_ns"_a, "dur_ns"_a,
        "step"_a, "ctx"_a, "values"_a, "text"_a.none() = nb::none(),
        "Record one row of up to 16 values (a tuple or list; None = NaN) as a0..a15, and an "
        "optional text (the 'text' column, at most 112 UTF-8 bytes, e.g. a request id; it "
        "travels inside the row, never through the interner); ts_ns 0 = now; dur_ns > 0 "
        "records a span, else an instant.");
  m.def("record_rows", &pm::pyext::record_rows_py, "table"_a, "name"_a, "ts_ns"_a, "step"_a,
        "ncols"_a, "values"_a, "ctx"_a = 0u,
        "Record len(values) // ncols instant rows (values flat, row after row; ncols 1..16) in "
        "one call; ts_ns 0 = now. Returns the number of rows recorded.");
  m.def("count_zero", &pm::pyext::count_zero_py, "values"_a,
        "How many items of a tuple or list equal 0: a per-request count (e.g. requests with no "
        "output token yet) taken without a Python loop over the batch.");
  m.def("record_counter", &pm::record_counter, "table"_a, "name"_a, "ts_ns"_a, "value"_a,
        "step"_a = int64_t{-1}, "ctx"_a = 0u, "Record a counter sample (value lands in a0).");

  // Step id.
  m.def("set_step", &pm::set_step, "step"_a, "Set the process's current engine step.");
  m.def("current_step", &pm::current_step, "The process's current engine step (-1 = none).");

  // Timing wrapper.
  m.def("timed", &pm::pyext::timed, "fn"_a, "table"_a, "name"_a, "ctx"_a = 0u, nb::kw_only(),
        "before"_a.none() = nb::none(), "after"_a.none() = nb::none(),
        "params"_a.none() = nb::none(), "sets_step"_a = false, "on_error"_a.none() = nb::none(),
        "Wrap fn: run before(*p), call fn exactly once, run after(result, *p), record a span "
        "(table, name, start, duration, step, ctx, hook values as a0..a3); p = the call's "
        "arguments named by params, (position, name, default) triples. A hook that raises is "
        "switched off and reported once (on_error(exc)).");
  m.attr("TimedCallable") = pm::pyext::timed_type();
  m.attr("NO_ROW") = pm::pyext::kNoRowTable;

  // Device time without a synchronize (profilemate/gpu_timer.hpp).
  m.def("gpu_timer_open", &pm::gpu_timer_open, "library"_a = "libcuda.so.1",
        "pairs"_a = pm::kGpuDefaultPairs,
        "Load the device driver at run time and prepare a pool of event pairs; '' when enabled, "
        "else the reason it stays disabled.");
  m.def("gpu_timer_begin", &pm::gpu_timer_begin, "stream"_a,
        "Record a pair's start event on the raw stream; the pair id, or -1 (no device time).");
  m.def(
      "gpu_timer_end",
      [](std::int64_t pair, std::uintptr_t stream, std::uint32_t table, std::uint32_t name,
         std::int64_t step, std::uint32_t ctx, std::int64_t ts_ns, std::int64_t dur_ns,
         const std::vector<double>& values, int gpu_slot) {
        if (values.size() > static_cast<std::size_t>(pm::kGpuMaxValues))
          throw nb::value_error("gpu_timer_end: at most 16 values");
        pm::gpu_timer_end(pair, stream, table, name, step, ctx, ts_ns, dur_ns, values.data(),
                          static_cast<int>(values.size()), gpu_slot);
      },
      "pair"_a, "stream"_a, "table"_a, "name"_a, "step"_a, "ctx"_a, "ts_ns"_a, "dur_ns"_a,
      "values"_a, "gpu_slot"_a,
      "Record the pair's end event and park the row; the collector writes it with the device "
      "milliseconds in values[gpu_slot] once the device is past it. pair -1: written now, NaN.");
  m.def("gpu_timer_poll", &pm::gpu_timer_poll, "final"_a = false,
        nb::call_guard<nb::gil_scoped_release>(),
        "Write the rows whose device work finished (the collector does this every cycle).");
  m.def(
      "gpu_timer_stats",
      []() {
        const pm::GpuTimerStats s = pm::gpu_timer_stats();
        nb::dict d;
        d["enabled"] = s.enabled;
        d["reason"] = s.reason;
        d["begun"] = s.begun;
        d["completed"] = s.completed;
        d["exhausted"] = s.exhausted;
        d["skipped_capturing"] = s.skipped_capturing;
        d["abandoned"] = s.abandoned;
        d["unfinished"] = s.unfinished;
        d["errors"] = s.errors;
        d["pending"] = s.pending;
        return d;
      },
      "The device timer's state and counters.");

  // Per-slot clock of a pool (KV blocks): one C++ pass over a list of objects per call.
  nb::class_<pm::pyext::PyIdClock>(
      m, "IdClock",
      "Birth/release/reuse stamps of numbered slots (arrays sized by reserve); acquire() of a slot "
      "whose mark attribute is not None records an eviction row (id, lifetime s, idle s, reuses).")
      .def(nb::init<std::uint32_t, std::uint32_t, const std::string&, const std::string&>(),
           "table"_a, "name"_a, "id_attr"_a, "mark_attr"_a)
      .def("reserve", &pm::pyext::PyIdClock::reserve, "n"_a, "Size the arrays for ids [0, n).")
      .def("acquire", &pm::pyext::PyIdClock::acquire, "objs"_a,
           "Slots handed out now (list/tuple); returns how many were evicted (rows recorded).")
      .def("reuse", &pm::pyext::PyIdClock::reuse, "objs"_a,
           "Slots hit again; returns how many were parked (evictable) until now.")
      .def("release", &pm::pyext::PyIdClock::release, "objs"_a,
           "Slots released; returns how many were parked (released with their mark).")
      .def("clear_marks", &pm::pyext::PyIdClock::clear_marks,
           "Every parked slot loses its mark (bulk clear, no rows); returns how many were parked.")
      .def_prop_ro("parked", &pm::pyext::PyIdClock::parked)
      .def_prop_ro("evicted", &pm::pyext::PyIdClock::evicted)
      .def_prop_ro("overflow", &pm::pyext::PyIdClock::overflow)
      .def_prop_ro("capacity", &pm::pyext::PyIdClock::capacity)
      .def_prop_ro("unsupported", &pm::pyext::PyIdClock::unsupported);

  // The report (profilemate/report.hpp): reads session folders back, writes <out_dir>/summary.txt,
  // summary.json and report.html.
  m.def(
      "report",
      [](const std::vector<string>& folders, const string& out_dir) {
        pm::ReportResult r;
        {
          nb::gil_scoped_release unlocked;
          r = pm::write_report(folders, out_dir);
        }
        return std::make_tuple(r.out_dir, r.summary_text, r.warnings, r.tables_read, r.rows_read);
      },
      "folders"_a, "out_dir"_a = "",
      "Report the session folders as one: writes summary.txt, summary.json and report.html to "
      "out_dir ('' = <first session>/report). Returns (out_dir, summary text, warnings, tables "
      "read, rows read); a file that cannot be read is a warning, an output folder that cannot "
      "be written an OSError.");

  // Introspection.
  m.def("stats", &pm::pyext::stats_dict, "Counters as of the last drain cycle.");
}
