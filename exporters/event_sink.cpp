#include "exporters/event_sink.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <filesystem>

namespace hostscope::exporters {

Result<std::unique_ptr<EventSink>> EventSink::open(const EventSinkOptions& o) {
  std::unique_ptr<EventSink> s(new EventSink(o));
  if (o.output == "stdout") s->fd_ = STDOUT_FILENO;
  else if (o.output == "fd") s->fd_ = o.fd;
  else if (o.output == "file") {
    if (o.max_files < 1) return errorf("events: max_files must be at least 1");
    if (auto st = s->open_file(); !st) return st.error();
  } else return errorf("events: output '{}' is not one of none, stdout, file", o.output);
  if (s->fd_ < 0) return errorf("events: no output descriptor");
  s->writer_ = std::thread([p = s.get()] { p->run(); });
  return s;
}

EventSink::~EventSink() {
  stop();
  if (own_fd_ && fd_ >= 0) ::close(fd_);
}

Status EventSink::open_file() {
  std::error_code ec;
  auto dir = std::filesystem::path(o_.file).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  if (ec) return errorf("events: create directory {}: {}", dir.string(), ec.message());
  int fd = ::open(o_.file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) return errorf_errno(errno, "events: open {} failed", o_.file);
  struct stat st {};
  size_ = fstat(fd, &st) == 0 ? uint64_t(st.st_size) : 0;
  if (own_fd_ && fd_ >= 0) ::close(fd_);
  fd_ = fd;
  own_fd_ = true;
  return {};
}

// events.jsonl.(N-1) -> .N, ..., events.jsonl -> .1, then a fresh events.jsonl. The oldest file is replaced.
Status EventSink::rotate() {
  for (uint32_t i = o_.max_files; i >= 2; --i) {
    auto from = fmt::format("{}.{}", o_.file, i - 1), to = fmt::format("{}.{}", o_.file, i);
    if (::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT)
      return errorf_errno(errno, "events: rename {} failed", from);
  }
  auto first = o_.file + ".1";
  if (::rename(o_.file.c_str(), first.c_str()) != 0 && errno != ENOENT)
    return errorf_errno(errno, "events: rename {} failed", o_.file);
  rotations_.fetch_add(1, std::memory_order_relaxed);
  return open_file();
}

bool EventSink::push(std::string line) {
  {
    std::lock_guard lk(mu_);
    if (!stopping_ && q_.size() < o_.queue) {
      q_.push_back(std::move(line));
      cv_.notify_one();
      return true;
    }
  }
  dropped_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void EventSink::write_all(const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd_, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (errors_.fetch_add(1, std::memory_order_relaxed) == 0)
        spdlog::warn("events: write failed: {}", std::strerror(errno));
      return;
    }
    off += size_t(n);
  }
  size_ += data.size();
  bytes_.fetch_add(data.size(), std::memory_order_relaxed);
}

void EventSink::run() {
  std::deque<std::string> batch;
  std::string buf;
  for (;;) {
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || !q_.empty(); });
      if (q_.empty() && stopping_) return;
      batch.swap(q_);  // O(1) under the lock: the reader thread never waits for the write
    }
    buf.clear();
    uint64_t lines = 0;
    for (auto& l : batch) {
      bool rotating = own_fd_ && size_ + buf.size() > 0 && size_ + buf.size() + l.size() + 1 > o_.max_file_bytes;
      if (rotating) {
        write_all(buf);
        buf.clear();
        if (auto st = rotate(); !st) {
          errors_.fetch_add(1, std::memory_order_relaxed);
          spdlog::warn("{}", st.error().str());
        }
      }
      buf += l;
      buf += '\n';
      ++lines;
    }
    write_all(buf);
    written_.fetch_add(lines, std::memory_order_relaxed);
    batch.clear();
  }
}

void EventSink::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

EventSinkStats EventSink::stats() const {
  return {written_.load(), dropped_.load(), rotations_.load(), errors_.load(), bytes_.load()};
}

void EventSink::write_metrics(Exposition& out) const {
  auto s = stats();
  out.family("hostscope_event_sink_lines_total", "counter", "Event lines written by the event sink.");
  out.sample("hostscope_event_sink_lines_total", {}, s.lines_written);
  out.family("hostscope_event_sink_dropped_total", "counter", "Event lines dropped because the sink queue was full.");
  out.sample("hostscope_event_sink_dropped_total", {}, s.lines_dropped);
  out.family("hostscope_event_sink_rotations_total", "counter", "Event file rotations.");
  out.sample("hostscope_event_sink_rotations_total", {}, s.rotations);
  out.family("hostscope_event_sink_write_errors_total", "counter", "Failed writes or rotations of the event output.");
  out.sample("hostscope_event_sink_write_errors_total", {}, s.write_errors);
}

}  // namespace hostscope::exporters
