// `hostscope top` as a user sees it: the full-screen view in a real terminal (tmux, 200x50), driven with
// send-keys and read with capture-pane, against a fresh agent on a simulated node (topology_scenario.h).
#include <gtest/gtest.h>

#include "topology_scenario.h"

namespace hostscope::testing {
namespace {

constexpr int kCartConns = 4, kDbConns = 3;

// A tmux server of our own (-L: its own socket, -f /dev/null: no user config), killed at the end.
class Tmux {
 public:
  Tmux() : name_("hs-test-" + std::to_string(getpid())) {}
  ~Tmux() {
    sh(cmd("kill-server"));
    if (!socket_.empty()) unlink(socket_.c_str());  // kill-server leaves the socket file behind
  }
  Tmux(const Tmux&) = delete;
  Tmux& operator=(const Tmux&) = delete;
  std::string cmd(const std::string& args) const { return "tmux -L " + name_ + " -f /dev/null " + args; }
  bool start_shell() {
    if (sh(cmd("new-session -d -x 200 -y 50 -s hs \"env PS1='hs\\$ ' sh\"")).status != 0) return false;
    socket_ = sh(cmd("display-message -p '#{socket_path}'")).out;
    while (!socket_.empty() && socket_.back() == '\n') socket_.pop_back();
    return true;
  }
  void keys(const std::string& args) const { sh(cmd("send-keys -t hs " + args)); }
  void type(const std::string& text) const { sh(cmd("send-keys -t hs -l '" + text + "'")); }
  std::string screen() const { return sh(cmd("capture-pane -p -t hs")).out; }
  std::string current_command() const { return sh(cmd("display-message -p -t hs '#{pane_current_command}'")).out; }

 private:
  std::string name_;
  std::string socket_;
};

bool has(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

// The table's rows (below the title, status and header lines) that name this client and server.
bool shows_edge(const std::string& screen, const std::string& client, const std::string& server) {
  size_t pos = 0;
  while (pos < screen.size()) {
    size_t end = screen.find('\n', pos);
    std::string line = screen.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (line.rfind(client, 0) == 0 && has(line, " " + server + " ")) return true;
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return false;
}

TEST(TopTmux, ShowsEdgesSortsFiltersAndQuitsRestoringTheTerminal) {
  HS_REQUIRE_ROOT();
  HS_REQUIRE_SETUP(sh("command -v tmux").status == 0, "tmux not installed");
  TopologyNode node({"topo-web", "topo-cart", "topo-db"});
  HS_REQUIRE_SETUP(node.error().empty(), node.error());
  HS_REQUIRE_SETUP(node.start_agent(), "hostscope agent did not answer on " + node.sock());

  Tmux tmux;
  ASSERT_TRUE(tmux.start_shell());
  // The agent sees every socket of this (shared) machine; the initial filter keeps the screen to the scenario.
  tmux.type(hostscope_bin() + " top --socket " + node.sock() + " --interval 0.3 --filter topo-; echo HS_TOP_EXIT=$?");
  tmux.keys("Enter");
  ASSERT_TRUE(eventually([&] { return has(tmux.screen(), "hostscope top |"); }, std::chrono::seconds(20)))
      << tmux.screen();
  EXPECT_TRUE(has(tmux.screen(), "sort: rate"));

  // Traffic while the view runs: two services called by topo-web over loopback.
  Child cart(node.run("topo-cart", {"server", "127.0.0.1", "0", "2000", std::to_string(kCartConns)}));
  Child db(node.run("topo-db", {"server", "127.0.0.1", "0", "50000", std::to_string(kDbConns)}));
  int cart_port = ready_port(cart), db_port = ready_port(db);
  ASSERT_GT(cart_port, 0);
  ASSERT_GT(db_port, 0);
  Child c1(node.run("topo-web", {"client", "127.0.0.1", std::to_string(cart_port), "2000",
                                 "concurrent=" + std::to_string(kCartConns)}));
  Child c2(node.run("topo-web", {"client", "127.0.0.1", std::to_string(db_port), "50000",
                                 "concurrent=" + std::to_string(kDbConns)}));
  EXPECT_EQ(c1.wait(), 0);
  EXPECT_EQ(c2.wait(), 0);
  EXPECT_EQ(cart.wait(), 0);
  EXPECT_EQ(db.wait(), 0);

  std::string s;
  ASSERT_TRUE(eventually(
      [&] {
        s = tmux.screen();
        return shows_edge(s, "topo-web", "topo-cart") && shows_edge(s, "topo-web", "topo-db") &&
               has(s, "2 edges");
      },
      std::chrono::seconds(20)))
      << s;
  EXPECT_FALSE(has(s, "external:127.0.0.1")) << "every connection was attributed to its server:\n" << s;

  // Sorting: each key changes the sort named in the title line.
  for (auto [key, name] : {std::pair{"b", "sort: bytes"}, std::pair{"f", "sort: failures"},
                           std::pair{"l", "sort: latency"}, std::pair{"r", "sort: rate"}}) {
    tmux.keys(key);
    EXPECT_TRUE(eventually([&] { return has(tmux.screen(), name); }, std::chrono::seconds(10)))
        << "after '" << key << "':\n" << tmux.screen();
  }

  // Filtering: '/', replace the text, Enter: only the matching edge stays.
  tmux.keys("/");
  ASSERT_TRUE(eventually([&] { return has(tmux.screen(), "filter: topo-_"); }, std::chrono::seconds(10)))
      << tmux.screen();
  for (int i = 0; i < 5; i++) tmux.keys("BSpace");
  tmux.type("topo-db");
  tmux.keys("Enter");
  EXPECT_TRUE(eventually(
      [&] {
        s = tmux.screen();
        return has(s, "filter: topo-db |") && has(s, "1 edges") && shows_edge(s, "topo-web", "topo-db") &&
               !has(s, "topo-cart");
      },
      std::chrono::seconds(10)))
      << s;

  // q: the view ends, the terminal is restored (the shell's screen is back, no trace of the view) and the
  // command exited with status 0.
  tmux.keys("q");
  EXPECT_TRUE(eventually([&] { return has(tmux.screen(), "HS_TOP_EXIT=0"); }, std::chrono::seconds(10)))
      << tmux.screen();
  s = tmux.screen();
  EXPECT_FALSE(has(s, "hostscope top |")) << s;
  EXPECT_FALSE(has(s, "CLIENT")) << s;
  EXPECT_TRUE(eventually([&] { return tmux.current_command().rfind("sh", 0) == 0; }, std::chrono::seconds(5)))
      << tmux.current_command();
  EXPECT_EQ(node.stop_agent(), 0);
}

}  // namespace
}  // namespace hostscope::testing
