// `policy plan --impact` and `policy diff` benchmark (a program, not a test; no root): a node with S services (one
// policy each, R/S allow rules on distinct ports to distinct /32 peers, egress default deny) and E observed edges
// (a mix of allowed and denied ones), judged by the set in force and by a planned set that moves one port of every
// policy. Prints a markdown table; scripts/bench-impact.sh writes it into docs/benchmarks.md.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "policy/compiler.h"
#include "policy/impact.h"
#include "policy/loader.h"

using namespace hostscope;
using namespace hostscope::policy;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

std::string peer(size_t i) { return fmt::format("10.{}.{}.{}", 100 + (i >> 16) % 100, (i >> 8) & 255, i & 255); }

// `moved`: every policy's first port is one higher (the one-rule-per-policy change the plan is about).
std::string library(size_t services, size_t rules, bool moved) {
  std::string y;
  size_t per = std::max<size_t>(1, rules / services);
  for (size_t s = 0; s < services; ++s) {
    y += fmt::format("---\napiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata: {{name: svc{}}}\nsubject: {{service: svc{}}}\n"
                     "mode: enforce\ndefault: {{egress: deny}}\negress:\n",
                     s, s);
    for (size_t r = 0; r < per; ++r) {
      uint16_t port = uint16_t(1000 + r + (moved && r == 0 ? 5000 : 0));
      y += fmt::format("  - {{action: allow, peers: [{{cidr: {}/32}}], ports: [{}], protocol: tcp}}\n", peer(s * per + r), port);
    }
  }
  return y;
}

Context catalogue(size_t services) {
  Context c;
  for (size_t s = 0; s < services; ++s) c.services.push_back({fmt::format("svc{}", s), {fmt::format("/svc{}", s)}, {}, {}, "", "", "", ""});
  return c;
}

topology::TopologySnapshot observed(size_t services, size_t rules, size_t edges) {
  topology::TopologySnapshot t;
  size_t per = std::max<size_t>(1, rules / services);
  for (size_t i = 0; i < edges; ++i) {
    size_t s = i % services, r = (i / services) % per;
    topology::EdgeSnapshot e;
    e.client = {topology::NodeKind::Service, fmt::format("svc{}", s), "", "", "10.0.0.1"};
    bool allowed = i % 4 != 3;  // a quarter of the edges go somewhere no rule allows
    e.server = {topology::NodeKind::External, "external", "", "", allowed ? peer(s * per + r) : fmt::format("192.0.2.{}", i % 250 + 1)};
    e.port = uint16_t(allowed ? 1000 + r : 2000 + i % 1000);
    e.connections = 1 + i % 50;
    e.last_seen_ns = 1'700'000'000'000'000'000ull + i;
    t.edges.push_back(std::move(e));
  }
  return t;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = argc > 1 ? std::atoi(argv[1]) : 5;
  size_t edges = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 10000;
  std::printf("| services | rules | observed edges | load + lint + compile (both sets) | `plan --impact` judging (median) | "
              "edges changing verdict | newly denied |\n| --- | --- | --- | --- | --- | --- | --- |\n");
  for (auto [services, rules] : {std::pair<size_t, size_t>{102, 417}, {500, 10000}}) {
    auto ctx = catalogue(services);
    auto obs = observed(services, rules, edges);
    auto t0 = Clock::now();
    auto cur_loaded = load_text(library(services, rules, false), "lib.yaml");
    auto next_loaded = load_text(library(services, rules, true), "lib.yaml");
    auto cur = compile(cur_loaded, ctx), next = compile(next_loaded, ctx);
    double compile_ms = ms_since(t0);
    if (!cur.ok() || !next.ok()) {
      std::fprintf(stderr, "library does not compile\n");
      return 1;
    }
    std::vector<double> judge;
    ImpactReport r;
    for (int i = 0; i < rounds; ++i) {
      auto t = Clock::now();
      r = observed_impact({&*cur.ir, nullptr, "current"}, {&*next.ir, &next_loaded.set, "planned"}, ctx, obs);
      judge.push_back(ms_since(t));
    }
    size_t newly = std::count_if(r.changes.begin(), r.changes.end(), [](const ImpactChange& c) { return c.newly_denied(); });
    std::printf("| %zu | %zu | %zu | %.0f ms | %.0f ms | %zu | %zu |\n", services, services * std::max<size_t>(1, rules / services), r.edges,
                compile_ms, median(judge), r.changes.size(), newly);
  }
  return 0;
}
