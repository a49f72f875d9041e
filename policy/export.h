#pragma once
// `policy export`: a linted policy set as Kubernetes NetworkPolicy (networking.k8s.io/v1) or CiliumNetworkPolicy
// (cilium.io/v2) objects, where the target can express it exactly, and a note for every element it cannot (or only
// approximately). What maps to what, and why, is in docs/policy.md, "Export to Kubernetes / Cilium".
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "policy/context.h"
#include "policy/diagnostic.h"
#include "policy/model.h"

namespace hostscope::policy {

enum class ExportFormat { Kubernetes, Cilium };

// The pod label a `service:` or `workload:` selector becomes (`--label-key`).
inline constexpr const char* kDefaultExportLabelKey = "app.kubernetes.io/name";

struct ExportOptions {
  ExportFormat format = ExportFormat::Kubernetes;
  std::string label_key = kDefaultExportLabelKey;
};

// Something the export left out or approximated, at the policy element it is about.
struct ExportNote {
  SourceLoc loc;
  std::string policy;
  std::string text;
  // "web.yaml:12:5: note: policy web: egress rule 2 (log): ..."
  std::string str() const;
};

struct ExportedObject {
  std::string policy;  // the hostscope policy it came from
  std::string name;    // metadata.name
  std::string yaml;    // one YAML document (starts with "---"), its notes as comments at the top
};

struct ExportResult {
  std::vector<ExportedObject> objects;  // merge order
  std::vector<ExportNote> notes;        // merge order; also the comments of the objects they concern
  size_t skipped = 0;                   // policies with no object at all
  bool exact() const { return notes.empty(); }
  // Every object as one multi-document YAML stream (for stdout).
  std::string stream() const;
};

// `set` must lint without errors (the CLI refuses anything else before calling this); `ctx` resolves named networks
// and the namespaces of peer services.
ExportResult export_policies(const PolicySet& set, const Context& ctx, const ExportOptions& o);

// A valid metadata.name (DNS-1123 subdomain: lowercase alphanumerics, '-' and '.', starting and ending with an
// alphanumeric, at most 253 characters) made from `name`; unchanged when it already is one.
std::string dns_subdomain(std::string_view name);
// Kubernetes label syntax: a key is [prefix/]name (prefix a DNS subdomain, name at most 63 of [A-Za-z0-9-_.] starting
// and ending alphanumeric); a value is empty or such a name.
bool valid_label_key(std::string_view key);
bool valid_label_value(std::string_view value);

}  // namespace hostscope::policy
