// The cluster view on fixtures: Prometheus API replies (good, hostile, errors), series assembly with the labels the
// join needs, and the join itself: one node passed through, a cross-node connection merged into one edge counted
// once, peers without an agent, an address that changed owner, filters, and the JSON/table forms of the result.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "agent/cli/cluster_source.h"
#include "agent/cluster/join.h"
#include "agent/cluster/prometheus.h"
#include "agent/cluster/series.h"
#include "agent/topology/render.h"
#include "common/topology_json.h"

namespace hostscope::cluster {
namespace {

using topology::NodeKind;

Sample sample(std::map<std::string, std::string> labels, double v) { return Sample{std::move(labels), v}; }

// A topology series as Prometheus returns it: empty labels are dropped, as Prometheus does.
Sample edge_sample(const std::string& node, const std::string& src, const std::string& src_ns, const std::string& dst,
                   const std::string& dst_ns, uint16_t port, double v) {
  std::map<std::string, std::string> l{{"node", node}, {"src_service", src}, {"src_namespace", src_ns},
                                       {"dst_service", dst}, {"dst_namespace", dst_ns}, {"dst_port", std::to_string(port)}};
  std::erase_if(l, [](const auto& kv) { return kv.second.empty(); });
  return sample(std::move(l), v);
}

Sample endpoint(const std::string& node, const std::string& addr, const std::string& service, const std::string& ns,
                const std::string& pod) {
  std::map<std::string, std::string> l{{"node", node}, {"address", addr}, {"service", service}, {"namespace", ns},
                                       {"pod", pod}, {"workload", pod.substr(0, pod.find('-'))}};
  std::erase_if(l, [](const auto& kv) { return kv.second.empty(); });
  return sample(std::move(l), 1);
}

// Node A runs web (10.244.0.7), node B runs api (10.244.1.5): A sees web -> 10.244.1.5:8080, B sees 10.244.0.7 -> api.
RawResults cross_node(double a_opened, double b_opened) {
  RawResults r;
  r.build_info = {sample({{"node", "node-a"}, {"version", "0.1.0+abc"}}, 1),
                  sample({{"node", "node-b"}, {"version", "0.1.0+abc"}}, 1)};
  r.counters["hostscope_connections_opened_total"] = {
      edge_sample("node-a", "web", "shop", "10.244.1.5", "", 8080, a_opened),
      edge_sample("node-b", "10.244.0.7", "", "api", "shop", 8080, b_opened)};
  r.counters["hostscope_connection_sent_bytes_total"] = {
      edge_sample("node-a", "web", "shop", "10.244.1.5", "", 8080, 5000),
      edge_sample("node-b", "10.244.0.7", "", "api", "shop", 8080, 5000)};
  r.counters["hostscope_connections_failed_total"] = {[] {
    auto s = edge_sample("node-a", "web", "shop", "10.244.1.5", "", 8080, 2);
    s.labels["reason"] = "refused";
    return s;
  }()};
  r.endpoints_now = {endpoint("node-a", "10.244.0.7", "web", "shop", "web-6d4f9-x7k2p"),
                     endpoint("node-b", "10.244.1.5", "api", "shop", "api-5c8b7-q9z4m"),
                     endpoint("node-b", "192.168.1.2", "", "", "")};
  r.endpoints_window = r.endpoints_now;
  return r;
}

ClusterTopology joined(const RawResults& r) {
  auto s = assemble(r, "test");
  EXPECT_TRUE(s) << (s ? "" : s.error().str());
  return s ? join(*s, 1'700'000'000'000'000'000ull) : ClusterTopology{};
}

TEST(ClusterJoin, SingleNodeIsPassedThrough) {
  RawResults r;
  r.build_info = {sample({{"node", "node-a"}, {"version", "v1"}}, 1)};
  r.counters["hostscope_connections_opened_total"] = {edge_sample("node-a", "web", "shop", "cart", "shop", 9000, 7)};
  r.counters["hostscope_connections_closed_total"] = {edge_sample("node-a", "web", "shop", "cart", "shop", 9000, 6)};
  r.active = {edge_sample("node-a", "web", "shop", "cart", "shop", 9000, 1)};
  auto t = joined(r);
  ASSERT_EQ(t.snapshot.edges.size(), 1u);
  const auto& e = t.snapshot.edges[0];
  EXPECT_EQ(e.client.service, "web");
  EXPECT_EQ(e.client.ns, "shop");
  EXPECT_EQ(e.server.service, "cart");
  EXPECT_EQ(e.port, 9000);
  EXPECT_EQ(e.connections, 7u);
  EXPECT_EQ(e.closed, 6u);
  EXPECT_EQ(e.active, 1u);
  ASSERT_EQ(e.observed_by.size(), 1u);
  EXPECT_EQ(e.observed_by[0].node, "node-a");
  EXPECT_EQ(e.observed_by[0].side, "both");
  EXPECT_TRUE(e.observed_by[0].counted);
  EXPECT_FALSE(e.address_reused);
  EXPECT_EQ(t.snapshot.nodes.size(), 2u);
}

TEST(ClusterJoin, CrossNodeObservationsAreOneEdgeCountedOnce) {
  // The server's node saw one connection fewer (e.g. its scrape was a little older): the client side counts.
  auto t = joined(cross_node(5, 4));
  ASSERT_EQ(t.snapshot.edges.size(), 1u) << topology::render_table(t.snapshot);
  const auto& e = t.snapshot.edges[0];
  EXPECT_EQ(e.client.kind, NodeKind::Service);
  EXPECT_EQ(e.client.service, "web");
  EXPECT_EQ(e.client.ns, "shop");
  EXPECT_EQ(e.client.pod, "web-6d4f9-x7k2p");
  EXPECT_EQ(e.client.address, "10.244.0.7");
  EXPECT_EQ(e.client.workload, "web");
  EXPECT_EQ(e.server.service, "api");
  EXPECT_EQ(e.server.pod, "api-5c8b7-q9z4m");
  EXPECT_EQ(e.server.address, "10.244.1.5");
  EXPECT_EQ(e.port, 8080);
  EXPECT_EQ(e.connections, 5u);  // not 9: counted once, from the client's node
  EXPECT_EQ(e.bytes_sent, 5000u);
  EXPECT_EQ(e.failed_total(), 2u);
  ASSERT_EQ(e.observed_by.size(), 2u);
  EXPECT_EQ(e.observed_by[0].node, "node-a");
  EXPECT_EQ(e.observed_by[0].side, "client");
  EXPECT_TRUE(e.observed_by[0].counted);
  EXPECT_EQ(e.observed_by[0].connections, 5u);
  EXPECT_EQ(e.observed_by[1].node, "node-b");
  EXPECT_EQ(e.observed_by[1].side, "server");
  EXPECT_FALSE(e.observed_by[1].counted);
  EXPECT_EQ(e.observed_by[1].connections, 4u);
}

TEST(ClusterJoin, AddressLabelsWinOverTheServiceLabel) {
  // Agents with src_address/dst_address: a network end keeps its name but is joined on its address.
  RawResults r = cross_node(3, 3);
  auto& opened = r.counters["hostscope_connections_opened_total"];
  opened[0].labels["dst_service"] = "pods";
  opened[0].labels["dst_address"] = "10.244.1.5";
  opened[1].labels["src_service"] = "pods";
  opened[1].labels["src_address"] = "10.244.0.7";
  r.counters.erase("hostscope_connection_sent_bytes_total");
  r.counters.erase("hostscope_connections_failed_total");
  auto t = joined(r);
  ASSERT_EQ(t.snapshot.edges.size(), 1u) << topology::render_table(t.snapshot);
  EXPECT_EQ(t.snapshot.edges[0].client.service, "web");
  EXPECT_EQ(t.snapshot.edges[0].server.service, "api");
  EXPECT_EQ(t.snapshot.edges[0].connections, 3u);
}

TEST(ClusterJoin, PeersWithoutAnAgentStayNamedByAddress) {
  RawResults r = cross_node(5, 5);
  // web calls an address nobody owns; a client without an agent (10.9.0.1) calls api.
  r.counters["hostscope_connections_opened_total"].push_back(
      edge_sample("node-a", "web", "shop", "203.0.113.9", "", 443, 2));
  r.counters["hostscope_connections_opened_total"].push_back(
      edge_sample("node-b", "10.9.0.1", "", "api", "shop", 8080, 3));
  auto t = joined(r);
  ASSERT_EQ(t.snapshot.edges.size(), 3u) << topology::render_table(t.snapshot);
  const topology::EdgeSnapshot *out = nullptr, *in = nullptr;
  for (const auto& e : t.snapshot.edges) {
    if (e.server.kind == NodeKind::External) out = &e;
    if (e.client.kind == NodeKind::External) in = &e;
  }
  ASSERT_TRUE(out && in);
  EXPECT_EQ(out->server.address, "203.0.113.9");
  EXPECT_EQ(out->client.service, "web");
  EXPECT_EQ(out->connections, 2u);
  EXPECT_EQ(in->client.address, "10.9.0.1");
  EXPECT_EQ(in->server.service, "api");
  EXPECT_EQ(in->connections, 3u);  // only the server's side saw it: its counts are the edge's
  ASSERT_EQ(in->observed_by.size(), 1u);
  EXPECT_EQ(in->observed_by[0].side, "server");
  EXPECT_TRUE(in->observed_by[0].counted);
}

TEST(ClusterJoin, NodeAddressWithoutServiceIsNotAName) {
  RawResults r = cross_node(1, 1);
  r.counters["hostscope_connections_opened_total"].push_back(
      edge_sample("node-a", "web", "shop", "192.168.1.2", "", 22, 1));
  auto t = joined(r);
  bool found = false;
  for (const auto& e : t.snapshot.edges)
    if (e.port == 22) {
      found = true;
      EXPECT_EQ(e.server.kind, NodeKind::External);
      EXPECT_EQ(e.server.address, "192.168.1.2");
    }
  EXPECT_TRUE(found);
}

TEST(ClusterJoin, AddressReusedInTheWindowIsNamedByItsLatestOwnerAndFlagged) {
  RawResults r = cross_node(5, 5);
  // 10.244.1.5 belonged to a cache pod earlier in the window; api has it now.
  r.endpoints_window.push_back(endpoint("node-b", "10.244.1.5", "cache", "shop", "cache-0"));
  auto t = joined(r);
  ASSERT_EQ(t.snapshot.edges.size(), 1u) << topology::render_table(t.snapshot);
  const auto& e = t.snapshot.edges[0];
  EXPECT_EQ(e.server.service, "api");
  EXPECT_TRUE(e.address_reused);
  EXPECT_EQ(topology::to_json(t.snapshot)["edges"][0]["address_reused"], true);
  EXPECT_NE(topology::render_table(t.snapshot).find("address-reused"), std::string::npos);

  // Without the cache pod the flag is not set (the assertion above is not vacuous).
  EXPECT_FALSE(joined(cross_node(5, 5)).snapshot.edges[0].address_reused);
}

// A node's own address is listed without a service, and a host-network service listening on it lists it again with
// its name: one address, one owner with a name, nothing reused (the integration test's node namespace does this).
TEST(ClusterJoin, NodeAddressAlsoListedByAHostNetworkServiceIsNotReuse) {
  RawResults r = cross_node(5, 5);
  r.endpoints_now.push_back(endpoint("node-b", "10.244.1.5", "", "", ""));
  r.endpoints_window = r.endpoints_now;
  auto t = joined(r);
  ASSERT_EQ(t.snapshot.edges.size(), 1u) << topology::render_table(t.snapshot);
  EXPECT_EQ(t.snapshot.edges[0].server.service, "api");
  EXPECT_FALSE(t.snapshot.edges[0].address_reused);
}

// Host-network services share their node's address: an end at it is the service that the other node's observation
// of the connection names (node-b sees 10.244.0.7 -> api; node-a sees web -> 10.244.1.5, which api and agent share).
TEST(ClusterJoin, SharedAddressIsTheServiceTheCounterpartNames) {
  RawResults r = cross_node(5, 5);
  r.endpoints_now.push_back(endpoint("node-b", "10.244.1.5", "agent", "", ""));
  r.endpoints_window = r.endpoints_now;
  auto t = joined(r);
  ASSERT_EQ(t.snapshot.edges.size(), 1u) << topology::render_table(t.snapshot);
  const auto& e = t.snapshot.edges[0];
  EXPECT_EQ(e.client.service, "web");
  EXPECT_EQ(e.server.service, "api");
  EXPECT_EQ(e.connections, 5u);
  EXPECT_FALSE(e.address_reused);
  EXPECT_EQ(e.observed_by.size(), 2u);

  // Without the server's observation nothing says which of the two was called: the end stays the address.
  r.counters["hostscope_connections_opened_total"].pop_back();
  r.counters["hostscope_connection_sent_bytes_total"].pop_back();
  auto alone = joined(r);
  ASSERT_EQ(alone.snapshot.edges.size(), 1u) << topology::render_table(alone.snapshot);
  EXPECT_EQ(alone.snapshot.edges[0].server.kind, NodeKind::External);
  EXPECT_EQ(alone.snapshot.edges[0].server.address, "10.244.1.5");
}

TEST(ClusterJoin, FiltersKeepTheMergedEdge) {
  RawResults r = cross_node(5, 5);
  r.counters["hostscope_connections_opened_total"].push_back(
      edge_sample("node-a", "batch", "jobs", "203.0.113.9", "", 443, 2));
  auto t = joined(r);
  ASSERT_EQ(t.snapshot.edges.size(), 2u);
  topology::SnapshotFilter by_ns;
  by_ns.ns = "shop";
  auto shop = topology::filter(t.snapshot, by_ns);
  ASSERT_EQ(shop.edges.size(), 1u);
  EXPECT_EQ(shop.edges[0].server.service, "api");
  topology::SnapshotFilter by_service;
  by_service.service = "api";
  auto api = topology::filter(t.snapshot, by_service);
  ASSERT_EQ(api.edges.size(), 1u);
  EXPECT_EQ(api.edges[0].client.service, "web");
  by_service.service = "batch";
  EXPECT_EQ(topology::filter(t.snapshot, by_service).edges.size(), 1u);
}

TEST(ClusterJoin, JsonCarriesThePerNodeBreakdownBothWays) {
  auto t = joined(cross_node(5, 4));
  auto j = topology::to_json(t.snapshot);
  const auto& obs = j["edges"][0]["observed_by"];
  ASSERT_EQ(obs.size(), 2u);
  EXPECT_EQ(obs[0]["node"], "node-a");
  EXPECT_EQ(obs[0]["side"], "client");
  EXPECT_EQ(obs[0]["counted"], true);
  EXPECT_EQ(obs[1]["connections"], 4);
  // The streaming writer writes the same bytes, and the parser reads them back.
  std::string streamed;
  ASSERT_TRUE(topology::write_json(t.snapshot, [&](std::string_view s) {
    streamed += s;
    return true;
  }));
  EXPECT_EQ(streamed, j.dump());
  auto back = topology::parse_json(streamed);
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(back->edges, t.snapshot.edges);
  // A single node's snapshot has no such fields.
  topology::TopologySnapshot plain = t.snapshot;
  plain.edges[0].observed_by.clear();
  plain.edges[0].address_reused = false;
  EXPECT_FALSE(topology::to_json(plain)["edges"][0].contains("observed_by"));
  auto bad = j;
  bad["edges"][0]["observed_by"][0]["side"] = "middle";
  EXPECT_FALSE(topology::from_json(bad));
}

TEST(ClusterSeries, MissingLabelsAreAnErrorNamingNodeVersionAndLabel) {
  RawResults r = cross_node(5, 5);
  r.counters["hostscope_connections_opened_total"][1].labels.erase("dst_port");
  auto s = assemble(r, "Prometheus http://p:9090");
  ASSERT_FALSE(s);
  const std::string m = s.error().str();
  EXPECT_NE(m.find("node-b"), std::string::npos) << m;
  EXPECT_NE(m.find("0.1.0+abc"), std::string::npos) << m;
  EXPECT_NE(m.find("'dst_port'"), std::string::npos) << m;
  EXPECT_NE(m.find("http://p:9090"), std::string::npos) << m;

  r = cross_node(5, 5);
  r.counters["hostscope_connections_opened_total"][0].labels["dst_port"] = "80a";
  EXPECT_FALSE(assemble(r, "p"));
  r = cross_node(5, 5);
  r.endpoints_now[0].labels["address"] = "not-an-ip";
  EXPECT_FALSE(assemble(r, "p"));
  r = cross_node(5, 5);
  r.endpoints_window[0].labels.erase("node");
  EXPECT_FALSE(assemble(r, "p"));
}

// The count over the window from the values at its end and start, as `(last_over_time(M[W]) - M offset W) >= 0 or
// last_over_time(M[W])` would answer.
TEST(ClusterSeries, WindowDeltaIsTheExactCountOverTheWindow) {
  EXPECT_EQ(end_query("m", "1h"), "last_over_time(m[1h])");
  EXPECT_EQ(start_query("m", "1h"), "m offset 1h");
  auto at = [](const std::string& edge, double v, bool named) {
    std::map<std::string, std::string> l{{"node", "a"}, {"src_service", edge}};
    if (named) l["__name__"] = "m";  // last_over_time may drop the name; the offset selector keeps it
    return sample(std::move(l), v);
  };
  auto d = window_delta({at("steady", 50, false), at("born-inside", 7, false), at("reset", 3, false),
                         at("idle", 20, false)},
                        {at("steady", 30, true), at("reset", 40, true), at("idle", 20, true), at("gone", 9, true)});
  ASSERT_EQ(d.size(), 4u) << "only series with a value in the window";
  EXPECT_EQ(d[0].value, 20);  // 50 - 30
  EXPECT_EQ(d[1].value, 7);   // not there at the start: all of it
  EXPECT_EQ(d[2].value, 3);   // went down: restarted inside the window, counts from 0
  EXPECT_EQ(d[3].value, 0);   // nothing new
  EXPECT_EQ(d[0].labels.at("src_service"), "steady");
}

// ---- Prometheus replies --------------------------------------------------------------------------------------

TEST(PromReply, ParsesAnInstantVector) {
  auto r = parse_query_reply(
      R"({"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"__name__":"up","node":"a"},"value":[1700000000.5,"3"]},
        {"metric":{},"value":[1700000000.5,"0.25"]}]}})",
      200, "q");
  ASSERT_TRUE(r) << r.error().str();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].labels, (std::map<std::string, std::string>{{"node", "a"}})) << "__name__ is not kept";
  EXPECT_EQ((*r)[0].value, 3);
  EXPECT_EQ((*r)[1].value, 0.25);
}

