// Exporters without root: the Prometheus text built from real topology-store snapshots (exact values, labels,
// histogram buckets, expiry, the series cap), promtool check metrics on it, the event sink's rotation and
// back-pressure, and the Grafana dashboard's queries against the names the exporter exposes.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <httplib.h>

#include "agent/daemon/event_counter.h"
#include "agent/daemon/policy_health.h"
#include "agent/topology/topology.h"
#include "exporters/endpoint_metrics.h"
#include "exporters/event_sink.h"
#include "exporters/metrics_server.h"
#include "exporters/policy_metrics.h"
#include "exporters/topology_metrics.h"

namespace hostscope::exporters {
namespace {

namespace fs = std::filesystem;
using events::ConnectionEvent;
using events::Kind;
using events::Outcome;
using events::Role;

constexpr uint64_t kSec = 1'000'000'000ull;
constexpr uint64_t kT0 = 1'700'000'000ull * kSec;

ConnectionEvent ev(Kind kind, const char* local, uint16_t lport, const char* remote, uint16_t rport) {
  ConnectionEvent e;
  e.kind = kind;
  e.role = Role::Active;
  e.saddr = *IpAddr::parse(local);
  e.daddr = *IpAddr::parse(remote);
  e.sport = lport;
  e.dport = rport;
  e.netns = 4026531840u;
  e.open_seen = true;
  e.established = true;
  e.outcome = kind == Kind::Close ? Outcome::Closed : Outcome::None;
  return e;
}

// What the agent's exporter asks the store for: the snapshot with the latency histograms.
topology::TopologySnapshot snap(const topology::Topology& t, uint64_t now) {
  topology::SnapshotFilter f;
  f.latency_buckets = true;
  return t.snapshot(now, f);
}

topology::Endpoint svc(std::string name, std::string ns) { return topology::Endpoint{name, ns, "", 42}; }

// `n` connections from web (ns shop) to a remote server, each with `bytes` each way and a connect latency.
void connections(topology::Topology& t, const char* server, uint16_t port, int n, uint64_t bytes,
                 uint64_t latency_us, uint64_t now, uint16_t first_cport = 40000) {
  for (int i = 0; i < n; ++i) {
    auto open = ev(Kind::Open, "10.0.0.5", uint16_t(first_cport + i), server, port);
    open.connect_latency_ns = latency_us * 1000;
    t.ingest(open, svc("web", "shop"), std::nullopt, now);
    auto close = open;
    close.kind = Kind::Close;
    close.outcome = Outcome::Closed;
    close.bytes_sent = bytes;
    close.bytes_received = 2 * bytes;
    close.retransmits = 1;
    t.ingest(close, svc("web", "shop"), std::nullopt, now);
  }
}

void refused(topology::Topology& t, const char* server, uint16_t port, int n, uint64_t now) {
  for (int i = 0; i < n; ++i) {
    auto e = ev(Kind::Close, "10.0.0.5", uint16_t(50000 + i), server, port);
    e.established = false;
    e.outcome = Outcome::Refused;
    t.ingest(e, svc("web", "shop"), std::nullopt, now);
  }
}

// The value of the one sample line starting with `series` (name and labels exactly as written); -1 when absent.
double value_of(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  double v = -1;
  int found = 0;
  while (std::getline(in, line))
    if (line.rfind(series + " ", 0) == 0) {
      v = std::stod(line.substr(series.size() + 1));
      ++found;
    }
  return found == 1 ? v : (found ? -2 : -1);
}

size_t count_lines(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) n += line.rfind(prefix, 0) == 0;
  return n;
}

const std::string kEdge =
    R"({src_service="web",src_namespace="shop",src_address="",dst_service="93.184.216.34",dst_namespace="",)"
    R"(dst_address="93.184.216.34",dst_port="443",node="n1"})";

TEST(Exporters, TopologyCountersLabelsAndHistogramFromTheStore) {
  topology::Topology t({}, kT0);
  connections(t, "93.184.216.34", 443, 5, 1000, 100, kT0);  // 100 us: below the 128 us bound
  connections(t, "93.184.216.34", 443, 2, 1000, 3000, kT0, 41000);  // 3 ms
  refused(t, "93.184.216.34", 443, 3, kT0);
  Exposition out;
  auto st = write_topology(out, snap(t, kT0), "n1", 100000);
  const auto& s = out.text();
  EXPECT_EQ(st.edges, 1u);
  EXPECT_EQ(value_of(s, "hostscope_connections_opened_total" + kEdge), 7);
  EXPECT_EQ(value_of(s, "hostscope_connections_closed_total" + kEdge), 7);
  EXPECT_EQ(value_of(s, "hostscope_connections_active" + kEdge), 0);
  EXPECT_EQ(value_of(s, "hostscope_connection_sent_bytes_total" + kEdge), 7000);
  EXPECT_EQ(value_of(s, "hostscope_connection_received_bytes_total" + kEdge), 14000);
  EXPECT_EQ(value_of(s, "hostscope_connection_retransmits_total" + kEdge), 7);
  EXPECT_EQ(value_of(s, "hostscope_connection_resets_total" + kEdge), 0);
  std::string failed = kEdge;
  failed.insert(failed.size() - 1, R"(,reason="refused")");
  EXPECT_EQ(value_of(s, "hostscope_connections_failed_total" + failed), 3);
  auto bucket = [&](const std::string& le) {
    std::string l = kEdge;
    l.insert(l.size() - 1, ",le=\"" + le + "\"");
    return value_of(s, "hostscope_connect_duration_seconds_bucket" + l);
  };
  EXPECT_EQ(bucket("6.4e-05"), 0);
  EXPECT_EQ(bucket("0.000128"), 5);
  EXPECT_EQ(bucket("0.002048"), 5);
  EXPECT_EQ(bucket("0.004096"), 7);
  EXPECT_EQ(bucket("+Inf"), 7);
  EXPECT_EQ(value_of(s, "hostscope_connect_duration_seconds_count" + kEdge), 7);
  EXPECT_DOUBLE_EQ(value_of(s, "hostscope_connect_duration_seconds_sum" + kEdge), (5 * 100 + 2 * 3000) / 1e6);
  // No ephemeral client port anywhere.
  EXPECT_EQ(s.find("40000"), std::string::npos);
  EXPECT_EQ(s.find("50000"), std::string::npos);
}

// src_address/dst_address: an end's own address (external ends; network ends with `topology.network_ends: address`),
// so the cluster view can join it with hostscope_endpoint_info; empty where the store only knows the most recently
// seen one (service ends, network ends keyed by network), which would name the wrong peer.
std::string network_edge(const std::string& src_address, const std::string& dst_address) {
  return R"({src_service="web",src_namespace="shop",src_address=")" + src_address +
         R"(",dst_service="cluster-pods",dst_namespace="",dst_address=")" + dst_address +
         R"(",dst_port="80",node="n1"})";
}

