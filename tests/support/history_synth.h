#pragma once
// Synthetic history rows that look like a busy node's (unit tests measure bytes per row with them, hs_bench_history
// builds a 7-day store from them): edge `e` of a fixed population, deterministic from (edge, interval start).
#include <array>
#include <cstdint>
#include <string>

#include "agent/history/record.h"

namespace hostscope::history::synth {

// splitmix64: cheap, deterministic, good enough to spread the counters.
inline uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The Go main module of service `svc` (two in three services are Go binaries), as the identity resolver names it.
inline std::string go_module(uint64_t svc) {
  if (svc % 3 == 0) return "";
  return "github.com/example-org/svc-" + std::to_string(svc) + "@v1." + std::to_string(svc % 7) + "." +
         std::to_string(svc % 5);
}

// Edge `e`: a client service of 200, calling one of 50 servers on one of 4 ports, in one of 5 namespaces; every 7th
// edge calls out to an external address instead. Pod names carry a replica-set hash like Kubernetes', the workload is
// the service's name, and two in three services are Go binaries.
inline void identity(IntervalRow& r, uint64_t e) {
  const uint64_t client = e % 200, server = (e / 200) % 50, ns = e % 5;
  const std::string cns = "team-" + std::to_string(ns);
  r.client = {topology::NodeKind::Service, "svc-" + std::to_string(client), cns,
              "svc-" + std::to_string(client) + "-7d9f8c6b5-" + std::to_string(mix(e) % 100000),
              "10.244." + std::to_string(client / 250) + "." + std::to_string(client % 250 + 1),
              "svc-" + std::to_string(client), go_module(client)};
  if (e % 7 == 6) {
    r.server = {topology::NodeKind::External, "external", "", "",
                "203.0." + std::to_string((e / 250) % 250) + "." + std::to_string(e % 250 + 1), "", ""};
  } else {
    r.server = {topology::NodeKind::Service, "svc-" + std::to_string(server), "team-" + std::to_string(server % 5),
                "svc-" + std::to_string(server) + "-5c4b7f9d8-" + std::to_string(mix(e + 1) % 100000),
                "10.244.9." + std::to_string(server + 1), "svc-" + std::to_string(server), go_module(server)};
  }
  r.port = std::array<uint16_t, 4>{80, 443, 8080, 5432}[(e / 10000) % 4];  // distinct edges past 10k
  r.protocol = topology::Protocol::Tcp;
}

// One minute (or `width`) of edge `e` starting at `start`: a few to a few hundred connections, bytes in proportion,
// rare failures and retransmits, 2-4 latency buckets, one connection open at the end for every 4th edge.
inline IntervalRow row(uint64_t e, uint64_t start, uint64_t width) {
  IntervalRow r;
  identity(r, e);
  const uint64_t h = mix(e * 1'000'003ull + start / width);
  r.start_ns = start;
  r.end_ns = start + width;
  r.connections = 1 + h % 200;
  r.closed = r.connections - (h >> 8) % 2;
  r.failed_refused = (h >> 12) % 17 == 0 ? 1 + (h >> 16) % 3 : 0;
  r.failed_timed_out = (h >> 20) % 53 == 0 ? 1 : 0;
  r.resets = (h >> 24) % 29 == 0 ? 1 : 0;
  r.active = e % 4 == 0 ? 1 : 0;
  r.bytes_sent = r.connections * (200 + (h >> 28) % 2000);
  r.bytes_received = r.connections * (500 + (h >> 36) % 60000);
  r.retransmits = (h >> 44) % 11 == 0 ? (h >> 48) % 5 : 0;
  r.srtt_us = uint32_t(40 + (h >> 40) % 3000);
  // Latency: most samples in two neighbouring buckets around the RTT, a tail in a slower one.
  const size_t b = 5 + (h >> 52) % 6;
  r.latency[b] = r.connections * 3 / 4;
  r.latency[b + 1] = r.connections - r.latency[b];
  if ((h >> 58) % 3 == 0) r.latency[b + 5] = 1;
  r.latency_sum_us = r.latency[b] * (64ull << (b - 3)) + r.latency[b + 1] * (128ull << (b - 3));
  r.first_seen_ns = start - (e % 1000) * 3'600'000'000'000ull / 10;  // seen first up to 100 h before
  r.last_seen_ns = start + width - 1 - (h >> 4) % 1'000'000'000ull;
  return r;
}

}  // namespace hostscope::history::synth