// The reply is read as it streams (no document of it is kept): the keys may come in any order, and what the parser
// does not know (warnings, stats, new fields) is skipped however deeply it nests.
TEST(PromReply, ReadsKeysInAnyOrderAndSkipsWhatItDoesNotKnow) {
  auto r = parse_query_reply(
      R"({"data":{"result":[{"value":[1700000000,"7"],"extra":{"a":[1,{"b":2}]},"metric":{"node":"a","job":"x"}}],
                  "stats":{"timings":{"evalTotalTime":0.5}},"resultType":"vector"},
          "warnings":["w",{"x":[]}],"status":"success"})",
      200, "q");
  ASSERT_TRUE(r) << r.error().str();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].value, 7);
  EXPECT_EQ((*r)[0].labels, (std::map<std::string, std::string>{{"node", "a"}, {"job", "x"}}));
  auto err = [](std::string_view body) {
    auto r = parse_query_reply(body, 200, "q");
    return r ? std::string("(parsed)") : r.error().str();
  };
  // A matrix whose elements come before its type is refused for being a matrix, not for its elements.
  EXPECT_NE(err(R"({"status":"success","data":{"result":[{"metric":{},"values":[[1,"1"]]}],"resultType":"matrix"}})")
                .find("expected an instant vector"),
            std::string::npos);
  // The first bad element is named, whatever follows it.
  auto e = err(R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]},
                 {"metric":{"a":{"nested":"x"}},"value":[1,"1"]},{"metric":[],"value":[1,"1"]}]}})");
  EXPECT_NE(e.find("data.result[1]: metric: a label value is not a string"), std::string::npos) << e;
  EXPECT_NE(err(R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1",2]}]}})")
                .find("data.result[0]: value"),
            std::string::npos);
  EXPECT_NE(err(R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":["1","1"]}]}})")
                .find("data.result[0]: value"),
            std::string::npos);
  EXPECT_NE(err(R"({"status":"success","data":{"resultType":"vector","result":[3]}})").find("data.result[0]: expected an object"),
            std::string::npos);
  EXPECT_NE(err(R"({"status":"success","data":{"resultType":"vector","result":{}}})").find("data.result: missing"),
            std::string::npos);
  EXPECT_NE(err(R"({"status":"success","data":[]})").find("data: missing"), std::string::npos);
  EXPECT_NE(err(R"({"status":1})").find("no status"), std::string::npos);
  EXPECT_NE(err(R"({"status":"success","data":{"resultType":"vector","result":[]}} trailing)").find("not a JSON object"),
            std::string::npos);
}

