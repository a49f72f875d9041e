#include "agent/identity/local_endpoints.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <set>
#include <tuple>

#include "agent/util/logging.h"

namespace hostscope::identity {

namespace fs = std::filesystem;

namespace {

// Splits on spaces and tabs, empty fields dropped.
std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) i++;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') j++;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

template <typename F>
void for_each_line(std::string_view text, F f) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    f(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

bool hex_byte(char hi, char lo, uint8_t& out) {
  auto v = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  int h = v(hi), l = v(lo);
  if (h < 0 || l < 0) return false;
  out = uint8_t(h << 4 | l);
  return true;
}

template <typename T>
bool parse_num(std::string_view s, T& out, int base = 10) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return !s.empty() && r.ec == std::errc() && r.ptr == s.data() + s.size();
}

void add_unique(std::vector<std::string>& v, std::string s) {
  if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(std::move(s));
}

}  // namespace

std::vector<std::string> parse_if_inet6(std::string_view text, size_t* malformed) {
  // "fe800000000000000000000000000001 02 40 20 80     eth0": address, ifindex, prefix length, scope, flags, name.
  std::vector<std::string> out;
  for_each_line(text, [&](std::string_view line) {
    auto f = fields(line);
    if (f.empty()) return;
    in6_addr a{};
    bool ok = f.size() == 6 && f[0].size() == 32;
    for (size_t i = 0; ok && i < 16; i++) ok = hex_byte(f[0][2 * i], f[0][2 * i + 1], a.s6_addr[i]);
    if (!ok) {
      if (malformed) ++*malformed;
      return;
    }
    if (IN6_IS_ADDR_LOOPBACK(&a) || IN6_IS_ADDR_LINKLOCAL(&a) || IN6_IS_ADDR_UNSPECIFIED(&a)) return;
    char buf[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET6, &a, buf, sizeof(buf))) add_unique(out, buf);
  });
  return out;
}

std::vector<std::string> parse_fib_trie(std::string_view text, size_t* malformed) {
  // Main:
  //   +-- 0.0.0.0/0 3 0 5          (an inner node: a prefix)
  //      |-- 10.0.2.15             (a leaf: an address)
  //         /32 host LOCAL         (its routes; "host LOCAL" makes it an address of this namespace)
  std::vector<std::string> out;
  std::optional<in_addr> leaf;
  for_each_line(text, [&](std::string_view line) {
    auto f = fields(line);
    if (f.empty()) return;
    if (f[0] == "|--") {
      leaf.reset();
      in_addr a{};
      std::string s(f.size() > 1 ? f[1] : std::string_view{});
      if (f.size() == 2 && inet_pton(AF_INET, s.c_str(), &a) == 1) leaf = a;
      else if (malformed) ++*malformed;
      return;
    }
    if (f[0] == "+--") {
      leaf.reset();
      return;
    }
    if (f[0].front() != '/') return;  // table names ("Main:", "Local:"), anything else
    if (!(f.size() >= 3 && f[0] == "/32" && f[1] == "host" && f[2] == "LOCAL") || !leaf) return;
    uint32_t h = ntohl(leaf->s_addr);
    if ((h >> 24) == 127 || (h >> 16) == 0xa9fe) return;  // 127.0.0.0/8, 169.254.0.0/16
    char buf[INET_ADDRSTRLEN];
    if (inet_ntop(AF_INET, &*leaf, buf, sizeof(buf))) add_unique(out, buf);
  });
  return out;
}

std::vector<ListeningSocket> parse_proc_net_tcp_listening(std::string_view text, size_t* malformed) {
  //   sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout inode
  //    0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 ...
  std::vector<ListeningSocket> out;
  bool header = true;
  for_each_line(text, [&](std::string_view line) {
    if (header) {
      header = false;
      return;
    }
    auto f = fields(line);
    if (f.empty()) return;
    ListeningSocket s;
    size_t colon = f.size() >= 10 ? f[1].rfind(':') : std::string_view::npos;
    if (colon == std::string_view::npos || f[0].back() != ':' || f[3].size() != 2 ||
        !parse_num(f[1].substr(colon + 1), s.port, 16) || !parse_num(f[9], s.inode)) {
      if (malformed) ++*malformed;
      return;
    }
    if (f[3] != "0A" || s.inode == 0) return;
    out.push_back(s);
  });
  return out;
}

namespace {
// The inode of a "<kind>:[12345]" link target (fd links, namespace links); 0 for anything else.
uint64_t inode_of_link(std::string_view target, std::string_view kind) {
  if (target.size() < kind.size() + 3 || target.substr(0, kind.size()) != kind ||
      target.substr(kind.size(), 2) != ":[" || target.back() != ']')
    return 0;
  uint64_t ino = 0;
  return parse_num(target.substr(kind.size() + 2, target.size() - kind.size() - 3), ino) ? ino : 0;
}
}  // namespace

