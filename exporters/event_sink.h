#pragma once
// JSON lines of connection events for log shippers (Vector, Fluent Bit): to stdout (or any fd) or to a file
// rotated by size (events.jsonl -> events.jsonl.1 ... .N). push() is called from the kernel reader thread and
// never blocks on I/O: lines go to a bounded queue drained by a writer thread; a full queue drops the line and
// counts it.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/result.h"
#include "exporters/exposition.h"

namespace hostscope::exporters {

struct EventSinkOptions {
  std::string output = "none";  // none | stdout | file
  std::string file = "/var/log/hostscope/events.jsonl";
  uint64_t max_file_bytes = 100ull << 20;  // rotate before a write would pass this size
  uint32_t max_files = 5;                  // rotated files kept (.1 ... .max_files)
  size_t queue = 65536;                    // lines buffered
  int fd = -1;                             // output "fd": write to this descriptor (not owned); tests, stdout
};

struct EventSinkStats {
  uint64_t lines_written = 0, lines_dropped = 0, rotations = 0, write_errors = 0, bytes_written = 0;
};

class EventSink {
 public:
  // Opens the output (creating the file's directory) and starts the writer. Errors name the path.
  static Result<std::unique_ptr<EventSink>> open(const EventSinkOptions& o);
  ~EventSink();
  EventSink(const EventSink&) = delete;
  EventSink& operator=(const EventSink&) = delete;

  // Queues one line (without its newline). Never waits for I/O; returns false when the line was dropped.
  bool push(std::string line);
  // Writes what is queued, then stops the writer.
  void stop();
  EventSinkStats stats() const;
  void write_metrics(Exposition& out) const;

 private:
  explicit EventSink(EventSinkOptions o) : o_(std::move(o)) {}
  Status open_file();
  Status rotate();
  void run();
  void write_all(const std::string& data);

  EventSinkOptions o_;
  int fd_ = -1;
  bool own_fd_ = false;
  uint64_t size_ = 0;  // bytes in the current file
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> q_;
  bool stopping_ = false;
  std::thread writer_;
  std::atomic<uint64_t> written_{0}, dropped_{0}, rotations_{0}, errors_{0}, bytes_{0};
};

}  // namespace hostscope::exporters