TEST(PromReply, RefusesWhatIsNotAGoodReply) {
  auto err = [](std::string_view body, int status = 200, PromLimits l = {}) {
    auto r = parse_query_reply(body, status, "Prometheus http://p query 'x'", l);
    return r ? std::string("(parsed)") : r.error().str();
  };
  auto e = err(R"({"status":"error","errorType":"bad_data","error":"parse error at char 3"})", 400);
  EXPECT_NE(e.find("bad_data"), std::string::npos) << e;
  EXPECT_NE(e.find("parse error at char 3"), std::string::npos) << e;
  EXPECT_NE(e.find("http://p"), std::string::npos) << e;
  EXPECT_NE(err("<html>bad gateway</html>", 502).find("HTTP 502"), std::string::npos);
  EXPECT_NE(err(R"({"status":"success","data":{"resultType":"matrix","result":[]}})").find("matrix"), std::string::npos);
  EXPECT_NE(err(R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}})")
                .find("value"),
            std::string::npos);
  EXPECT_NE(err(R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":1},"value":[1,"1"]}]}})")
                .find("label value"),
            std::string::npos);
  EXPECT_NE(err(R"({"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]}]}})").find("metric"),
            std::string::npos);
  EXPECT_NE(err("[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]").find("nested"), std::string::npos);
  PromLimits small;
  small.max_series = 1;
  EXPECT_NE(err(R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]},
                {"metric":{},"value":[1,"1"]}]}})",
                200, small)
                .find("over the limit"),
            std::string::npos);
  small.max_bytes = 10;
  EXPECT_NE(err(R"({"status":"success"})", 200, small).find("byte limit"), std::string::npos);
  EXPECT_EQ(err(R"({"status":"success","data":{"resultType":"vector","result":[]}})"), "(parsed)");
}

