#pragma once
// Git fixtures for the policy-from-Git tests: a temporary directory, a bare "remote" repository and a clone to
// commit and push from, all made with the git CLI; SSH signing keys made with ssh-keygen.
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "support/privileged.h"

namespace hostscope::testing {

inline std::string q(const std::string& s) { return "'" + s + "'"; }

// A mkdtemp directory removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "hs-git-XXXXXX").string();
    if (mkdtemp(t.data())) path_ = t;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

// remote.git (bare, branch main) and a working clone `work` that commits and pushes to it.
class GitRepo {
 public:
  explicit GitRepo(const std::string& dir) : remote_(dir + "/remote.git"), work_(dir + "/work") {
    ok_ = sh("git init -q --bare -b main " + q(remote_)).status == 0 && sh("git clone -q " + q(remote_) + " " + q(work_)).status == 0 &&
          git("config user.email tester@example.com").status == 0 && git("config user.name Tester").status == 0 &&
          git("symbolic-ref HEAD refs/heads/main").status == 0;
  }
  bool ok() const { return ok_; }
  const std::string& remote() const { return remote_; }
  const std::string& work() const { return work_; }
  CmdResult git(const std::string& args) const { return sh("git -C " + q(work_) + " " + args); }
  void write(const std::string& rel, const std::string& text) const {
    auto p = std::filesystem::path(work_) / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
  }
  // Commits everything (optionally signed with an SSH key file) and pushes; returns the commit id ("" on failure).
  std::string commit(const std::string& msg, const std::string& signing_key = "", bool force = false) const {
    std::string sign = signing_key.empty() ? "" : "-c gpg.format=ssh -c user.signingkey=" + q(signing_key) + " ";
    if (git("add -A").status != 0) return "";
    auto c = sh("git -C " + q(work_) + " " + sign + "commit -q --allow-empty " + (signing_key.empty() ? "" : "-S ") + "-m " + q(msg));
    if (c.status != 0) return "";
    if (git(std::string("push -q ") + (force ? "--force " : "") + "origin main").status != 0) return "";
    return head();
  }
  std::string head() const {
    auto r = git("rev-parse HEAD");
    while (!r.out.empty() && (r.out.back() == '\n' || r.out.back() == ' ')) r.out.pop_back();
    return r.status == 0 ? r.out : "";
  }

 private:
  std::string remote_, work_;
  bool ok_ = false;
};

// An ed25519 key pair at `path` (+ .pub); returns the public key line ("" on failure).
inline std::string make_ssh_key(const std::string& path) {
  if (sh("ssh-keygen -q -t ed25519 -N '' -C test -f " + q(path)).status != 0) return "";
  std::ifstream f(path + ".pub");
  std::string line;
  std::getline(f, line);
  return line;
}

}  // namespace hostscope::testing
