// Renderings of a topology snapshot: JSON round trip and its strict parser, Graphviz output that `dot` accepts,
// Mermaid ids and labels, and escaping of hostile names in every format.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <tuple>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

#include "agent/topology/render.h"
#include "agent/topology/topology.h"
#include "common/topology_json.h"
#include "support/privileged.h"

namespace hostscope::topology {
namespace {

constexpr uint64_t kSec = 1'000'000'000ull;
constexpr uint64_t kT0 = 1'700'000'000ull * kSec + 123456789;

const std::string kQuoted = "we\"ird \\ name";
const std::string kUnicode = "caf\xc3\xa9-\xe6\x9c\x8d\xe5\x8a\xa1";  // café-服务
const std::string kControl = "multi\nline\x01tab\t";
const std::string kInvalid = "bad\xff\xfeutf8";
const std::string kMarkup = "<b>#1 & `x` | y</b>";

EdgeSnapshot edge(std::string client, std::string ns, std::string server, uint16_t port) {
  EdgeSnapshot e;
  e.client = EdgeEnd{NodeKind::Service, client, ns, client + "-pod", "10.0.0.1"};
  e.server = EdgeEnd{NodeKind::Service, server, ns, server + "-pod", "10.0.0.2"};
  e.port = port;
  e.connections = 10;
  e.closed = 9;
  e.failed = {{"refused", 2}, {"timed_out", 1}};
  e.resets = 1;
  e.active = 1;
  e.bytes_sent = 12345;
  e.bytes_received = 987654321;
  e.latency = {9, 120, 450, 900};
  e.srtt_us = 77;
  e.retransmits = 3;
  e.first_seen_ns = kT0;
  e.last_seen_ns = kT0 + 5 * kSec;
  return e;
}

TopologySnapshot sample() {
  TopologySnapshot s;
  s.taken_ns = kT0 + 6 * kSec;
  auto k8s = edge("frontend", "shop", "cart", 8080);  // Kubernetes pods running Go binaries
  k8s.client.workload = "frontend";
  k8s.client.go_module = "github.com/acme/frontend@v1.4.2";
  k8s.server.workload = "cart";
  k8s.server.go_module = "github.com/acme/cart";  // a "(devel)" build: the path alone
  s.edges.push_back(k8s);
  s.edges.push_back(edge(kQuoted, "ns with space", kUnicode, 443));
  s.edges.push_back(edge(kControl, "", kMarkup, 9000));
  auto nat = edge("frontend", "shop", "external", 80);
  nat.server = EdgeEnd{NodeKind::External, "external", "", "", "10.96.0.10"};
  nat.dialed = "10.96.0.10:80";
  nat.actual = {"10.244.1.5:8080", "10.244.2.9:8080"};
  nat.anomalies.push_back(AnomalyFlag{"failure_rate", kT0 + kSec, kT0 + 3 * kSec, 3, 0.5, 0.0125});
  nat.anomalies.push_back(AnomalyFlag{"new_edge", kT0, kT0, 1, 0, 0});
  s.edges.push_back(nat);
  auto net = edge("frontend", "shop", "cluster-pods", 53);
  net.server = EdgeEnd{NodeKind::Network, "cluster-pods", "", "", "10.244.9.9"};
  net.failed.clear();
  net.latency = {};
  s.edges.push_back(net);
  s.counters.events = 1000;
  s.counters.edges_evicted = 2;
  s.counters.nat_translated = 1;
  s.counters.identities_dropped = 3;
  canonicalize(s);
  return s;
}

TEST(TopologyJson, RoundTripsExactly) {
  auto s = sample();
  std::string text = render_json(s);
  auto back = parse_json(text);
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(*back, s);
  EXPECT_EQ(render_json(*back), text);
}

TEST(TopologyJson, RoundTripsASnapshotOfTheLiveStore) {
  Topology t({}, kT0);
  events::ConnectionEvent e;
  e.kind = events::Kind::Close;
  e.role = events::Role::Active;
  e.saddr = *IpAddr::parse("::1");
  e.daddr = *IpAddr::parse("::1");
  e.sport = 50000;
  e.dport = 8443;
  e.established = true;
  e.bytes_sent = 42;
  e.connect_latency_ns = 12345;
  auto ident = std::make_shared<const EndIdentity>(EndIdentity{"p-workload", "example.com/m@v0.1.0"});
  t.ingest(e, Endpoint{kUnicode, "ns", "p", 1, ident}, Endpoint{kQuoted, "ns", "q", 2}, kT0);
  auto s = t.snapshot(kT0);
  auto back = parse_json(render_json(s));
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(*back, s);
}

TEST(TopologyJson, HasTheDocumentedFieldsConsumersRely) {
  auto j = nlohmann::json::parse(render_json(sample()));
  EXPECT_EQ(j["schema"], "hostscope.topology/v1");
  EXPECT_EQ(j["counters"]["identities_dropped"], 3);
  for (const auto& e : j["edges"]) {
    for (const char* k : {"client", "server", "port", "protocol", "connections", "closed", "failed", "resets", "active",
                          "bytes_sent", "bytes_received", "latency_us", "srtt_us", "retransmits", "first_seen",
                          "last_seen", "anomalies"})
      EXPECT_TRUE(e.contains(k)) << k;
    for (const char* k : {"service", "namespace", "pod"}) EXPECT_TRUE(e["client"].contains(k)) << k;
    for (const char* k : {"service", "namespace", "pod", "address"}) EXPECT_TRUE(e["server"].contains(k)) << k;
    for (const char* k : {"p50", "p90", "p99"}) EXPECT_TRUE(e["latency_us"].contains(k)) << k;
  }
  // Workload and Go module are written only where known: other ends' documents are as they were before them.
  size_t with_identity = 0;
  for (const auto& e : j["edges"])
    for (const char* end : {"client", "server"}) {
      if (e[end].contains("workload") || e[end].contains("go_module")) ++with_identity;
      else EXPECT_EQ(e[end].size(), 5u) << e[end].dump();
    }
  EXPECT_EQ(with_identity, 2u);
  auto k8s = j["edges"][0];
  for (const auto& e : j["edges"])
    if (e["port"] == 8080) k8s = e;
  ASSERT_EQ(k8s["client"]["service"], "frontend");
  EXPECT_EQ(k8s["client"]["workload"], "frontend");
  EXPECT_EQ(k8s["client"]["go_module"], "github.com/acme/frontend@v1.4.2");
  EXPECT_EQ(k8s["server"]["workload"], "cart");
  EXPECT_EQ(k8s["server"]["go_module"], "github.com/acme/cart");
  bool found_nat = false;
  for (const auto& e : j["edges"])
    if (e.contains("dialed")) {
      found_nat = true;
      EXPECT_EQ(e["dialed"], "10.96.0.10:80");
      EXPECT_EQ(e["actual"][0], "10.244.1.5:8080");
      EXPECT_EQ(e["anomalies"][0]["reason"], "failure_rate");
    }
  EXPECT_TRUE(found_nat);
}

// The agent streams its topology reply with write_json: the bytes must be those of the document's dump().
TEST(TopologyJson, WriteJsonStreamsTheSameBytesAsTheDocument) {
  auto s = sample();
  s.edges[0].client.pod = kInvalid;
  s.edges[1].policy = "would-deny";
  s.edges[1].server.go_module = "example.com/\xe6\x9c\x8d@v1.0.0";  // only one of the two, on one end
  s.edges[2].client.workload = kQuoted;
  for (const auto& snap : {s, TopologySnapshot{}}) {
    std::string streamed;
    size_t pieces = 0;
    ASSERT_TRUE(write_json(snap, [&](std::string_view p) {
      streamed.append(p);
      pieces++;
      return true;
    }));
    EXPECT_EQ(streamed, to_json(snap).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    EXPECT_GT(pieces, snap.edges.size());
  }
  size_t calls = 0;  // a reader that went away stops the writer at once
  EXPECT_FALSE(write_json(s, [&](std::string_view) { return ++calls < 3; }));
  EXPECT_EQ(calls, 3u);
}

// render_json writes the document without building it: the bytes must be those of the document's dump(indent), for
// every field an edge can have, escapes, UTF-8 and invalid bytes, and the empty snapshot.
TEST(TopologyJson, RenderJsonWritesTheSameBytesAsTheDocument) {
  auto s = sample();
  s.edges[0].client.pod = kInvalid;
  s.edges[0].client.service = "caf\xc3\xa9 \"quoted\" back\\slash\ttab\x01\x7f";
  s.edges[1].policy = "would-deny";
  s.edges[1].dialed = "10.96.0.10:80";
  s.edges[1].actual = {"10.244.1.5:8080", "10.244.2.9:8080"};
  s.edges[1].failed = {{"refused", 3}, {"timed_out", 1}};
  s.edges[2].anomalies.push_back({"failure_rate", 1'700'000'000'000'000'001ull, 1'700'000'060'000'000'000ull, 2,
                                  0.123456789, 1e-7});
  s.edges[2].anomalies.push_back({"new_edge", 1, 2, 1, 0, 0});
  s.edges[2].client.workload = kControl;
  s.edges[2].server.go_module = kInvalid;
  s.edges[3].client.go_module = "example.com/m@v0.0.0-20240501120000-abcdef123456";  // without a workload
  s.counters.events = 18446744073709551615ull;
  for (const auto& snap : {s, TopologySnapshot{}})
    for (int indent : {2, 0, 4, -1})
      EXPECT_EQ(render_json(snap, indent),
                to_json(snap).dump(indent, ' ', false, nlohmann::json::error_handler_t::replace) + "\n")
          << "indent " << indent << " edges " << snap.edges.size();
}

// Network ends keyed by address (topology.network_ends: address): each address is its own node in every rendering
// and keeps exact_address through the JSON both ways; a network end keyed by network stays one node.
TEST(TopologyJson, PerAddressNetworkEndsStayApartInEveryRendering) {
  TopologySnapshot s;
  s.taken_ns = kT0;
  for (const char* address : {"10.244.3.3", "10.244.4.4"}) {
    auto e = edge("frontend", "shop", "cluster-pods", 53);
    e.server = EdgeEnd{NodeKind::Network, "cluster-pods", "", "", address};
    e.server.exact_address = true;
    s.edges.push_back(e);
  }
  auto by_network = edge("frontend", "shop", "corp", 53);
  by_network.server = EdgeEnd{NodeKind::Network, "corp", "", "", "10.9.9.9"};  // most recently seen: not exact
  s.edges.push_back(by_network);
  canonicalize(s);
  ASSERT_EQ(s.nodes.size(), 4u);  // in id order: the two addresses, corp, frontend
  EXPECT_EQ(s.nodes[0].id, "network:cluster-pods@10.244.3.3");
  EXPECT_EQ(s.nodes[0].address, "10.244.3.3");
  EXPECT_EQ(s.nodes[1].id, "network:cluster-pods@10.244.4.4");
  EXPECT_EQ(s.nodes[2].id, "network:corp");
  EXPECT_EQ(s.nodes[2].address, "");

  std::string text = render_json(s);
  EXPECT_EQ(text, to_json(s).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  EXPECT_NE(text.find("\"exact_address\": true"), std::string::npos) << text;
  auto back = parse_json(text);
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(*back, s);
  EXPECT_TRUE(back->edges[0].server.exact_address);
  EXPECT_FALSE(back->edges[2].server.exact_address);
  auto bad = text;
  bad.replace(bad.find("\"exact_address\": true"), 21, "\"exact_address\": 1");
  auto refused = parse_json(bad);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().str().find("server.exact_address: expected true or false"), std::string::npos)
      << refused.error().str();

  std::string table = render_table(s);
  EXPECT_NE(table.find("network:cluster-pods@10.244.3.3"), std::string::npos) << table;
  EXPECT_NE(table.find("network:cluster-pods@10.244.4.4"), std::string::npos) << table;
  EXPECT_EQ(table.find("network:corp@"), std::string::npos) << table;
  std::string dot = render_dot(s);
  EXPECT_NE(dot.find("\"network:cluster-pods@10.244.4.4\" [label=\"cluster-pods\\n10.244.4.4\\n(network)\""),
            std::string::npos)
      << dot;
  EXPECT_NE(render_mermaid(s).find("cluster-pods 10.244.3.3 (network)"), std::string::npos);
}

TEST(TopologyJson, InvalidUtf8IsReplacedNotFatal) {
  auto s = sample();
  s.edges[0].client.pod = kInvalid;
  std::string text = render_json(s);
  auto back = parse_json(text);
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_NE(text.find("\xef\xbf\xbd"), std::string::npos);
}

TEST(TopologyJson, RejectsMalformedInputWithPath) {
  auto expect_error = [](const std::string& text, const std::string& needle) {
    auto r = parse_json(text);
    ASSERT_FALSE(r) << text;
    EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
  };
  auto good = nlohmann::json::parse(render_json(sample()));
  expect_error("", "topology JSON");
  expect_error("{", "topology JSON");
  expect_error("[]", "top level");
  expect_error(R"({"schema":"hostscope.topology/v9","taken_at":"2024-01-01T00:00:00Z","edges":[]})", "unsupported schema");
  expect_error(std::string(100000, '['), "nested deeper");
  auto bad = good;
  bad["edges"][1]["port"] = 70000;
  expect_error(bad.dump(), "edges[1].port");
  bad = good;
  bad["edges"][0]["server"]["kind"] = "planet";
  expect_error(bad.dump(), "edges[0].server.kind");
  bad = good;
  bad["edges"][2]["connections"] = -1;
  expect_error(bad.dump(), "edges[2].connections");
  bad = good;
  bad["edges"][0].erase("last_seen");
  expect_error(bad.dump(), "edges[0].last_seen: missing");
  bad = good;
  bad["edges"][0]["first_seen"] = "yesterday";
  expect_error(bad.dump(), "edges[0].first_seen");
  bad = good;
  bad["edges"][0]["failed"] = {{"refused", "many"}};
  expect_error(bad.dump(), "failed.refused");
  bad = good;
  bad["edges"] = 5;
  expect_error(bad.dump(), "$.edges: expected an array");
}

TEST(TopologyJson, LenientReadsMinimalDocumentsStrictRefusesThem) {
  using nlohmann::json;
  json minimal = {{"schema", "hostscope.topology/v1"},
                  {"taken_at", nullptr},
                  {"edges",
                   {{{"client", {{"kind", "service"}, {"service", "web"}, {"namespace", nullptr}}},
                     {"server", {{"kind", "external"}, {"service", "external"}, {"address", "10.96.0.20"}}},
                     {"port", 80},
                     {"protocol", "tcp"},
                     {"connections", int64_t(3)},  // signed, as a document built in code holds it
                     {"failed", {{"refused", int64_t(2)}}},
                     {"actual", {"10.244.1.7:8080", "[fd00::7]:8080"}}}}}};
  auto strict = from_json(minimal);
  ASSERT_FALSE(strict);
  EXPECT_NE(strict.error().message.find("$.taken_at"), std::string::npos) << strict.error().message;
  auto lenient = from_json(minimal, {.lenient = true});
  ASSERT_TRUE(lenient) << lenient.error().str();
  ASSERT_EQ(lenient->edges.size(), 1u);
  const auto& e = lenient->edges[0];
  EXPECT_EQ(e.client.service, "web");
  EXPECT_EQ(e.server.address, "10.96.0.20");
  EXPECT_EQ(e.connections, 3u);
  EXPECT_EQ(e.failed.at("refused"), 2u);
  EXPECT_EQ(e.actual, (std::vector<std::string>{"10.244.1.7:8080", "[fd00::7]:8080"}));
  EXPECT_EQ(lenient->taken_ns, 0u);
  // What is present is still checked in both modes.
  const json complete = json::parse(render_json(sample()));
  for (bool lenient_mode : {false, true}) {
    const json& base = lenient_mode ? minimal : complete;
    auto bad = base;
    bad["edges"][0]["actual"] = {"not-an-address"};
    auto r = from_json(bad, {.lenient = lenient_mode});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("$.edges[0].actual[0]: expected \"address:port\""), std::string::npos) << r.error().message;
    bad = base;
    bad["edges"][0].erase("connections");
    r = from_json(bad, {.lenient = lenient_mode});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("$.edges[0].connections: missing"), std::string::npos) << r.error().message;
  }
}

TEST(TopologyJson, TimesRoundTripAndRejectGarbage) {
  for (uint64_t t : {uint64_t(0), kT0, uint64_t(4102444800ull * kSec + 999999999ull)}) EXPECT_EQ(parse_time(format_time(t)), t);
  EXPECT_EQ(format_time(kT0), "2023-11-14T22:13:20.123456789Z");
  EXPECT_EQ(parse_time("2023-11-14T22:13:20Z"), kT0 - 123456789);
  EXPECT_EQ(parse_time("2023-11-14T22:13:20.5Z"), kT0 - 123456789 + 500000000);
  for (const char* bad : {"", "2023-11-14", "2023-11-14T22:13:20", "2023-13-14T22:13:20Z", "2023-11-14T22:13:20.Z",
                          "2023-11-14T22:13:20.1234567891Z", "2023-11-14T22:13:20Zjunk", "1969-12-31T23:59:59Z"})
    EXPECT_FALSE(parse_time(bad)) << bad;
}

bool have_dot() { return std::system("command -v dot >/dev/null 2>&1") == 0; }

std::string run_dot(const std::string& input, int& status) {
  auto dir = std::filesystem::temp_directory_path() / ("hs-topo-dot-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  struct Cleanup {
    std::filesystem::path p;
    ~Cleanup() { std::filesystem::remove_all(p); }
  } cleanup{dir};
  std::ofstream(dir / "in.dot") << input;
  std::string cmd = "dot -Tsvg " + (dir / "in.dot").string() + " -o " + (dir / "out.svg").string() + " 2>" +
                    (dir / "err.txt").string();
  status = std::system(cmd.c_str());
  std::ifstream err(dir / "err.txt");
  std::string e((std::istreambuf_iterator<char>(err)), {});
  std::ifstream in(dir / "out.svg");
  std::string svg((std::istreambuf_iterator<char>(in)), {});
  return status == 0 ? svg : e;
}

TEST(TopologyDot, RendersWithGraphvizAndEscapesNames) {
  HS_REQUIRE_SETUP(have_dot(), "graphviz (dot) not installed");
  auto s = sample();
  s.edges[0].client.pod = kInvalid;  // not rendered in dot, but harmless
  std::string dot = render_dot(s);
  int status = -1;
  std::string svg = run_dot(dot, status);
  ASSERT_EQ(status, 0) << svg << "\n" << dot;
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  // Every node and every edge made it into the drawing.
  EXPECT_EQ(std::count(dot.begin(), dot.end(), '\n'), ptrdiff_t(3 + s.nodes.size() + s.edges.size() + 1));
  // Graphviz writes '-' as &#45; but keeps UTF-8 text as is.
  EXPECT_NE(svg.find("caf\xc3\xa9&#45;\xe6\x9c\x8d\xe5\x8a\xa1"), std::string::npos) << "unicode kept";
  EXPECT_NE(svg.find("we&quot;ird \\ name"), std::string::npos) << "quote and backslash survive as text";
  EXPECT_NE(svg.find("&lt;b&gt;#1 &amp; `x` | y&lt;/b&gt;"), std::string::npos);
  EXPECT_NE(dot.find("we\\\"ird \\\\ name"), std::string::npos);
}

TEST(TopologyDot, HostileNamesStillParse) {
  HS_REQUIRE_SETUP(have_dot(), "graphviz (dot) not installed");
  TopologySnapshot s;
  for (std::string name : {std::string("\\"), std::string("\""), std::string("\\\""), std::string("a\\nb"),
                           std::string("}\n digraph x {"), kInvalid, std::string("\x7f\x1b[31m"), std::string("")}) {
    auto e = edge(name, name, name + "-srv", 1);
    s.edges.push_back(e);
  }
  canonicalize(s);
  int status = -1;
  std::string out = run_dot(render_dot(s), status);
  EXPECT_EQ(status, 0) << out;
}

TEST(TopologyMermaid, IdsAreSanitisedAndLabelsEscaped) {
  auto s = sample();
  std::string m = render_mermaid(s);
  EXPECT_EQ(m.rfind("flowchart LR\n", 0), 0u);
  std::istringstream in(m);
  std::string line;
  std::getline(in, line);
  std::regex node_re(R"re(^  n\d+(\[|\(\[)"[^"]*"(\]|\]\))$)re");
  std::regex edge_re(R"re(^  n\d+ -->\|"[^"|]*"\| n\d+$)re");
  size_t nodes = 0, edges = 0;
  while (std::getline(in, line)) {
    if (std::regex_match(line, node_re)) ++nodes;
    else if (std::regex_match(line, edge_re)) ++edges;
    else ADD_FAILURE() << "unexpected line: " << line;
  }
  EXPECT_EQ(nodes, s.nodes.size());
  EXPECT_EQ(edges, s.edges.size());
  EXPECT_NE(m.find("we#quot;ird \\ name"), std::string::npos);
  EXPECT_NE(m.find("#lt;b#gt;#35;1 #amp; #96;x#96; #124; y#lt;/b#gt;"), std::string::npos);
  EXPECT_NE(m.find("caf\xc3\xa9"), std::string::npos);
  EXPECT_EQ(m.find('\x01'), std::string::npos);
}

