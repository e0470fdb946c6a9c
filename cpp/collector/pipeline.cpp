#include "collector/pipeline.hpp"

#include <cstring>

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
  std::size_t i = 0;
  // A wide row split by the ring's wrap-around: its head and first continuations came in the
  // previous run of the same ring (a row is published whole, so the rest is here).
  if (pending_need_ > 0) {
    if (tid != pending_tid_) {
      ++invalid_;  // cannot happen: both runs of one ring are drained back to back
      pending_need_ = 0;
    } else {
      while (pending_need_ > 0 && i < n && is_continuation(events[i].kind())) {
        take_ext(events[i++]);
      }
      if (pending_need_ > 0) {
        if (i == n) return !failed_;
        ++invalid_;  // a head without its continuations (cannot happen either)
        pending_need_ = 0;
      } else if (!emit(pending_head_, tid)) {
        return false;
      }
    }
  }
  for (; i < n; ++i) {
    const Event& e = events[i];
    if (is_continuation(e.kind())) {  // a continuation without its head
      ++invalid_;
      continue;
    }
    const std::uint32_t ext = e.ext_count();
    if (ext == 0) {
      reset_tail();
      if (!emit(e, tid)) return false;
      continue;
    }
    pending_head_ = e;
    pending_tid_ = tid;
    pending_need_ = ext;
    reset_tail();
    while (pending_need_ > 0 && i + 1 < n && is_continuation(events[i + 1].kind())) {
      take_ext(events[++i]);
    }
    if (pending_need_ > 0) {
      if (i + 1 == n) return !failed_;  // the rest comes with the next run
      ++invalid_;
      pending_need_ = 0;
      continue;
    }
    if (!emit(pending_head_, tid)) return false;
  }
  return !failed_;
}

void Pipeline::reset_tail() {
  tail_ = RowTail{};
  values_got_ = 0;
}

void Pipeline::take_ext(const Event& c) {
  --pending_need_;
  if (c.kind() == EventKind::kRowText) {
    const std::size_t room = kMaxRowText - tail_.text_len;
    const std::size_t n = room < kRowTextPerEvent ? room : kRowTextPerEvent;
    std::memcpy(tail_.text + tail_.text_len, static_cast<const void*>(&c), n);
    tail_.text_len += n;
    // The last text event is NUL-padded.
    while (tail_.text_len > 0 && tail_.text[tail_.text_len - 1] == '\0') --tail_.text_len;
    return;
  }
  if (values_got_ >= static_cast<std::uint32_t>(kMaxRowExt)) return;  // malformed: ignore
  for (int j = 0; j < 4; ++j)
    tail_.more[4 * values_got_ + static_cast<std::uint32_t>(j)] = c.args[j];
  ++values_got_;
}

bool Pipeline::emit(const Event& e, std::int32_t tid) {
  const TableDef* t = TableRegistry::global().get(e.table());
  if (t == nullptr) {  // recorded against a table id that was never defined
    ++invalid_;
    return true;
  }
  agg_.add(e);
  if (failed_) return true;  // after an I/O error: aggregates only, nothing more is written
  for (Sink* s : sinks_) {
    if (!s->on_event(e, tail_, *t, tid)) return fail(*s);
  }
  return true;
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
