#include "collector/pipeline.hpp"

#include "profilemate/interner.hpp"
#include "profilemate/table.hpp"

namespace profilemate {

Pipeline::Pipeline(ProcessInfo info, bool trace)
    : info_(std::move(info)), strings_(Interner::global()) {
  csv_ = std::make_unique<CsvSink>(info_, strings_);
  sinks_.push_back(csv_.get());
  if (trace) {
    trace_ = std::make_unique<TraceSink>(info_, strings_);
    sinks_.push_back(trace_.get());
  }
}

bool Pipeline::open() {
  if (trace_ && trace_->open() != 0) return fail(*trace_);
  return true;
}

bool Pipeline::fail(Sink& s) {
  if (!failed_) {
    failed_ = true;
    error_ = s.take_error();
  }
  return false;
}

void Pipeline::on_thread(std::int32_t tid, std::string_view name) {
  if (failed_) return;
  for (Sink* s : sinks_) s->on_thread(tid, name);
}

bool Pipeline::consume(const Event* events, std::size_t n, std::int32_t tid) {
  const TableRegistry& tables = TableRegistry::global();
  for (std::size_t i = 0; i < n; ++i) {
    const Event& e = events[i];
    const TableDef* t = tables.get(e.table());
    if (t == nullptr) {  // recorded against a table id that was never defined
      ++invalid_;
      continue;
    }
    agg_.add(e);
    if (failed_) continue;
    for (Sink* s : sinks_) {
      if (!s->on_event(e, *t, tid)) return fail(*s);
    }
  }
  return !failed_;
}

bool Pipeline::flush() {
  if (failed_) return false;
  for (Sink* s : sinks_) {
    if (!s->flush()) return fail(*s);
  }
  return true;
}

bool Pipeline::finish() {
  if (failed_) return false;
  for (Sink* s : sinks_) s->finish();
  return flush();
}

void Pipeline::abandon() {
  for (Sink* s : sinks_) s->abandon();
}

}  // namespace profilemate