TEST(TopologyText, TableAndTreeQuoteUnusualNames) {
  auto s = sample();
  std::string table = render_table(s);
  EXPECT_NE(table.find("CLIENT"), std::string::npos);
  EXPECT_NE(table.find("\"ns with space\"/\"we\\\"ird \\\\ name\""), std::string::npos) << table;
  EXPECT_NE(table.find("\"multi\\nline\\x01tab\\t\""), std::string::npos) << table;
  EXPECT_NE(table.find(kUnicode), std::string::npos) << "plain unicode is shown as is";
  EXPECT_NE(table.find("10.96.0.10:80->10.244.1.5:8080,10.244.2.9:8080"), std::string::npos);
  EXPECT_NE(table.find("!failure_rate,new_edge"), std::string::npos);
  EXPECT_NE(table.find("3 (refused=2,timed_out=1)"), std::string::npos);
  EXPECT_NE(table.find("events 1000"), std::string::npos);
  EXPECT_EQ(table.find('\x01'), std::string::npos);

  std::string bad = render_table([&] {
    auto t = s;
    t.edges[0].client.service = kInvalid;
    return t;
  }());
  EXPECT_NE(bad.find("\"bad\\xff\\xfeutf8\""), std::string::npos) << bad;

  std::string tree = render_tree(s);
  EXPECT_NE(tree.find("shop/cart\n  called by:\n    └─ ← shop/frontend 8080/tcp"), std::string::npos) << tree;
  EXPECT_NE(tree.find("→ network:cluster-pods 53/tcp"), std::string::npos) << tree;
  EXPECT_NE(tree.find("→ external:10.96.0.10 80/tcp"), std::string::npos) << tree;
  EXPECT_EQ(tree.find('\n' + kControl), std::string::npos);
}