uint64_t socket_inode_of_link(std::string_view target) { return inode_of_link(target, "socket"); }
uint64_t netns_inode_of_link(std::string_view target) { return inode_of_link(target, "net"); }

bool AddressOwner::operator<(const AddressOwner& o) const {
  return std::tie(address, service, k8s_namespace, workload, pod, netns) <
         std::tie(o.address, o.service, o.k8s_namespace, o.workload, o.pod, o.netns);
}

const AddressOwner* LocalEndpointsSnapshot::owner_of(std::string_view address) const {
  auto it = std::lower_bound(owners.begin(), owners.end(), address,
                             [](const AddressOwner& o, std::string_view a) { return o.address < a; });
  return it != owners.end() && it->address == address ? &*it : nullptr;
}

std::vector<std::string> LocalEndpointsSnapshot::addresses_of(std::string_view service) const {
  std::vector<std::string> out;
  for (const auto& o : owners)
    if (o.service == service) add_unique(out, o.address);
  return out;
}

uint64_t generation_of(const ProcessTable& table) {
  auto s = table.stats();
  return s.exec_events + s.exit_events;
}

LocalEndpoints::LocalEndpoints(LocalEndpointsOptions o) : opts_(std::move(o)) {}

std::shared_ptr<const LocalEndpointsSnapshot> LocalEndpoints::get(const std::function<Processes()>& processes,
                                                                  uint64_t generation) {
  std::lock_guard lk(mu_);
  auto now = opts_.clock();
  if (cached_) {
    auto age = now - cached_->taken;
    bool stale = age >= opts_.max_age || (generation != generation_ && age >= opts_.min_interval);
    if (!stale) return cached_;
  }
  generation_ = generation;
  cached_ = read_locked(processes());
  return cached_;
}

std::shared_ptr<const LocalEndpointsSnapshot> LocalEndpoints::get(const ProcessTable& table) {
  return get([&table] { return table.snapshot(); }, generation_of(table));
}

std::shared_ptr<const LocalEndpointsSnapshot> LocalEndpoints::read(const Processes& processes) {
  std::lock_guard lk(mu_);
  cached_ = read_locked(processes);
  return cached_;
}

LocalEndpointsStats LocalEndpoints::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

void LocalEndpoints::note_error(const Error& e) {
  stats_.read_errors++;
  stats_.last_error = e.str();
  spdlog::debug("local endpoints: {}", stats_.last_error);
}

Result<std::string> LocalEndpoints::read_net_file(uint32_t pid, const char* name) {
  auto text = read_small_file(opts_.proc_root / std::to_string(pid) / "net" / name, opts_.max_file_bytes + 1);
  if (!text) return text;
  if (text->size() > opts_.max_file_bytes) {
    stats_.files_truncated++;
    // Parse whole lines only: a cut line would read as malformed (or, worse, as a shorter number).
    text->resize(opts_.max_file_bytes);
    text->resize(text->rfind('\n') == std::string::npos ? 0 : text->rfind('\n') + 1);
  }
  return text;
}

bool LocalEndpoints::read_addresses(uint32_t pid, std::vector<std::string>& out) {
  auto v6 = read_net_file(pid, "if_inet6");
  auto v4 = read_net_file(pid, "fib_trie");
  // A namespace without IPv6 has no if_inet6 (ENOENT): not an error when fib_trie was read.
  if (!v4) {
    note_error(v4.error());
    return false;
  }
  size_t bad = 0;
  out = parse_fib_trie(*v4, &bad);
  if (v6) {
    for (auto& a : parse_if_inet6(*v6, &bad)) add_unique(out, std::move(a));
  } else if (v6.error().err != ENOENT) {
    note_error(v6.error());
  }
  stats_.malformed_lines += bad;
  if (out.size() > opts_.max_addresses_per_namespace) {
    stats_.addresses_dropped += out.size() - opts_.max_addresses_per_namespace;
    out.resize(opts_.max_addresses_per_namespace);
  }
  return true;
}

bool LocalEndpoints::read_listeners(uint32_t pid, std::map<uint64_t, uint16_t>& out) {
  bool any = false;
  size_t bad = 0;
  for (const char* f : {"tcp", "tcp6"}) {
    auto text = read_net_file(pid, f);
    if (!text) {
      if (text.error().err != ENOENT) note_error(text.error());  // tcp6 is missing without IPv6
      continue;
    }
    any = true;
    for (const auto& s : parse_proc_net_tcp_listening(*text, &bad)) {
      if (out.size() >= opts_.max_listeners_per_namespace && !out.count(s.inode)) {
        stats_.listeners_dropped++;
        continue;
      }
      out[s.inode] = s.port;
    }
  }
  stats_.malformed_lines += bad;
  return any;
}