std::string two_pods_exposition(topology::NetworkEnds mode) {
  topology::TopologyConfig cfg;
  cfg.networks = *topology::NetworkMap::build({{"cluster-pods", {"10.244.0.0/16"}}});
  cfg.network_ends = mode;
  cfg.hold_linger_ns = 0;
  topology::Topology t(cfg, kT0);
  connections(t, "10.244.1.5", 80, 2, 100, 50, kT0);
  connections(t, "10.244.2.6", 80, 3, 100, 50, kT0, 41000);
  Exposition out;
  write_topology(out, snap(t, kT0), "n1", 100000);
  return out.text();
}

TEST(Exporters, NetworkEndsByAddressAreOneSeriesPerAddressWithTheAddressLabel) {
  const auto s = two_pods_exposition(topology::NetworkEnds::Address);
  EXPECT_EQ(value_of(s, "hostscope_connections_opened_total" + network_edge("", "10.244.1.5")), 2) << s;
  EXPECT_EQ(value_of(s, "hostscope_connections_opened_total" + network_edge("", "10.244.2.6")), 3);
  EXPECT_EQ(value_of(s, "hostscope_connection_sent_bytes_total" + network_edge("", "10.244.2.6")), 300);
  EXPECT_EQ(count_lines(s, "hostscope_connections_opened_total{"), 2u);
}

TEST(Exporters, NetworkEndsByNetworkHaveNoAddressLabelValue) {
  const auto s = two_pods_exposition(topology::NetworkEnds::Network);
  EXPECT_EQ(value_of(s, "hostscope_connections_opened_total" + network_edge("", "")), 5) << s;
  EXPECT_EQ(count_lines(s, "hostscope_connections_opened_total{"), 1u);
  EXPECT_EQ(s.find("10.244."), std::string::npos) << "the most recently seen address is not exported";
}

