#include "agent/bpf/libbpf_util.h"

#include <bpf/btf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>

#include "agent/util/logging.h"

namespace hostscope::bpf {

Result<Link> attach_program(bpf_program* prog) {
  bpf_link* l = bpf_program__attach(prog);
  if (!l) return errorf_errno(errno, "bpf program {} ({}) attach failed", bpf_program__name(prog),
                              bpf_program__section_name(prog));
  return Link(l);
}

std::vector<uint64_t> read_percpu_counters(int map_fd, uint32_t n) {
  std::vector<uint64_t> sums(n, 0);
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return sums;
  std::vector<uint64_t> vals(static_cast<size_t>(ncpu));
  for (uint32_t i = 0; i < n; i++) {
    if (bpf_map_lookup_elem(map_fd, &i, vals.data()) != 0) continue;
    for (auto v : vals) sums[i] += v;
  }
  return sums;
}

uint64_t prog_recursion_misses(const bpf_object* obj) {
  uint64_t total = 0;
  bpf_program* p;
  bpf_object__for_each_program(p, obj) {
    int fd = bpf_program__fd(p);
    if (fd < 0) continue;
    bpf_prog_info info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) total += info.recursion_misses;
  }
  return total;
}

KernelHooks::KernelHooks() {
  vmlinux_ = btf__load_vmlinux_btf();
  if (!vmlinux_) btf_errno_ = errno ? errno : ENOENT;
}

KernelHooks::~KernelHooks() {
  if (vmlinux_) btf__free(vmlinux_);
}

bool KernelHooks::btf_tracepoint(std::string_view event) const {
  if (!vmlinux_) return false;
  std::string type = "btf_trace_" + std::string(event);
  return btf__find_by_name_kind(vmlinux_, type.c_str(), BTF_KIND_TYPEDEF) >= 0;
}

std::string KernelHooks::fexit_error(const char* func) const {
  if (!vmlinux_) return "no kernel BTF";
  int id = btf__find_by_name_kind(vmlinux_, func, BTF_KIND_FUNC);
  if (id < 0) return fmt::format("{} is not in the kernel's BTF", func);
  bpf_insn insns[2] = {};
  insns[0].code = BPF_ALU64 | BPF_MOV | BPF_K;  // r0 = 0
  insns[1].code = BPF_JMP | BPF_EXIT;
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_TRACE_FEXIT, .attach_btf_id = __u32(id));
  int fd = bpf_prog_load(BPF_PROG_TYPE_TRACING, "hs_fexit_probe", "GPL", insns, 2, &opts);
  if (fd < 0) return Error::errno_name(-fd);
  ::close(fd);
  return "";
}

std::optional<bool> KernelHooks::classic_tracepoint(std::string_view category, std::string_view event,
                                                    const std::string& tracefs) const {
  struct stat st{};
  if (::stat((tracefs + "/events").c_str(), &st) != 0) return std::nullopt;  // not mounted, or not ours to read
  std::string dir = tracefs + "/events/" + std::string(category) + "/" + std::string(event);
  if (::stat(dir.c_str(), &st) == 0) return true;
  if (errno == ENOENT) return false;
  return std::nullopt;  // EACCES: tracefs is root-only (0700)
}

static int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list args) {
  // Whole messages: a verifier log comes as one message of many lines, and its end says why a load failed.
  va_list again;
  va_copy(again, args);
  const int n = vsnprintf(nullptr, 0, fmt, args);
  std::string buf(n > 0 ? size_t(n) : 0, '\0');
  if (n > 0) vsnprintf(buf.data(), buf.size() + 1, fmt, again);
  va_end(again);
  while (!buf.empty() && buf.back() == '\n') buf.pop_back();
  // libbpf warns about things we handle ourselves (a probe that falls back); keep those at debug too, our own
  // message says what degrades.
  spdlog::debug("libbpf: {}", buf);
  return 0;
}

void route_libbpf_logs() { libbpf_set_print(libbpf_print); }

}  // namespace hostscope::bpf