TEST(TopologyText, FormatsAndDispatch) {
  EXPECT_EQ(format_from_string("dot"), Format::Dot);
  EXPECT_FALSE(format_from_string("yaml"));
  for (auto f : {Format::Table, Format::Tree, Format::Json, Format::Dot, Format::Mermaid})
    EXPECT_EQ(format_from_string(to_string(f)), f);
  EXPECT_EQ(render(sample(), Format::Json), render_json(sample()));
  EXPECT_EQ(format_bytes(1023), "1023B");
  EXPECT_EQ(format_bytes(1536), "1.5KiB");
  EXPECT_EQ(format_us(850), "850us");
  EXPECT_EQ(format_us(1200), "1.2ms");
  EXPECT_EQ(sanitize_utf8("a\xc3(b"), "a\xef\xbf\xbd(b");
  EXPECT_EQ(sanitize_utf8("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd") << "surrogates are invalid";
  EXPECT_EQ(text_quote("plain-name"), "plain-name");
  EXPECT_EQ(text_quote(""), "\"\"");
}

TEST(TopologyFilter, FilterKeepsOnlyReferencedNodes) {
  auto s = sample();
  SnapshotFilter cart, dns, later;
  cart.service = "cart";
  dns.port = 53;
  later.since_ns = kT0 + 10 * kSec;
  auto f = filter(s, cart);
  ASSERT_EQ(f.edges.size(), 1u);
  EXPECT_EQ(f.nodes.size(), 2u);
  EXPECT_EQ(f.counters, s.counters);
  EXPECT_EQ(filter(s, dns).edges.size(), 1u);
  EXPECT_EQ(filter(s, later).edges.size(), 0u);
}

// canonicalize puts edges in place by a permutation of cycles: every order of the input ends in the same snapshot,
// and the moving filter gives what the copying one gives.
TEST(TopologyFilter, CanonicalizeAnyOrderAndMovingFilterAgree) {
  const auto s = sample();
  ASSERT_GE(s.edges.size(), 3u);
  auto by_id = [](const EdgeSnapshot& a, const EdgeSnapshot& b) {
    return std::make_tuple(node_id(a.client), node_id(a.server), a.port, a.protocol) <
           std::make_tuple(node_id(b.client), node_id(b.server), b.port, b.protocol);
  };
  EXPECT_TRUE(std::is_sorted(s.edges.begin(), s.edges.end(), by_id));
  std::vector<size_t> order(s.edges.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  size_t permutations = 0;
  do {
    TopologySnapshot shuffled = s;
    for (size_t i = 0; i < order.size(); ++i) shuffled.edges[i] = s.edges[order[i]];
    shuffled.nodes.clear();
    canonicalize(shuffled);
    EXPECT_EQ(shuffled, s) << "permutation " << permutations;
    ++permutations;
  } while (std::next_permutation(order.begin(), order.end()) && permutations < 720);
  EXPECT_GT(permutations, 5u);
  SnapshotFilter none, cart;
  cart.service = "cart";
  EXPECT_EQ(filter(TopologySnapshot(s), none), filter(s, none));
  EXPECT_EQ(filter(TopologySnapshot(s), cart), filter(s, cart));
}

}  // namespace
}  // namespace hostscope::topology