TEST(Exporters, ExpiredEdgesLeaveTheExposition) {
  topology::TopologyConfig cfg;
  cfg.edge_idle_timeout_ns = 10 * kSec;
  topology::Topology t(cfg, kT0);
  connections(t, "93.184.216.34", 443, 1, 10, 50, kT0);
  connections(t, "198.51.100.7", 80, 1, 10, 50, kT0 + 8 * kSec);
  uint64_t now = kT0 + 8 * kSec;
  MetricsRegistry reg({"127.0.0.1:0", 100000, "n1"}, [&] { return snap(t, now); }, nullptr);
  auto before = reg.render();
  EXPECT_EQ(value_of(before, "hostscope_connections_opened_total" + kEdge), 1);
  EXPECT_EQ(count_lines(before, "hostscope_connections_opened_total{"), 2u);
  now = kT0 + 15 * kSec;
  t.tick(now);
  auto after = reg.render();
  EXPECT_EQ(value_of(after, "hostscope_connections_opened_total" + kEdge), -1);
  EXPECT_EQ(after.find("93.184.216.34"), std::string::npos);
  EXPECT_EQ(count_lines(after, "hostscope_connections_opened_total{"), 1u);
}

TEST(Exporters, SeriesCapKeepsTheOldestEdgesAndCountsTheRefused) {
  topology::Topology t({}, kT0);
  // Ten edges, oldest first: 10.1.0.1 .. 10.1.0.10; each has 7 base series + 22 histogram series.
  for (int i = 1; i <= 10; ++i) {
    auto addr = "10.1.0." + std::to_string(i);
    connections(t, addr.c_str(), 80, 1, 10, 50, kT0 + uint64_t(i) * kSec, uint16_t(40000 + 10 * i));
  }
  const uint64_t per_edge = 7 + 19 + 3;
  MetricsRegistry reg({"127.0.0.1:0", 3 * per_edge + 5, "n1"}, [&] { return snap(t, kT0 + 20 * kSec); },
                      nullptr);
  auto s = reg.render();
  EXPECT_EQ(count_lines(s, "hostscope_connections_opened_total{"), 3u);
  for (int i = 1; i <= 3; ++i) EXPECT_NE(s.find("dst_service=\"10.1.0." + std::to_string(i) + "\""), std::string::npos);
  EXPECT_EQ(s.find("dst_service=\"10.1.0.4\""), std::string::npos);
  EXPECT_EQ(value_of(s, "hostscope_metrics_topology_series"), 3 * per_edge);
  EXPECT_EQ(value_of(s, "hostscope_metrics_series_refused_total"), 7 * per_edge);
  s = reg.render();  // the counter sums refusals over scrapes
  EXPECT_EQ(value_of(s, "hostscope_metrics_series_refused_total"), 14 * per_edge);
  // A cap of 0 writes no topology series at all.
  MetricsRegistry none({"127.0.0.1:0", 0, "n1"}, [&] { return snap(t, kT0 + 20 * kSec); }, nullptr);
  s = none.render();
  EXPECT_EQ(count_lines(s, "hostscope_connections_opened_total{"), 0u);
  EXPECT_EQ(value_of(s, "hostscope_metrics_series_refused_total"), 10 * per_edge);
}

