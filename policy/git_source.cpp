#include "policy/git_source.h"

#include <git2.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include <fmt/format.h>

#include "policy/loader.h"

namespace hostscope::policy {
namespace fs = std::filesystem;
namespace {

// RAII for every libgit2 object.
template <typename T, void (*Free)(T*)>
struct GitDeleter {
  void operator()(T* p) const {
    if (p) Free(p);
  }
};
template <typename T, void (*Free)(T*)>
using GitPtr = std::unique_ptr<T, GitDeleter<T, Free>>;
using RepoPtr = GitPtr<git_repository, git_repository_free>;
using RemotePtr = GitPtr<git_remote, git_remote_free>;
using CommitPtr = GitPtr<git_commit, git_commit_free>;
using TreePtr = GitPtr<git_tree, git_tree_free>;
using TreeEntryPtr = GitPtr<git_tree_entry, git_tree_entry_free>;
using BlobPtr = GitPtr<git_blob, git_blob_free>;

struct Buf {
  git_buf b = GIT_BUF_INIT;
  ~Buf() { git_buf_dispose(&b); }
  std::string str() const { return b.ptr ? std::string(b.ptr, b.size) : std::string(); }
};

void init_libgit2() {
  static std::once_flag once;
  std::call_once(once, [] { git_libgit2_init(); });  // never shut down: other threads may still use it
}

std::string git_err(const std::string& what) {
  const git_error* e = git_error_last();
  return fmt::format("{}: {}", what, e && e->message ? e->message : "unknown libgit2 error");
}

std::string first_line(const std::string& path) {
  std::ifstream f(path);
  std::string l;
  std::getline(f, l);
  while (!l.empty() && (l.back() == '\r' || l.back() == ' ')) l.pop_back();
  return l;
}

struct CallbackState {
  const GitSourceConfig* cfg = nullptr;
  const std::atomic<bool>* cancel = nullptr;
  int attempts = 0;
};

// Credentials from files. Secrets go straight into libgit2 and are never logged or kept.
int credentials(git_credential** out, const char* /*url*/, const char* user_from_url, unsigned int allowed, void* payload) {
  auto* st = static_cast<CallbackState*>(payload);
  if (++st->attempts > 2) {
    git_error_set_str(GIT_ERROR_NET, "authentication failed with the configured credentials");
    return GIT_EAUTH;
  }
  if (!st->cfg->ssh_key_file.empty() && (allowed & GIT_CREDENTIAL_SSH_KEY))
    return git_credential_ssh_key_new(out, user_from_url ? user_from_url : "git", nullptr, st->cfg->ssh_key_file.c_str(), nullptr);
  if (!st->cfg->token_file.empty() && (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT)) {
    std::string token = first_line(st->cfg->token_file);
    if (token.empty()) {
      git_error_set_str(GIT_ERROR_NET, fmt::format("token file {} is empty or unreadable", st->cfg->token_file).c_str());
      return GIT_EUSER;
    }
    int rc = git_credential_userpass_plaintext_new(out, user_from_url ? user_from_url : "x-access-token", token.c_str());
    std::fill(token.begin(), token.end(), '\0');
    return rc;
  }
  git_error_set_str(GIT_ERROR_NET, "the remote asks for credentials and none are configured (ssh_key_file / token_file)");
  return GIT_EUSER;
}

int progress(const git_indexer_progress*, void* payload) {
  auto* st = static_cast<CallbackState*>(payload);
  return st->cancel && st->cancel->load() ? -1 : 0;
}

bool valid_oid(const std::string& s, git_oid& oid) { return s.size() == GIT_OID_HEXSZ && git_oid_fromstr(&oid, s.c_str()) == 0; }

}  // namespace

struct GitSource::Repo {
  RepoPtr repo;
};

GitSource::GitSource(GitSourceConfig cfg, std::string work_dir, const std::atomic<bool>* cancel, std::shared_ptr<CommandRunner> runner)
    : cfg_(std::move(cfg)), work_dir_(std::move(work_dir)), cancel_(cancel), run_(runner ? std::move(runner) : make_process_runner()) {
  init_libgit2();
}

GitSource::~GitSource() = default;

Result<CommitInfo> GitSource::fetch_into(const std::string& dir) {
  git_repository* raw = nullptr;
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (git_repository_open_bare(&raw, dir.c_str()) != 0) return Error{git_err(fmt::format("git working copy {} open failed", dir))};
  } else {
    fs::create_directories(fs::path(dir).parent_path(), ec);
    if (git_repository_init(&raw, dir.c_str(), 1) != 0) return Error{git_err(fmt::format("git working copy {} init failed", dir))};
  }
  RepoPtr repo(raw);
  git_remote* rraw = nullptr;
  if (git_remote_lookup(&rraw, repo.get(), "origin") == 0) {
    RemotePtr r(rraw);
    if (std::string(git_remote_url(r.get()) ? git_remote_url(r.get()) : "") != cfg_.url) {
      rraw = nullptr;
      if (git_remote_set_url(repo.get(), "origin", cfg_.url.c_str()) != 0) return Error{git_err("git remote set-url failed")};
    } else {
      rraw = r.release();
    }
  }
  if (!rraw && git_remote_lookup(&rraw, repo.get(), "origin") != 0 &&
      git_remote_create(&rraw, repo.get(), "origin", cfg_.url.c_str()) != 0)
    return Error{git_err("git remote create failed")};
  RemotePtr remote(rraw);
  std::string ref = "refs/remotes/origin/" + cfg_.branch;
  std::string spec = fmt::format("+refs/heads/{}:{}", cfg_.branch, ref);
  char* specs[] = {spec.data()};
  git_strarray refspecs{specs, 1};
  CallbackState st{&cfg_, cancel_, 0};
  git_fetch_options fo = GIT_FETCH_OPTIONS_INIT;
  fo.callbacks.credentials = credentials;
  fo.callbacks.transfer_progress = progress;
  fo.callbacks.payload = &st;
  fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
  if (git_remote_fetch(remote.get(), &refspecs, &fo, "hostscope: fetch") != 0)
    return Error{git_err(fmt::format("git fetch of branch {} from {} failed", cfg_.branch, redact_url(cfg_.url)))};
  git_oid oid;
  if (git_reference_name_to_id(&oid, repo.get(), ref.c_str()) != 0)
    return Error{git_err(fmt::format("branch {} not found at {}", cfg_.branch, redact_url(cfg_.url)))};
  git_commit* craw = nullptr;
  if (git_commit_lookup(&craw, repo.get(), &oid) != 0) return Error{git_err("git tip commit lookup failed")};
  CommitPtr commit(craw);
  CommitInfo info;
  info.id = git_oid_tostr_s(&oid);
  info.time = git_commit_time(commit.get());
  info.summary = git_commit_summary(commit.get()) ? git_commit_summary(commit.get()) : "";
  // Reading the tip's tree proves the objects we need are intact.
  git_tree* traw = nullptr;
  if (git_commit_tree(&traw, commit.get()) != 0) return Error{git_err("git tip tree read failed")};
  TreePtr tree(traw);
  repo_ = std::make_unique<Repo>(Repo{std::move(repo)});
  return info;
}

