#pragma once
// Off the event path: a recorder takes the topology snapshot once a minute, turns it into the interval's rows (the
// delta to the previous snapshot) and queues them for one writer thread that owns the store. A full queue drops the
// interval (counted); a store that cannot be opened or written is logged once and history stays off (the agent keeps
// running), with the reason in stats().
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/history/record.h"
#include "agent/history/store.h"

namespace hostscope::history {

struct WriterOptions {
  std::string path;
  StoreOptions store;
  size_t queue = 4;  // intervals waiting for the writer; more are dropped
  std::function<uint64_t()> clock;  // wall clock (ns); default CLOCK_REALTIME
};

struct WriterStats {
  bool ok = true;      // false once the store failed (then `error` says why)
  std::string error;
  uint64_t intervals_queued = 0, intervals_written = 0, intervals_dropped = 0, rows_written = 0;
  uint64_t last_write_ns = 0;
};

struct Interval {
  uint64_t start_ns = 0, end_ns = 0;
  std::vector<IntervalRow> rows;
};

class Writer {
 public:
  explicit Writer(WriterOptions o);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Opens the store; false (logged once) when it cannot. With `thread` off nothing runs until process_one() (tests).
  bool start(bool thread = true);
  void stop();
  // Never blocks on the store: false when the interval was dropped (queue full, store failed).
  bool submit(Interval iv);
  // Writes the oldest queued interval on the calling thread; false when the queue was empty.
  bool process_one();
  WriterStats stats() const;

 private:
  void run();
  void write(Interval& iv);
  void fail(const Error& e);

  WriterOptions opts_;
  std::optional<Store> store_;  // used by the writer thread only (or process_one)
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Interval> queue_;
  bool stopping_ = false;
  WriterStats stats_;
  uint64_t drops_persisted_ = 0;  // intervals_dropped already added to the file's counter
  std::thread thread_;
};

// Takes the interval rows from a snapshot function and hands them to a writer, at every multiple of `interval_ns`
// of the wall clock (a thread), or when record() is called (tests).
class Recorder {
 public:
  using SnapshotFn = std::function<topology::TopologySnapshot()>;
  Recorder(SnapshotFn snap, Writer& writer, uint64_t interval_ns = kMinuteNs, std::function<uint64_t()> clock = {});
  ~Recorder();
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  void start();  // the timer thread; the first interval starts now
  void stop();   // records the partial interval up to now, so a restart loses nothing counted
  // Snapshot now and submit the interval since the previous record() (or since construction).
  void record(uint64_t now_ns);

 private:
  void run();
  SnapshotFn snap_;
  Writer& writer_;
  uint64_t interval_ns_;
  std::function<uint64_t()> clock_;
  topology::TopologySnapshot prev_;
  uint64_t prev_ns_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace hostscope::history