TEST(PromUrl, AcceptsHttpWithAPrefixAndRefusesTheRest) {
  auto u = parse_prom_url("http://prom.example:9090/prometheus/");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->origin, "http://prom.example:9090");
  EXPECT_EQ(u->prefix, "/prometheus");
  EXPECT_FALSE(parse_prom_url("https://prom:9090"));
  EXPECT_FALSE(parse_prom_url("prom:9090"));
  EXPECT_FALSE(parse_prom_url("http://"));
  EXPECT_FALSE(parse_prom_url("http://a:1/?q=1"));
}

// A local HTTP server standing in for Prometheus (loopback only).
class FakeProm : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = srv_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    thread_ = std::thread([this] { srv_.listen_after_bind(); });
    // Requests wait in the listen backlog until the server runs, so this only keeps stop() from racing listen.
    for (int i = 0; i < 5000 && !srv_.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  void TearDown() override {
    srv_.stop();
    if (thread_.joinable()) thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  httplib::Server srv_;
  int port_ = 0;
  std::thread thread_;
};

TEST_F(FakeProm, QueryPassesTimeAndQueryAndBoundsTheBody) {
  std::string seen_query, seen_time;
  srv_.Get("/api/v1/query", [&](const httplib::Request& req, httplib::Response& res) {
    seen_query = req.get_param_value("query");
    seen_time = req.get_param_value("time");
    if (seen_query == "big") {
      res.set_content(std::string(4096, ' '), "application/json");
      return;
    }
    res.set_content(R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{"node":"x"},"value":[1,"2"]}]}})",
                    "application/json");
  });
  PromLimits l;
  l.max_bytes = 1024;
  auto p = Prometheus::open(url(), l);
  ASSERT_TRUE(p);
  auto r = p->query("sum(up)", 1700000000.25);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(seen_query, "sum(up)");
  EXPECT_EQ(seen_time, "1700000000.250");
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].value, 2);
  auto big = p->query("big", 1);
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().str().find("byte limit"), std::string::npos) << big.error().str();
}

