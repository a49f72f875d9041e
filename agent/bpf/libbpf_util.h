#pragma once
// RAII holders for libbpf objects and the glue every loader shares.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace hostscope::bpf {

struct LinkDeleter {
  void operator()(bpf_link* l) const { bpf_link__destroy(l); }
};
using Link = std::unique_ptr<bpf_link, LinkDeleter>;

struct RingBufferDeleter {
  void operator()(ring_buffer* rb) const { ring_buffer__free(rb); }
};
using RingBufferPtr = std::unique_ptr<ring_buffer, RingBufferDeleter>;

// Owns a bpftool-generated skeleton. Ops is a traits struct with open/load/destroy for that skeleton
// (see HS_SKELETON_OPS below); the wrapper is move-only so the kernel objects have one owner.
template <typename Skel, typename Ops>
class Skeleton {
 public:
  Skeleton() = default;
  static Result<Skeleton> open(const char* what) {
    Skeleton s;
    s.skel_ = Ops::open();
    if (!s.skel_) return errorf_errno(errno, "bpf object {} open failed", what);
    return s;
  }
  Skeleton(const Skeleton&) = delete;
  Skeleton& operator=(const Skeleton&) = delete;
  Skeleton(Skeleton&& o) noexcept : skel_(std::exchange(o.skel_, nullptr)) {}
  Skeleton& operator=(Skeleton&& o) noexcept {
    if (this != &o) {
      reset();
      skel_ = std::exchange(o.skel_, nullptr);
    }
    return *this;
  }
  ~Skeleton() { reset(); }
  void reset() {
    if (skel_) Ops::destroy(skel_);
    skel_ = nullptr;
  }
  Status load(const char* what) {
    int err = Ops::load(skel_);
    if (err) return errorf_errno(err, "bpf object {} load failed", what);
    return {};
  }
  Skel* operator->() const { return skel_; }
  Skel* get() const { return skel_; }

 private:
  Skel* skel_ = nullptr;
};

#define HS_SKELETON_OPS(name)                                     \
  struct name##_ops {                                             \
    static struct name* open() { return name##__open(); }         \
    static int load(struct name* s) { return name##__load(s); }   \
    static void destroy(struct name* s) { name##__destroy(s); }   \
  }

// Attach one program; the error names the program.
Result<Link> attach_program(bpf_program* prog);

// Sum of a per-CPU array of __u64 counters (the kernel's `counters` map).
std::vector<uint64_t> read_percpu_counters(int map_fd, uint32_t n);

// Sum of bpf_prog_info.recursion_misses over the loaded programs of an object: invocations the kernel skipped
// because the same program was already running on that CPU (events lost before any of our code ran).
uint64_t prog_recursion_misses(const bpf_object* obj);

// What the running kernel offers for one tracepoint, probed without loading anything: the BTF-typed variant
// (tp_btf needs the `btf_trace_<event>` typedef in vmlinux BTF) and the classic one (tracefs
// events/<category>/<event>). The agent chooses each program's hook from this, and `doctor` predicts from the
// same answers, so the two cannot disagree.
class KernelHooks {
 public:
  KernelHooks();  // loads vmlinux BTF once (nothing when the kernel has none)
  ~KernelHooks();
  KernelHooks(const KernelHooks&) = delete;
  KernelHooks& operator=(const KernelHooks&) = delete;

  bool has_btf() const { return vmlinux_ != nullptr; }
  int btf_errno() const { return btf_errno_; }
  bool btf_tracepoint(std::string_view event) const;
  // Whether a trivial fexit program on kernel function `func` loads (BPF trampolines: JIT, BTF, and a kernel that
  // allows them; Debian's kernels do, some do not). "" when it loads, else why not (errno name).
  std::string fexit_error(const char* func) const;
  // nullopt: cannot tell (tracefs not mounted at `tracefs`, or not readable by this user).
  std::optional<bool> classic_tracepoint(std::string_view category, std::string_view event,
                                         const std::string& tracefs = "/sys/kernel/tracing") const;

 private:
  struct btf* vmlinux_ = nullptr;
  int btf_errno_ = 0;
};

// Route libbpf's own messages into spdlog (debug level unless they are warnings).
void route_libbpf_logs();

}  // namespace hostscope::bpf