namespace hostscope::topology {
namespace {

// The example in docs/topology.md is valid input for the parser (the documented schema and the code agree).
TEST(TopologyJson, DocumentedExampleParses) {
  const char* src = std::getenv("HOSTSCOPE_SRC");
  std::string path = std::string(src ? src : HOSTSCOPE_SOURCE_DIR) + "/docs/topology.md";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  std::string doc((std::istreambuf_iterator<char>(in)), {});
  auto start = doc.find("```json\n");
  ASSERT_NE(start, std::string::npos);
  start += 8;
  auto end = doc.find("```", start);
  ASSERT_NE(end, std::string::npos);
  auto s = parse_json(doc.substr(start, end - start));
  ASSERT_TRUE(s) << s.error().str();
  ASSERT_EQ(s->edges.size(), 1u);
  const auto& e = s->edges[0];
  EXPECT_EQ(e.client.service, "frontend");
  EXPECT_EQ(e.client.workload, "frontend");
  EXPECT_EQ(e.client.go_module, "github.com/acme/frontend@v1.4.2");
  EXPECT_EQ(e.server.address, "10.96.0.10");
  EXPECT_EQ(e.server.workload, "");
  EXPECT_EQ(e.dialed, "10.96.0.10:80");
  EXPECT_EQ(e.failed.at("refused"), 2u);
  EXPECT_EQ(e.anomalies.at(0).reason, "failure_rate");
  EXPECT_EQ(s->counters.stitched, 12u);
  EXPECT_EQ(s->nodes.size(), 2u);
}

}  // namespace
}  // namespace hostscope::topology
