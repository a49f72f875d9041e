#include "agent/topology/conntrack.h"

#include <arpa/inet.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace hostscope::topology {

Result<std::unique_ptr<NetfilterConntrack>> NetfilterConntrack::open(int netns_fd, int timeout_ms) {
  nfct_handle* h = nullptr;
  int err = 0;
  const char* step = "nfct_open";
  auto open_here = [&] {
    h = nfct_open(CONNTRACK, 0);
    if (!h) err = errno;
  };
  if (netns_fd < 0) {
    open_here();
  } else {
    // A netlink socket belongs to the namespace its creator was in; a short-lived thread enters the target
    // namespace so the caller's threads never change namespace.
    std::thread t([&] {
      if (setns(netns_fd, CLONE_NEWNET) != 0) {
        err = errno;
        step = "setns";
        return;
      }
      open_here();
    });
    t.join();
  }
  if (!h) return errorf_errno(err ? err : EIO, "conntrack netlink socket: {} failed", step);
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  if (setsockopt(nfct_fd(h), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
    int e = errno;
    nfct_close(h);
    return errorf_errno(e, "conntrack netlink socket: setsockopt SO_RCVTIMEO failed");
  }
  return std::unique_ptr<NetfilterConntrack>(new NetfilterConntrack(h));
}

NetfilterConntrack::~NetfilterConntrack() {
  if (h_) nfct_close(h_);
}

namespace {

struct Answer {
  bool found = false;
  Family family = Family::None;
  Destination dest;
};

int on_entry(enum nf_conntrack_msg_type, struct nf_conntrack* ct, void* data) {
  auto* a = static_cast<Answer*>(data);
  a->found = true;
  IpAddr addr;
  addr.family = a->family;
  if (a->family == Family::V4) {
    uint32_t v = nfct_get_attr_u32(ct, ATTR_REPL_IPV4_SRC);
    std::memcpy(addr.bytes.data(), &v, 4);
  } else if (const void* p = nfct_get_attr(ct, ATTR_REPL_IPV6_SRC)) {
    std::memcpy(addr.bytes.data(), p, 16);
  }
  a->dest.addr = addr;
  a->dest.port = ntohs(nfct_get_attr_u16(ct, ATTR_REPL_PORT_SRC));
  return NFCT_CB_STOP;
}

}  // namespace

Result<std::optional<Destination>> NetfilterConntrack::actual_destination(const FlowTuple& t) {
  if (t.src.family != t.dst.family || (t.src.family != Family::V4 && t.src.family != Family::V6))
    return errorf("conntrack lookup: mixed or unknown address family");
  std::unique_ptr<nf_conntrack, void (*)(nf_conntrack*)> ct(nfct_new(), nfct_destroy);
  if (!ct) return errorf_errno(ENOMEM, "conntrack lookup: nfct_new failed");
  if (t.src.family == Family::V4) {
    nfct_set_attr_u8(ct.get(), ATTR_L3PROTO, AF_INET);
    uint32_t s, d;
    std::memcpy(&s, t.src.bytes.data(), 4);
    std::memcpy(&d, t.dst.bytes.data(), 4);
    nfct_set_attr_u32(ct.get(), ATTR_IPV4_SRC, s);
    nfct_set_attr_u32(ct.get(), ATTR_IPV4_DST, d);
  } else {
    nfct_set_attr_u8(ct.get(), ATTR_L3PROTO, AF_INET6);
    nfct_set_attr(ct.get(), ATTR_IPV6_SRC, t.src.bytes.data());
    nfct_set_attr(ct.get(), ATTR_IPV6_DST, t.dst.bytes.data());
  }
  nfct_set_attr_u8(ct.get(), ATTR_L4PROTO, t.protocol == Protocol::Udp ? IPPROTO_UDP : IPPROTO_TCP);
  nfct_set_attr_u16(ct.get(), ATTR_PORT_SRC, htons(t.sport));
  nfct_set_attr_u16(ct.get(), ATTR_PORT_DST, htons(t.dport));

  // A reply that arrived after an earlier lookup timed out would otherwise be read as this lookup's answer.
  char junk[8192];
  while (recv(nfct_fd(h_), junk, sizeof(junk), MSG_DONTWAIT) > 0) {
  }

  Answer a;
  a.family = t.src.family;
  nfct_callback_register(h_, NFCT_T_ALL, on_entry, &a);
  int rc = nfct_query(h_, NFCT_Q_GET, ct.get());
  int err = errno;
  nfct_callback_unregister(h_);
  if (rc != 0) {
    if (err == ENOENT) return std::optional<Destination>{};
    return errorf_errno(err, "conntrack lookup {} -> {}: NFCT_Q_GET failed", format_addr_port(t.src, t.sport),
                        format_addr_port(t.dst, t.dport));
  }
  if (!a.found) return std::optional<Destination>{};
  return std::optional<Destination>{a.dest};
}

}  // namespace hostscope::topology
