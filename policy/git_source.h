#pragma once
// A policy set kept in Git, read with libgit2: a bare clone of one branch under the agent's state (work_dir),
// fetched on demand; commits are verified (ancestry, optional SSH signatures) and their policy sub-directory is
// exported into a staging directory for the loader. Credentials are read from files by the credential callback
// and never logged. A working copy that cannot be opened or fetched is replaced by a fresh clone; nothing here
// touches the rules in force.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "policy/command.h"
#include "common/result.h"
#include "policy/reconcile_config.h"

namespace hostscope::policy {

struct CommitInfo {
  std::string id;       // 40 hex digits
  int64_t time = 0;     // committer time, unix seconds
  std::string summary;  // first line of the message
};

class GitSource {
 public:
  // `cancel` (optional) aborts a running fetch when it becomes true.
  GitSource(GitSourceConfig cfg, std::string work_dir, const std::atomic<bool>* cancel = nullptr,
            std::shared_ptr<CommandRunner> runner = nullptr);
  ~GitSource();
  GitSource(const GitSource&) = delete;
  GitSource& operator=(const GitSource&) = delete;

  // Fetches the branch and returns its tip. A working copy that is missing, corrupt or fails to fetch is
  // re-cloned into a fresh directory that replaces it only when the clone succeeded.
  Result<CommitInfo> fetch();
  // True when `commit` is `ancestor` or descends from it; false when `ancestor` is unknown (history rewritten).
  Result<bool> descends_from(const std::string& commit, const std::string& ancestor);
  // Checks the commit's SSH signature against cfg.allowed_signers_file with `ssh-keygen -Y verify`, as git does
  // for gpg.format=ssh. Fails for unsigned commits, non-SSH signatures and keys not in the file.
  Status verify_signature(const std::string& commit);
  // Writes the regular files directly in cfg.directory of the commit's tree into `dest` (created, must not exist).
  Status export_tree(const std::string& commit, const std::string& dest);

  bool recloned_last_fetch() const { return recloned_; }

 private:
  struct Repo;
  Result<CommitInfo> fetch_into(const std::string& dir);
  GitSourceConfig cfg_;
  std::string work_dir_;
  const std::atomic<bool>* cancel_;
  std::shared_ptr<CommandRunner> run_;
  std::unique_ptr<Repo> repo_;
  bool recloned_ = false;
};

// `hostscope policy diff --git REPO`: the policy files directly in `directory` of revision `rev` (anything git
// understands: a commit id, a branch, HEAD~1, a tag) of the repository at or above `repo_path`, written into `dest`
// (created, must not exist). The same checks as GitSource::export_tree (regular files only, bounded size and count).
Status export_revision(const std::string& repo_path, const std::string& rev, const std::string& directory, const std::string& dest);

}  // namespace hostscope::policy
