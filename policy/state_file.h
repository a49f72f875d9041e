#pragma once
// Files under the policy state directory are replaced atomically (write to <name>.tmp, then rename), so a crash
// or a full disk leaves either the old content or the new, never a torn file.
#include <filesystem>
#include <string>

#include "policy/expected.h"

namespace hostscope::policy {

Outcome write_file_atomic(const std::filesystem::path& p, const std::string& text);

}  // namespace hostscope::policy