TEST(Exporters, LabelValuesAreEscaped) {
  topology::Topology t({}, kT0);
  auto open = ev(Kind::Open, "10.0.0.5", 40000, "10.0.0.9", 80);
  t.ingest(open, svc("we\"b\\x\ny", "shop"), std::nullopt, kT0);
  Exposition out;
  write_topology(out, snap(t, kT0), "n1", 1000);
  EXPECT_NE(out.text().find(R"(src_service="we\"b\\x\ny")"), std::string::npos) << out.text();
}

TEST(Exporters, EndpointInfoOneSeriesPerAddressWithinTheCap) {
  std::vector<EndpointInfo> eps = {{"192.0.2.10", "", "", "", ""},
                                   {"10.244.1.7", "shop/web", "shop", "web", "web-7d4b9c8f6d-x2x4z"},
                                   {"fd00::7", "shop/web", "shop", "web", "web-7d4b9c8f6d-x2x4z"}};
  Exposition out;
  EXPECT_EQ(write_endpoint_info(out, eps, "n1", 100), 3u);
  const auto& s = out.text();
  EXPECT_EQ(value_of(s, R"(hostscope_endpoint_info{address="10.244.1.7",service="shop/web",namespace="shop",workload="web",pod="web-7d4b9c8f6d-x2x4z",node="n1"})"), 1);
  EXPECT_EQ(value_of(s, R"(hostscope_endpoint_info{address="192.0.2.10",service="",namespace="",workload="",pod="",node="n1"})"), 1);
  EXPECT_EQ(count_lines(s, "hostscope_endpoint_info{"), 3u);
  EXPECT_EQ(value_of(s, "hostscope_endpoint_info_refused"), 0);
  Exposition capped;
  EXPECT_EQ(write_endpoint_info(capped, eps, "n1", 2), 2u);
  EXPECT_EQ(count_lines(capped.text(), "hostscope_endpoint_info{"), 2u);
  EXPECT_EQ(value_of(capped.text(), "hostscope_endpoint_info_refused"), 1);
}

TEST(Exporters, ListenAddressParsing) {
  auto a = parse_listen("127.0.0.1:9477");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9477);
  auto b = parse_listen("[::1]:80");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 80);
  for (auto bad : {"9477", ":9477", "127.0.0.1:", "127.0.0.1:70000", "127.0.0.1:9x", "::1:80", "[::1]80"})
    EXPECT_FALSE(parse_listen(bad)) << bad;
}

TEST(Exporters, ServesMetricsOverHttpAndReportsATakenPort) {
  topology::Topology t({}, kT0);
  connections(t, "93.184.216.34", 443, 2, 10, 50, kT0);
  MetricsRegistry reg({"127.0.0.1:0", 1000, "n1"}, [&] { return snap(t, kT0); }, nullptr);
  MetricsServer srv(reg);
  auto st = srv.start("127.0.0.1:0");
  ASSERT_TRUE(st) << st.error().str();
  ASSERT_GT(srv.port(), 0);
  httplib::Client cli("127.0.0.1", srv.port());
  auto res = cli.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(value_of(res->body, "hostscope_connections_opened_total" + kEdge), 2);
  // The same port again: a clear error naming the address, nothing served.
  MetricsServer second(reg);
  auto taken = second.start("127.0.0.1:" + std::to_string(srv.port()));
  ASSERT_FALSE(taken);
  EXPECT_NE(taken.error().str().find("127.0.0.1:" + std::to_string(srv.port())), std::string::npos)
      << taken.error().str();
  srv.stop();
}

std::string run(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    *status = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  *status = pclose(p);
  return out;
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "hs-exp-XXXXXX").string();
    path = mkdtemp(t.data()) ? fs::path(t) : fs::path();
  }
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

// Every collector the agent has, over a store with failures, a histogram, escaping and several edges.
std::string full_exposition(const fs::path& state_dir) {
  static topology::Topology t({}, kT0);
  static bool filled = false;
  if (!filled) {
    connections(t, "93.184.216.34", 443, 5, 1000, 100, kT0);
    refused(t, "93.184.216.34", 443, 2, kT0);
    connections(t, "10.1.0.1", 5432, 3, 10, 9000, kT0, 42000);
    filled = true;
  }
  // Event counts come from the agent's counter, as plain values in the health.
  daemon::EventCounter events;
  ConnectionEvent e = ev(Kind::Open, "10.0.0.5", 1, "10.0.0.6", 2);
  events.count(std::span(&e, 1));
  MetricsRegistry reg({"127.0.0.1:0", 100000, "n1"}, [&] { return snap(t, kT0); }, [&] {
    AgentHealth h;
    h.version = "0.1.0+test";
    h.lost_by_source = {{"kernel_ring_buffer", 1}, {"user_space_queue", 2}};
    h.maps = {{"tcp_socks", 3, 65536}};
    h.identity_hits = {{"processes", 4}};
    h.identity_misses = {{"processes", 5}};
    h.topology = {{"edges_expired", 6}};
    h.events = events.counts();
    return h;
  });
  daemon::PolicyHealthOptions po;
  po.iptables.command_prefix = {"false"};  // no backend here: status fails, the families stay
  po.iptables.state_dir = state_dir.string();
  auto pr = std::make_shared<daemon::PolicyHealthReader>(po);
  reg.add_collector([pr](Exposition& out) { write_policy_health(out, pr->read()); });
  EventSinkOptions so;
  so.output = "file";
  so.file = (state_dir / "events.jsonl").string();
  auto sink = EventSink::open(so);
  if (sink) reg.add_collector([s = std::shared_ptr<EventSink>(std::move(*sink))](Exposition& out) { s->write_metrics(out); });
  reg.add_collector([](Exposition& out) {
    write_endpoint_info(out, {{"10.244.1.7", "shop/web", "shop", "web", "web-1"}, {"192.0.2.10", "", "", "", ""}}, "n1", 100);
  });
  return reg.render();
}

