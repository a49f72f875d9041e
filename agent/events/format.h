#pragma once
// Output formats of `hostscope connections`: JSON lines (schema in docs/events.md) and a tcplife-style table.
// Both append to a caller-owned buffer so a batch is written with one write().
#include <fmt/format.h>

#include <nlohmann/json_fwd.hpp>
#include <string>

#include "common/connection.h"

namespace hostscope::events {

// Fields an identity layer can add to an event line (empty/absent fields are omitted).
struct EventIdentity {
  std::string_view service;
  std::optional<uint32_t> peer_pid;
  std::string_view peer_service;
};

void append_json(fmt::memory_buffer& out, const ConnectionEvent& e, const EventIdentity* id = nullptr);
void append_table_header(fmt::memory_buffer& out);

// One row of the table. `connections` fills it from an event (embedded mode) or from the agent's JSON event line
// (table_row_from_json) and writes it with the one append_table_row, so both print the same row: the time in UTC,
// and bytes outside printable ASCII in the text columns shown as '?' (comm is the process's to choose: no
// control character reaches the terminal).
struct TableRow {
  std::string time;  // HH:MM:SS, UTC
  uint32_t pid = 0;
  std::string comm, role, local, remote;  // local/remote: addr:port, [v6addr]:port
  uint64_t bytes_sent = 0, bytes_received = 0;
  std::string ms = "-", latency_us = "-";  // "-" when unknown
  std::string outcome, service;
};
TableRow table_row(const ConnectionEvent& e, const EventIdentity* id = nullptr);
// From a JSON event line (docs/events.md); fields it lacks stay empty.
TableRow table_row_from_json(const nlohmann::json& j);
void append_table_row(fmt::memory_buffer& out, const TableRow& r);
inline void append_table_row(fmt::memory_buffer& out, const ConnectionEvent& e, const EventIdentity* id = nullptr) {
  append_table_row(out, table_row(e, id));
}

// RFC 3339 UTC with nanoseconds: 2026-11-24T01:02:03.123456789Z
void append_rfc3339(fmt::memory_buffer& out, uint64_t ts_ns);
// JSON string body escaping (quotes, backslash, control characters, invalid UTF-8 bytes as \u00XX).
void append_json_escaped(fmt::memory_buffer& out, std::string_view s);

}  // namespace hostscope::events