Result<CommitInfo> GitSource::fetch() {
  recloned_ = false;
  repo_.reset();
  auto r = fetch_into(work_dir_);
  if (r) return r;
  if (cancel_ && cancel_->load()) return r;
  // Missing, corrupt or unusable working copy, or an unreachable remote: try a fresh clone beside it and
  // replace the old one only when that succeeded, so a remote that is down costs nothing but the attempt.
  repo_.reset();
  std::string fresh = work_dir_ + ".new";
  std::error_code ec;
  fs::remove_all(fresh, ec);
  auto f = fetch_into(fresh);
  repo_.reset();
  if (!f) {
    fs::remove_all(fresh, ec);
    return r.error();
  }
  fs::remove_all(work_dir_, ec);
  fs::rename(fresh, work_dir_, ec);
  if (ec) return Error{fmt::format("git working copy {} replace failed: {}", work_dir_, ec.message())};
  recloned_ = true;
  git_repository* raw = nullptr;
  if (git_repository_open_bare(&raw, work_dir_.c_str()) != 0) return Error{git_err("git working copy reopen failed")};
  repo_ = std::make_unique<Repo>(Repo{RepoPtr(raw)});
  return f;
}

Result<bool> GitSource::descends_from(const std::string& commit, const std::string& ancestor) {
  if (!repo_) return Error{"git working copy not open (fetch first)"};
  if (commit == ancestor) return true;
  git_oid c, a;
  if (!valid_oid(commit, c)) return Error{fmt::format("'{}' is not a commit id", commit)};
  if (!valid_oid(ancestor, a)) return false;
  git_commit* raw = nullptr;
  if (git_commit_lookup(&raw, repo_->repo.get(), &a) != 0) return false;  // not in our clone: history rewritten
  CommitPtr keep(raw);
  int rc = git_graph_descendant_of(repo_->repo.get(), &c, &a);
  if (rc < 0) return Error{git_err("git ancestry check failed")};
  return rc == 1;
}