TEST(Exporters, PromtoolAcceptsTheExposition) {
  TempDir d;
  ASSERT_FALSE(d.path.empty());
  policy::ReconcileStatus rs;
  rs.generation = 3;
  rs.applied_commit = "0123abc";
  rs.attempts = {{"applied", 3}, {"refused", 1}};
  rs.drift_repairs = 2;
  std::ofstream(d.path / "reconcile.json") << rs.to_json().dump();
  auto text = full_exposition(d.path);
  EXPECT_EQ(value_of(text, R"(hostscope_policy_apply_attempts_total{result="refused"})"), 1);
  EXPECT_EQ(value_of(text, "hostscope_policy_drift_repairs_total"), 2);
  EXPECT_EQ(value_of(text, R"(hostscope_policy_info{generation="3",commit="0123abc",source_hash=""})"), 1);
  EXPECT_EQ(value_of(text, R"(hostscope_events_total{type="open",outcome="none"})"), 1);
  auto file = d.path / "metrics.txt";
  std::ofstream(file) << text;
  int status = 0;
  auto out = run("promtool check metrics < " + file.string() + " 2>&1", &status);
  ASSERT_EQ(status, 0) << "promtool check metrics:\n" << out << "\n--- exposition ---\n" << text;
  EXPECT_EQ(out, "");
  // promtool really rejects what is wrong (a duplicate TYPE line), so its silence above means something.
  std::ofstream(file, std::ios::app) << "# TYPE hostscope_connections_active gauge\n";
  run("promtool check metrics < " + file.string() + " 2>&1", &status);
  EXPECT_NE(status, 0);
}

// Metric names in the exposition, with the sample suffixes of histograms.
std::set<std::string> exposed_names(const std::string& text) {
  std::set<std::string> names;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream l(line.substr(7));
      std::string name, type;
      l >> name >> type;
      names.insert(name);
      if (type == "histogram")
        for (auto s : {"_bucket", "_sum", "_count"}) names.insert(name + s);
    }
  return names;
}

TEST(Exporters, GrafanaDashboardQueriesOnlyExposedMetrics) {
  TempDir d;
  auto names = exposed_names(full_exposition(d.path));
  ASSERT_GT(names.size(), 30u);
  std::ifstream f(std::string(std::getenv("HOSTSCOPE_SRC") ? std::getenv("HOSTSCOPE_SRC") : ".") +
                  "/packaging/grafana/hostscope-dashboard.json");
  ASSERT_TRUE(f) << "packaging/grafana/hostscope-dashboard.json";
  auto dash = nlohmann::json::parse(f);
  std::vector<std::string> exprs;
  bool node_graph = false;
  std::function<void(const nlohmann::json&)> walk = [&](const nlohmann::json& j) {
    if (j.is_object()) {
      if (j.value("type", "") == "nodeGraph") node_graph = true;
      if (j.contains("expr") && j["expr"].is_string()) exprs.push_back(j["expr"]);
      if (j.contains("query") && j["query"].is_string() && j.value("type", "") == "query")
        exprs.push_back(j["query"]);
      for (auto& [k, v] : j.items()) walk(v);
    } else if (j.is_array())
      for (auto& v : j) walk(v);
  };
  walk(dash);
  EXPECT_TRUE(node_graph) << "no nodeGraph panel";
  ASSERT_GE(exprs.size(), 6u);
  std::regex metric(R"(hostscope_[a-z0-9_]+)");
  for (auto& e : exprs) {
    size_t found = 0;
    for (auto it = std::sregex_iterator(e.begin(), e.end(), metric); it != std::sregex_iterator(); ++it, ++found)
      EXPECT_TRUE(names.count(it->str())) << it->str() << " in " << e << " is not exposed";
    EXPECT_GT(found, 0u) << e;
  }
}

