// Everything the collector does with a drained event, for one process dir and one session:
// aggregators plus the sinks (CSV per table, Chrome trace). No threads and no rings here, so tests
// and benchmarks can drive it synchronously (tests/cpp/test_golden.cpp does, with fixed input).
#pragma once

#include <array>
#include <memory>
#include <vector>

#include "core/aggregates.hpp"
#include "core/string_cache.hpp"
#include "sinks/csv_sink.hpp"
#include "sinks/trace_sink.hpp"

namespace profilemate {

class Pipeline {
 public:
  Pipeline(ProcessInfo info, bool trace);

  // Opens the files that exist from the start (trace.json). Returns false with error() set.
  bool open();

  void on_thread(std::int32_t tid, std::string_view name);
  // Aggregates and formats n events of one thread. Returns false on the first I/O error; after
  // that the pipeline writes nothing more.
  bool consume(const Event* events, std::size_t n, std::int32_t tid);
  // Hands formatted bytes to the kernel (write(2)). Returns false on an I/O error.
  bool flush();
  // Session end: trailers + flush. Returns false on an I/O error.
  bool finish();
  // Forked child: close inherited descriptors, write nothing.
  void abandon();

  bool failed() const noexcept { return failed_; }
  const IoError& error() const noexcept { return error_; }
  const ProcessInfo& info() const noexcept { return info_; }
  const Aggregates& aggregates() const noexcept { return agg_; }
  std::uint64_t written_rows() const noexcept { return csv_->rows(); }
  std::uint64_t invalid_events() const noexcept { return invalid_; }

 private:
  bool fail(Sink& s);
  bool emit(const Event& e, std::int32_t tid);  // one whole row to the aggregates and sinks
  void take_ext(const Event& continuation);
  void reset_tail();

  ProcessInfo info_;
  StringCache strings_;
  Aggregates agg_;
  std::unique_ptr<CsvSink> csv_;
  std::unique_ptr<TraceSink> trace_;
  std::vector<Sink*> sinks_;
  IoError error_;
  bool failed_ = false;
  std::uint64_t invalid_ = 0;
  // The row being assembled: values a4.. of its continuations, and a head whose continuations
  // continue in the next drained run (the ring's wrap-around).
  RowTail tail_{};
  std::uint32_t values_got_ = 0;  // value continuations taken for the row being assembled
  Event pending_head_{};
  std::int32_t pending_tid_ = 0;
  std::uint32_t pending_need_ = 0;
};

}  // namespace profilemate
