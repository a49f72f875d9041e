#pragma once
// Output formats of `hostscope connections`: JSON lines (schema in docs/events.md) and a tcplife-style table.
// Both append to a caller-owned buffer so a batch is written with one write().
#include <fmt/format.h>

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
void append_table_row(fmt::memory_buffer& out, const ConnectionEvent& e, const EventIdentity* id = nullptr);

// RFC 3339 UTC with nanoseconds: 2026-11-24T01:02:03.123456789Z
void append_rfc3339(fmt::memory_buffer& out, uint64_t ts_ns);
// JSON string body escaping (quotes, backslash, control characters, invalid UTF-8 bytes as \u00XX).
void append_json_escaped(fmt::memory_buffer& out, std::string_view s);

}  // namespace hostscope::events
