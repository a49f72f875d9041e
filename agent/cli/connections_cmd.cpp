// `hostscope connections`: one line per finished connection (tcplife style), or JSON lines.
#include <unistd.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "agent/cli/commands.h"
#include "agent/cli/signals.h"
#include "agent/cli/source.h"
#include "agent/daemon/api_server.h"
#include "agent/events/filter.h"
#include "agent/events/format.h"
#include "agent/pipeline/pipeline.h"
#include "agent/util/io.h"
#include "agent/util/logging.h"
#include "common/api_client.h"

namespace hostscope::cli {

namespace {

struct ConnectionsOptions {
  std::string output = "table";
  events::ConnectionFilter filter;
  bpf::AttachMode attach = bpf::AttachMode::Auto;
  double duration_s = 0;
  uint64_t count = 0;
  uint32_t socket_table = 65536;
  uint32_t ring_mb = 8;
  bool identity = true;
  std::string kubelet_root = "/";
  std::string config;
  std::string socket = daemon::kDefaultSocketPath;
  bool embedded = false;
};

// Streams events from a running agent instead of loading the BPF programs again.
int run_via_daemon(const ConnectionsOptions& o) {
  nlohmann::json params = {{"opens", o.filter.opens}, {"failed_only", o.filter.failed_only}};
  if (!o.filter.comm.empty()) params["comm"] = o.filter.comm;
  if (!o.filter.pids.empty()) params["pids"] = o.filter.pids;
  if (!o.filter.ports.empty()) params["ports"] = o.filter.ports;
  block_shutdown_signals();
  std::atomic<bool> stop{false}, ended{false}, failed{false};
  std::atomic<uint64_t> shown{0};
  const bool json = o.output == "json";
  fmt::memory_buffer head;
  if (!json) events::append_table_header(head);
  write_all(1, head.data(), head.size());
  Status result;
  std::thread t([&] {
    result = api::stream(
        o.socket, "connections", params,
        [&](const std::string& line) {
          if (o.count && shown.load() >= o.count) return false;
          fmt::memory_buffer b;
          if (json) {
            b.append(line);
            b.push_back('\n');
          } else {
            auto j = nlohmann::json::parse(line, nullptr, false);
            if (j.is_discarded()) return true;
            events::append_table_row(b, events::table_row_from_json(j));
          }
          if (!write_all(1, b.data(), b.size())) {
            failed = true;
            return false;
          }
          shown++;
          return true;
        },
        &stop);
    ended = true;
  });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(o.duration_s);
  wait_for_shutdown([&] {
    return ended.load() || (o.count && shown.load() >= o.count) ||
           (o.duration_s > 0 && std::chrono::steady_clock::now() >= deadline);
  });
  stop = true;
  t.join();
  if (!result) {
    spdlog::error("{}", result.error().str());
    return 1;
  }
  fmt::print(stderr, "hostscope: {} events shown (from the agent at {}; lost events are in the agent's health)\n",
             shown.load(), o.socket);
  return 0;
}

int run_connections(const ConnectionsOptions& o) {
  if (!o.embedded) {
    auto up = agent_answers(o.socket);
    if (!up) {
      spdlog::error("{}", up.error().str());
      return 1;
    }
    if (*up) return run_via_daemon(o);
  }
  // The pipeline of the agent and of `top`, with the topology off: events go straight to the subscriber below.
  pipeline::PipelineOptions po;
  po.attach = o.attach;
  po.socket_table_size = o.socket_table;
  po.ring_bytes = o.ring_mb << 20;
  po.topology = false;
  po.emit_opens = o.filter.opens;
  po.identity = o.identity;
  po.identity_settings.kubelet_root = o.kubelet_root;
  po.identity_settings.config_file = o.config;
  po.keep_only = o.filter;
  pipeline::Pipeline pipe(po);

  const bool json = o.output == "json";
  std::atomic<bool> output_failed{false};
  std::atomic<uint64_t> shown{0};
  fmt::memory_buffer buf;
  if (!json) {
    events::append_table_header(buf);
    write_all(1, buf.data(), buf.size());
    buf.clear();
  }
  pipe.subscribe([&](std::span<const events::ConnectionEvent> batch, std::span<const pipeline::ResolvedEvent> ids) {
    if (output_failed.load(std::memory_order_relaxed)) return;
    uint64_t n = 0;
    for (size_t i = 0; i < batch.size(); i++) {
      if (o.count && shown.load(std::memory_order_relaxed) + n >= o.count) break;
      auto id = pipeline::event_identity(ids[i]);
      const events::EventIdentity* idp = o.identity ? &id : nullptr;  // --no-identity: no service column
      json ? events::append_json(buf, batch[i], idp) : events::append_table_row(buf, batch[i], idp);
      n++;
    }
    if (buf.size() && !write_all(1, buf.data(), buf.size())) output_failed = true;
    buf.clear();
    shown.fetch_add(n, std::memory_order_relaxed);
  });

  block_shutdown_signals();
  if (auto st = pipe.start(); !st) {
    spdlog::error("{}", st.error().str());
    if (geteuid() != 0) spdlog::error("hostscope needs root (CAP_BPF, CAP_PERFMON) to load its BPF programs");
    return 1;
  }
  spdlog::info("hostscope connections running");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(o.duration_s);
  wait_for_shutdown([&] {
    return output_failed.load() || (o.count && shown.load() >= o.count) ||
           (o.duration_s > 0 && std::chrono::steady_clock::now() >= deadline);
  });
  pipe.stop();
  auto h = pipe.health();
  if (o.identity) {
    spdlog::info("identity: {}", h.identity.dump());
    if (h.identity.contains("process_events") && h.identity["process_events"]["lost_ringbuf"].get<uint64_t>())
      spdlog::warn("lost {} process events (ring buffer full)", h.identity["process_events"]["lost_ringbuf"].get<uint64_t>());
  }
  const auto& c = h.kernel;
  fmt::print(stderr,
             "hostscope: {} events shown, {} received, {} lost (ring buffer full), {} lost (hook re-entered), "
             "{} untracked closes, {} socket-table inserts failed\n",
             shown.load(), h.events_delivered, c.ringbuf_dropped, c.prog_recursion_misses, c.close_untracked,
             c.socket_table_full);
  return 0;
}

}  // namespace

void register_connections(CLI::App& app, const GlobalOptions& g, int& exit_code) {
  auto o = std::make_shared<ConnectionsOptions>();
  auto* cmd = app.add_subcommand("connections", "Show TCP connections as they close (and open, with --opens)");
  cmd->add_option("-o,--output", o->output, "Output format")->check(CLI::IsMember({"table", "json"}))->capture_default_str();
  cmd->add_flag("--opens", o->filter.opens, "Also print a line when a connection opens");
  cmd->add_option("--pid", o->filter.pids, "Only connections owned by these pids");
  cmd->add_option("--comm", o->filter.comm, "Only connections owned by this command name");
  cmd->add_option("--port", o->filter.ports, "Only connections with this local or remote port");
  cmd->add_flag("--failed-only", o->filter.failed_only, "Only refused, timed-out, failed or reset connections");
  cmd->add_option_function<std::string>(
         "--attach",
         [o](const std::string& name) {
           auto m = bpf::parse_attach_mode(name);
           if (!m) throw CLI::ValidationError("--attach", fmt::format("must be one of {}", bpf::kAttachModeNames));
           o->attach = *m;
         },
         "Kernel hooks: auto (tp_btf, else classic), btf, classic")
      ->default_str("auto");
  cmd->add_option("--duration", o->duration_s, "Stop after this many seconds (0: until interrupted)");
  cmd->add_option("--count", o->count, "Stop after this many lines");
  cmd->add_option("--socket-table", o->socket_table, "Connections tracked at once in the kernel")->capture_default_str();
  cmd->add_option("--ring-mb", o->ring_mb, "Kernel ring buffer size in MiB (power of two)")
      ->check(CLI::IsMember({1, 2, 4, 8, 16, 32, 64, 128}))
      ->capture_default_str();
  cmd->add_option("--kubelet-root", o->kubelet_root,
                  "Prefix of the kubelet's /var/log/containers and /var/log/pods (Kubernetes names)")
      ->capture_default_str();
  cmd->add_option("--config", o->config, "YAML file with service_rules:");
  cmd->add_flag("!--no-identity", o->identity, "Do not resolve services and local peers");
  cmd->add_option("--socket", o->socket, "Agent API socket: when an agent answers there, events come from it")
      ->capture_default_str();
  cmd->add_flag("--embedded", o->embedded, "Do not use a running agent; load the BPF programs in-process");
  cmd->callback([o, &exit_code] { exit_code = run_connections(*o); });
}

}  // namespace hostscope::cli