Status GitSource::verify_signature(const std::string& commit) {
  if (!repo_) return Error{"git working copy not open (fetch first)"};
  git_oid oid;
  if (!valid_oid(commit, oid)) return Error{fmt::format("'{}' is not a commit id", commit)};
  Buf sig, data;
  int rc = git_commit_extract_signature(&sig.b, &data.b, repo_->repo.get(), &oid, nullptr);
  if (rc == GIT_ENOTFOUND) return Error{fmt::format("commit {} is not signed", commit)};
  if (rc != 0) return Error{git_err(fmt::format("commit {} signature read failed", commit))};
  std::string s = sig.str();
  if (s.find("-----BEGIN SSH SIGNATURE-----") == std::string::npos)
    return Error{fmt::format("commit {} has a signature that is not an SSH signature (only SSH signatures are verified)", commit)};
  std::error_code ec;
  if (!fs::exists(cfg_.allowed_signers_file, ec))
    return Error{fmt::format("allowed signers file {} does not exist", cfg_.allowed_signers_file)};
  std::string tmpl = (fs::temp_directory_path() / "hostscope-sig-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) return Error{fmt::format("temporary directory for signature check failed: {}", std::strerror(errno))};
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code e;
      fs::remove_all(dir, e);
    }
  } cleanup{tmpl};
  std::string sig_file = tmpl + "/commit.sig";
  {
    std::ofstream f(sig_file, std::ios::binary);
    f << s;
    if (!f) return Error{fmt::format("signature file {} write failed", sig_file)};
  }
  auto who = run_->run({"ssh-keygen", "-Y", "find-principals", "-f", cfg_.allowed_signers_file, "-s", sig_file}, "");
  if (who.exit_code == -1) return Error{"ssh-keygen could not be run (install openssh-client)"};
  std::string principal;
  std::istringstream(who.out) >> principal;
  if (!who.ok() || principal.empty())
    return Error{fmt::format("commit {} is signed by a key that is not in {}", commit, cfg_.allowed_signers_file)};
  auto v = run_->run({"ssh-keygen", "-Y", "verify", "-f", cfg_.allowed_signers_file, "-I", principal, "-n", "git", "-s", sig_file},
                     data.str());
  if (!v.ok()) {
    auto msg = v.err.empty() ? v.out : v.err;
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    return Error{fmt::format("commit {} signature does not verify for {}: {}", commit, principal, msg)};
  }
  return {};
}