TEST_F(FakeProm, EmptyResultIsTheScrapingError) {
  srv_.Get("/api/v1/query", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"success","data":{"resultType":"vector","result":[]}})", "application/json");
  });
  auto p = Prometheus::open(url());
  ASSERT_TRUE(p);
  std::vector<std::string> warnings;
  auto s = collect(*p, {"15m", "", 1}, warnings);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().str(), "no hostscope series in Prometheus at " + url() +
                                 " over the last 15m: is it scraping the agents?");
}

TEST_F(FakeProm, DifferentAgentVersionsAreAWarning) {
  srv_.Get("/api/v1/query", [&](const httplib::Request& req, httplib::Response& res) {
    std::string result = "[]";
    if (req.get_param_value("query").find("hostscope_build_info") != std::string::npos)
      result = R"([{"metric":{"node":"a","version":"0.1.0"},"value":[1,"1"]},
                   {"metric":{"node":"b","version":"0.2.0"},"value":[1,"1"]}])";
    res.set_content(R"({"status":"success","data":{"resultType":"vector","result":)" + result + "}}", "application/json");
  });
  auto p = Prometheus::open(url());
  ASSERT_TRUE(p);
  std::vector<std::string> warnings;
  auto s = collect(*p, {"1h", "", 1}, warnings);
  ASSERT_TRUE(s) << s.error().str();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("a=0.1.0, b=0.2.0"), std::string::npos) << warnings[0];
}