std::vector<std::string> lines_of(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

TEST(EventSink, RotatesBySizeAndKeepsMaxFiles) {
  TempDir d;
  EventSinkOptions o;
  o.output = "file";
  o.file = (d.path / "sub" / "events.jsonl").string();
  o.max_file_bytes = 100;
  o.max_files = 2;
  o.queue = 1024;
  auto s = EventSink::open(o);
  ASSERT_TRUE(s) << s.error().str();
  const int n = 30;
  for (int i = 0; i < n; ++i) ASSERT_TRUE((*s)->push(fmt::format(R"({{"seq":{:6},"pad":"xxxx"}})", i)));
  (*s)->stop();
  auto st = (*s)->stats();
  EXPECT_EQ(st.lines_written, uint64_t(n));
  EXPECT_EQ(st.lines_dropped, 0u);
  EXPECT_EQ(st.write_errors, 0u);
  const size_t line_bytes = 28;                           // {"seq":     5,"pad":"xxxx"} and its newline
  const size_t per_file = o.max_file_bytes / line_bytes;  // 3: a fourth line would pass 100 bytes
  const size_t files = (n + per_file - 1) / per_file;
  EXPECT_EQ(st.rotations, files - 1);
  EXPECT_FALSE(fs::exists(o.file + ".3"));
  // The newest lines, in order, across .2, .1 and the live file; every file within the size.
  std::vector<std::string> all;
  for (auto p : {o.file + ".2", o.file + ".1", o.file}) {
    ASSERT_TRUE(fs::exists(p)) << p;
    EXPECT_LE(fs::file_size(p), o.max_file_bytes) << p;
    for (auto& l : lines_of(p)) all.push_back(l);
  }
  const size_t last = n % per_file ? n % per_file : per_file;
  ASSERT_EQ(all.size(), 2 * per_file + last);
  for (size_t i = 0; i < all.size(); ++i) {
    auto j = nlohmann::json::parse(all[i]);
    EXPECT_EQ(j["seq"], int(n - all.size() + i));
    EXPECT_EQ(all[i].size() + 1, line_bytes);
  }
}

TEST(EventSink, BackPressureDropsAndCountsWithoutBlocking) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  EventSinkOptions o;
  o.output = "fd";
  o.fd = p[1];
  o.queue = 16;
  auto s = EventSink::open(o);
  ASSERT_TRUE(s) << s.error().str();
  // Nobody reads the pipe: the writer blocks once the pipe buffer is full, the queue fills, and every further
  // push must return at once (this thread would hang here otherwise) with the line dropped and counted.
  const std::string line(1000, 'x');
  const int pushes = 2000;  // 2 MB, far more than the pipe buffer (64 KiB) and the queue
  uint64_t accepted = 0;
  for (int i = 0; i < pushes; ++i) accepted += (*s)->push(line);
  auto mid = (*s)->stats();
  EXPECT_GT(mid.lines_dropped, 0u);
  EXPECT_EQ(mid.lines_dropped + accepted, uint64_t(pushes));
  // Drain the pipe: every accepted line arrives whole, nothing else.
  uint64_t bytes = 0;
  std::thread reader([&] {
    char buf[65536];
    ssize_t n;
    while ((n = read(p[0], buf, sizeof(buf))) > 0) bytes += uint64_t(n);
  });
  (*s)->stop();
  close(p[1]);
  reader.join();
  close(p[0]);
  auto st = (*s)->stats();
  EXPECT_EQ(st.lines_written, accepted);
  EXPECT_EQ(bytes, accepted * (line.size() + 1));
  EXPECT_EQ(st.lines_dropped, uint64_t(pushes) - accepted);
}

TEST(EventSink, BadOutputIsAClearError) {
  EventSinkOptions o;
  o.output = "file";
  o.file = "/proc/hs-no-such/events.jsonl";
  auto s = EventSink::open(o);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().str().find("/proc/hs-no-such"), std::string::npos) << s.error().str();
  o.output = "syslog";
  EXPECT_FALSE(EventSink::open(o));
}

}  // namespace
}  // namespace hostscope::exporters