namespace {

// The regular files directly in `directory` of `commit`'s tree, written into `dest` (created, must not exist).
// `label` names the commit in errors.
Status export_commit_files(git_repository* repo, git_commit* commit, const std::string& label, const std::string& directory,
                           const std::string& dest) {
  git_tree* traw = nullptr;
  if (git_commit_tree(&traw, commit) != 0) return Error{git_err(fmt::format("commit {} tree read failed", label))};
  TreePtr tree(traw);
  if (!directory.empty()) {
    git_tree_entry* eraw = nullptr;
    if (git_tree_entry_bypath(&eraw, tree.get(), directory.c_str()) != 0)
      return Error{fmt::format("commit {} has no directory '{}'", label, directory)};
    TreeEntryPtr entry(eraw);
    if (git_tree_entry_type(entry.get()) != GIT_OBJECT_TREE)
      return Error{fmt::format("commit {}: '{}' is not a directory", label, directory)};
    git_tree* sraw = nullptr;
    if (git_tree_lookup(&sraw, repo, git_tree_entry_id(entry.get())) != 0) return Error{git_err("git sub-tree read failed")};
    tree.reset(sraw);
  }
  std::error_code ec;
  if (!fs::create_directories(dest, ec) || ec) return Error{fmt::format("staging directory {} create failed: {}", dest, ec ? ec.message() : "exists")};
  size_t files = 0;
  for (size_t i = 0; i < git_tree_entrycount(tree.get()); ++i) {
    const git_tree_entry* e = git_tree_entry_byindex(tree.get(), i);
    auto mode = git_tree_entry_filemode(e);
    std::string name = git_tree_entry_name(e);
    if (mode != GIT_FILEMODE_BLOB && mode != GIT_FILEMODE_BLOB_EXECUTABLE) {
      // Sub-trees, symlinks and submodules are not policy files; one named like a policy file would be lost silently.
      if (is_policy_file_name(name))
        return Error{fmt::format("commit {}: {} is not a regular file (git mode {:06o}); a policy file must be one", label,
                                   name, static_cast<unsigned>(mode))};
      continue;
    }
    if (++files > kMaxFiles) return Error{fmt::format("commit {}: more than {} files in '{}'", label, kMaxFiles, directory)};
    git_blob* braw = nullptr;
    if (git_blob_lookup(&braw, repo, git_tree_entry_id(e)) != 0) return Error{git_err(fmt::format("blob {} read failed", name))};
    BlobPtr blob(braw);
    auto size = static_cast<size_t>(git_blob_rawsize(blob.get()));
    if (size > kMaxFileBytes) return Error{fmt::format("commit {}: {} is larger than {} bytes", label, name, kMaxFileBytes)};
    std::ofstream f(fs::path(dest) / name, std::ios::binary);
    f.write(static_cast<const char*>(git_blob_rawcontent(blob.get())), static_cast<std::streamsize>(size));
    f.flush();
    if (!f) return Error{fmt::format("staging file {} write failed", (fs::path(dest) / name).string())};
  }
  return {};
}

}  // namespace

Status GitSource::export_tree(const std::string& commit, const std::string& dest) {
  if (!repo_) return Error{"git working copy not open (fetch first)"};
  git_repository* repo = repo_->repo.get();
  git_oid oid;
  if (!valid_oid(commit, oid)) return Error{fmt::format("'{}' is not a commit id", commit)};
  git_commit* craw = nullptr;
  if (git_commit_lookup(&craw, repo, &oid) != 0) return Error{git_err(fmt::format("commit {} lookup failed", commit))};
  CommitPtr c(craw);
  return export_commit_files(repo, c.get(), commit, cfg_.directory, dest);
}

Status export_revision(const std::string& repo_path, const std::string& rev, const std::string& directory, const std::string& dest) {
  init_libgit2();
  git_repository* rraw = nullptr;
  if (git_repository_open_ext(&rraw, repo_path.c_str(), 0, nullptr) != 0)
    return Error{git_err(fmt::format("git repository {} open failed", repo_path))};
  RepoPtr repo(rraw);
  git_object* oraw = nullptr;
  if (git_revparse_single(&oraw, repo.get(), rev.c_str()) != 0)
    return Error{git_err(fmt::format("revision '{}' not found in {}", rev, repo_path))};
  git_object* craw = nullptr;
  int rc = git_object_peel(&craw, oraw, GIT_OBJECT_COMMIT);
  git_object_free(oraw);
  if (rc != 0) return Error{git_err(fmt::format("revision '{}' is not a commit", rev))};
  CommitPtr c(reinterpret_cast<git_commit*>(craw));
  return export_commit_files(repo.get(), c.get(), rev, directory, dest);
}

}  // namespace hostscope::policy