// collect() sends its queries in order, two at a time ahead of their use (a family's start and end are evaluated
// together, and at most two replies wait in memory), and a failing query ends the collection with its error.
TEST_F(FakeProm, QueriesRunTwoAtATimeAndAFailureEndsTheCollection) {
  std::mutex m;
  std::condition_variable cv;
  int inflight = 0, peak = 0;
  std::vector<std::string> seen;
  bool pair_together = false;  // the first family's start waited for its end to arrive
  std::string fail;            // a query answered with a Prometheus error
  srv_.Get("/api/v1/query", [&](const httplib::Request& req, httplib::Response& res) {
    const std::string q = req.get_param_value("query");
    {
      std::unique_lock lock(m);
      seen.push_back(q);
      peak = std::max(peak, ++inflight);
      cv.notify_all();
      if (q == start_query(kCounterFamilies[0], "1h"))
        pair_together = cv.wait_for(lock, std::chrono::seconds(10), [&] {
          return std::find(seen.begin(), seen.end(), end_query(kCounterFamilies[0], "1h")) != seen.end();
        });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // time for a third query to arrive, were one sent
    {
      std::lock_guard lock(m);
      --inflight;
    }
    if (q == fail) {
      res.status = 400;
      res.set_content(R"({"status":"error","errorType":"bad_data","error":"planted"})", "application/json");
      return;
    }
    res.set_content(R"({"status":"success","data":{"resultType":"vector","result":[]}})", "application/json");
  });
  auto p = Prometheus::open(url());
  ASSERT_TRUE(p);
  std::vector<std::string> warnings;
  auto s = collect(*p, {"1h", "5m", 1}, warnings);
  ASSERT_FALSE(s);  // every result is empty
  EXPECT_NE(s.error().str().find("no hostscope series"), std::string::npos) << s.error().str();
  EXPECT_EQ(seen.size(), 3 + 2 * kCounterFamilies.size() + 3) << "build info, endpoints, counters, active, rates";
  EXPECT_LE(peak, 2);
  EXPECT_TRUE(pair_together) << "a family's start and end were not evaluated together";
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ((std::set<std::string>{seen[0], seen[1]}),
            (std::set<std::string>{"last_over_time(hostscope_build_info[1h])", "hostscope_endpoint_info"}))
      << "the first two queries, sent together";

  seen.clear();
  fail = end_query("hostscope_connections_closed_total", "1h");
  s = collect(*p, {"1h", "5m", 1}, warnings);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().str().find("planted"), std::string::npos) << s.error().str();
  EXPECT_NE(s.error().str().find(fail), std::string::npos) << s.error().str();
  EXPECT_LE(seen.size(), 3 + 2 * 2 + 2u) << "queries past the failure's next two were sent";
}

