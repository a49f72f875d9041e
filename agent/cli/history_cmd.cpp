// `hostscope history status`: what the node's topology history file holds (read-only, straight from the file), and
// when an agent runs, how its writer is doing (its health reply).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "agent/cli/commands.h"
#include "agent/cli/source.h"
#include "agent/history/store.h"
#include "agent/util/logging.h"
#include "common/api_client.h"
#include "common/topology_json.h"

namespace hostscope::cli {

namespace {

struct HistoryOptions {
  SourceOptions source;  // --config (for history.path) and --socket
  std::string path;      // --path: the file; "" = history.path of --config
  std::string output = "text";
};

std::string when(uint64_t ns) { return ns ? topology::format_time(ns) : "-"; }

std::string width_name(uint64_t ns) {
  return ns % history::kHourNs == 0 ? fmt::format("{}h", ns / history::kHourNs) : fmt::format("{}m", ns / history::kMinuteNs);
}

// The agent's writer as its health reply shows it; null when no agent answers or history is off there.
nlohmann::json agent_writer(const std::string& socket) {
  auto up = agent_answers(socket);
  if (!up || !*up) return nullptr;
  auto h = api::call(socket, "health");
  if (!h || !h->contains("history")) return nullptr;
  return (*h)["history"];
}

int run_status(const HistoryOptions& o) {
  auto p = history_path(o.path, o.source);
  if (!p) {
    spdlog::error("{}", p.error().str());
    return 1;
  }
  const std::string path = *p;
  auto writer = agent_writer(o.source.socket);
  auto store = history::Store::open(path, {}, true);
  Result<history::StoreStatus> st = store ? store->status() : Result<history::StoreStatus>(store.error());
  if (o.output == "json") {
    nlohmann::json j = {{"path", path}};
    if (st) {
      j["schema_version"] = st->schema_version;
      j["file_bytes"] = st->file_bytes;
      j["used_bytes"] = st->used_bytes;
      j["rows"] = st->rows;
      j["edges"] = st->edges;
      j["oldest"] = st->oldest_ns ? nlohmann::json(topology::format_time(st->oldest_ns)) : nlohmann::json(nullptr);
      j["newest"] = st->newest_ns ? nlohmann::json(topology::format_time(st->newest_ns)) : nlohmann::json(nullptr);
      auto by = nlohmann::json::object();
      for (auto [w, n] : st->rows_by_width) by[width_name(w)] = n;
      j["rows_by_interval"] = by;
      j["summary_rows"] = st->summary_rows;
      j["counters"] = st->counters;
    } else {
      j["error"] = st.error().str();
    }
    if (!writer.is_null()) j["agent"] = writer;
    fmt::print("{}\n", j.dump(2));
    return st ? 0 : 1;
  }
  fmt::print("history:     {}\n", path);
  if (!st) {
    fmt::print("error:       {}\n", st.error().str());
  } else {
    fmt::print("size:        {} bytes on disk, {} bytes in use (schema v{})\n", st->file_bytes, st->used_bytes,
               st->schema_version);
    fmt::print("intervals:   {} .. {}\n", when(st->oldest_ns), when(st->newest_ns));
    std::string by;
    for (auto [w, n] : st->rows_by_width) by += fmt::format("{}{} x {}", by.empty() ? "" : ", ", n, width_name(w));
    fmt::print("rows:        {} ({}), {} edges\n", st->rows, by.empty() ? "none" : by, st->edges);
    fmt::print("summaries:   {} rows (recent minutes added up per 10 minutes)\n", st->summary_rows);
    fmt::print("last write:  {}\n", when(st->counters["last_write_ns"]));
    // Every counter the file holds (rows_rolled_up_early and rows_migrated came with schema 2), by name; times (_ns)
    // are not counters.
    std::string counters;
    for (const auto& [name, n] : st->counters)
      if (!name.ends_with("_ns")) counters += fmt::format("{}{} {}", counters.empty() ? "" : ", ", name, n);
    fmt::print("counters:    {}\n", counters.empty() ? "none" : counters);
  }
  if (!writer.is_null()) {
    if (writer.value("ok", false))
      fmt::print("agent:       writing ({} intervals written, {} dropped since it started)\n",
                 writer.value("intervals_written", uint64_t(0)), writer.value("intervals_dropped", uint64_t(0)));
    else
      fmt::print("agent:       NOT writing: {}\n", writer.value("error", std::string()));
  }
  return st ? 0 : 1;
}

}  // namespace

void register_history(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("history", "The topology history stored on this node");
  cmd->require_subcommand(1);
  auto o = std::make_shared<HistoryOptions>();
  auto* status = cmd->add_subcommand("status", "Size, intervals, rows and counters of the history file (read-only)");
  status->add_option("--path", o->path, "History file (default: history.path of --config)");
  status->add_option("--config", o->source.config, "Agent config (for history.path)")->capture_default_str();
  status->add_option("--socket", o->source.socket, "Agent API socket (the writer's state when an agent runs)")
      ->capture_default_str();
  status->add_option("-o,--output", o->output, "Format")->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  status->callback([o, &exit_code] { exit_code = run_status(*o); });
}

}  // namespace hostscope::cli