void LocalEndpoints::ports_of(uint32_t pid, const std::map<uint64_t, uint16_t>& listeners, std::vector<uint16_t>& out) {
  if (listeners.empty()) return;
  fs::path dir = opts_.proc_root / std::to_string(pid) / "fd";
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    note_error(errorf_errno(ec.value(), "list {}", dir.string()));
    return;
  }
  size_t seen = 0;
  char buf[64];
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    if (seen++ >= opts_.max_fds_per_process) {
      stats_.fds_dropped++;
      continue;
    }
    ssize_t n = ::readlink(it->path().c_str(), buf, sizeof(buf));
    if (n <= 0) continue;  // closed meanwhile
    uint64_t ino = socket_inode_of_link(std::string_view(buf, size_t(n)));
    if (auto l = listeners.find(ino); ino && l != listeners.end())
      if (std::find(out.begin(), out.end(), l->second) == out.end()) out.push_back(l->second);
  }
}

struct LocalEndpoints::Namespace {
  std::vector<const ProcessIdentity*> procs;  // processes with a service, in pid order
  bool host = false;
};

std::shared_ptr<LocalEndpointsSnapshot> LocalEndpoints::read_locked(const Processes& processes) {
  auto snap = std::make_shared<LocalEndpointsSnapshot>();
  snap->taken = opts_.clock();
  stats_.refreshes++;

  // The link's text ("net:[4026531840]") is the namespace's id.
  auto netns_of = [&](uint32_t pid) -> uint64_t {
    fs::path p = opts_.proc_root / std::to_string(pid) / "ns" / "net";
    char buf[64];
    ssize_t n = ::readlink(p.c_str(), buf, sizeof(buf));
    if (n < 0) {
      if (errno != ENOENT) note_error(errorf_errno(errno, "readlink {}", p.string()));
      return 0;
    }
    uint64_t ino = netns_inode_of_link(std::string_view(buf, size_t(n)));
    if (!ino) note_error(errorf("readlink {}: unexpected target '{}'", p.string(), std::string_view(buf, size_t(n))));
    return ino;
  };

  // Group the known processes by network namespace; the host's comes first and always gets read.
  std::map<uint64_t, Namespace> by_ns;
  std::set<uint64_t> dropped;
  uint32_t host_pid = 0;
  uint64_t host_ns = 0;
  for (uint32_t pid : opts_.host_pids)
    if ((host_ns = netns_of(pid))) {
      host_pid = pid;
      break;
    }
  if (host_ns) by_ns[host_ns].host = true;
  for (const auto& p : processes) {
    if (!p || p->exe.empty() || p->service.empty()) continue;  // kernel threads, processes without a name
    uint64_t ns = netns_of(p->pid);
    if (!ns) continue;  // exited since the snapshot
    auto it = by_ns.find(ns);
    if (it == by_ns.end()) {
      if (by_ns.size() >= opts_.max_namespaces) {
        if (dropped.insert(ns).second) stats_.namespaces_dropped++;
        continue;
      }
      it = by_ns.emplace(ns, Namespace{}).first;
    }
    it->second.procs.push_back(p.get());
  }

  uint64_t shared = 0;
  for (auto& [ino, ns] : by_ns) {
    // One process reads for the whole namespace; the next one is tried if it exited meanwhile.
    std::vector<uint32_t> readers;
    if (ns.host) readers.push_back(host_pid);
    for (auto* p : ns.procs) readers.push_back(p->pid);
    std::vector<std::string> addrs;
    std::map<uint64_t, uint16_t> listeners;
    bool read = false;
    for (uint32_t pid : readers) {
      if (netns_of(pid) != ino) continue;  // exited, or moved to another namespace
      if (!read_addresses(pid, addrs)) continue;
      read_listeners(pid, listeners);
      read = true;
      break;
    }
    if (!read) continue;
    snap->namespaces++;

    std::set<std::string> services;
    for (auto* p : ns.procs) {
      auto& ports = snap->ports[p->service];
      ports_of(p->pid, listeners, ports);
      services.insert(p->service);
    }
    if (ns.host) {
      snap->node_addresses = std::move(addrs);
      continue;
    }
    if (services.size() > 1) shared++;
    std::set<std::tuple<std::string, std::string, std::string, std::string>> who;
    for (auto* p : ns.procs) who.emplace(p->service, p->k8s_namespace, p->workload, p->pod);
    for (const auto& a : addrs)
      for (const auto& [svc, kns, wl, pod] : who) snap->owners.push_back({a, svc, kns, wl, pod, ino});
  }
  stats_.shared_namespaces = shared;

  std::sort(snap->node_addresses.begin(), snap->node_addresses.end());
  std::sort(snap->owners.begin(), snap->owners.end());
  for (auto it = snap->ports.begin(); it != snap->ports.end();) {
    if (it->second.empty()) {
      it = snap->ports.erase(it);
      continue;
    }
    std::sort(it->second.begin(), it->second.end());
    ++it;
  }
  return snap;
}

}  // namespace hostscope::identity