// `topology --cluster --at TIME`: every query is evaluated at TIME, the end of the window; a bad time is refused
// before anything is sent.
TEST_F(FakeProm, ClusterAtEvaluatesEveryQueryAtThatTime) {
  std::mutex m;
  std::set<std::string> times;
  srv_.Get("/api/v1/query", [&](const httplib::Request& req, httplib::Response& res) {
    {
      std::lock_guard lock(m);
      times.insert(req.get_param_value("time"));
    }
    std::string result = "[]";
    if (req.get_param_value("query").find("hostscope_build_info") != std::string::npos)
      result = R"([{"metric":{"node":"a","version":"0.1.0"},"value":[1,"1"]}])";
    res.set_content(R"({"status":"success","data":{"resultType":"vector","result":)" + result + "}}", "application/json");
  });
  cli::ClusterOptions o{true, url(), "1h", "", "2026-01-02T03:04:05Z"};
  auto src = cli::open_cluster_source(o);
  ASSERT_TRUE(src) << src.error().str();
  auto snap = (*src)->snapshot({});
  ASSERT_TRUE(snap) << snap.error().str();
  EXPECT_EQ(times, (std::set<std::string>{"1767323045.000"}));
  EXPECT_NE((*src)->describe().find("ending at 2026-01-02T03:04:05Z"), std::string::npos) << (*src)->describe();
  o.at = "last tuesday";
  auto bad = cli::open_cluster_source(o);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().str().rfind("--at: ", 0), 0u) << bad.error().str();
}

TEST(PromClient, UnreachablePrometheusIsAClearError) {
  // Bind a port and close it without listening: nothing answers there.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), len), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const int port = ntohs(a.sin_port);
  close(fd);
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  auto p = Prometheus::open(url);
  ASSERT_TRUE(p);
  auto r = p->query("up", 1);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find(url), std::string::npos) << r.error().str();
  EXPECT_NE(r.error().str().find("unreachable"), std::string::npos) << r.error().str();
}

}  // namespace
}  // namespace hostscope::cluster
