// ReportFolder (report.hpp): replicate's report folder, staged beside DIR and moved in by renames
// only once the whole run has succeeded; never replacing a file panelboot did not write.
//
// DIR/.panelboot-report lists the files panelboot wrote there, each with its size and
// modification time as written: a listed file that has changed since (the user edited it, or
// wrote their own under that name) is not panelboot's any more and is never replaced. The commit
// holds SIGINT/SIGTERM/SIGHUP and an flock on DIR across its renames, moves a file whose name was
// free with a no-replace rename, and removes the figures an earlier run left that this run did not
// draw (they belong to another seed or dataset).
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <sstream>

#include "panelboot/error.hpp"
#include "panelboot/report.hpp"
#include "panelboot/text.hpp"

namespace panelboot {
namespace {

constexpr const char* kManifestHeader =
    "# panelboot replicate: the files panelboot wrote into this folder, with their size and time as written "
    "(it replaces only these, and only unchanged)";

std::string why() { return std::strerror(errno); }

std::string without_trailing_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

std::string parent_of(const std::string& p) {
  const std::size_t slash = p.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : p.substr(0, slash);
}

std::string base_of(const std::string& p) {
  const std::size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

std::string stamp_of(const struct stat& st) {
  return std::to_string(static_cast<long long>(st.st_size)) + "\t" + std::to_string(static_cast<long long>(st.st_mtim.tv_sec)) +
         "." + std::to_string(static_cast<long long>(st.st_mtim.tv_nsec));
}

struct Listed {
  std::string name, stamp;
};

// The entries of DIR/.panelboot-report; empty when there is none. A list that is not panelboot's
// (another program's file of that name) is an error: it is not ours to replace.
std::vector<Listed> read_manifest(const std::string& dir, const std::string& shown) {
  const std::string path = dir + "/" + ReportFolder::kManifest;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return {};
  if (!S_ISREG(st.st_mode))
    throw InvalidInput("--out " + quoted(shown) + ": " + quoted(ReportFolder::kManifest) +
                       " is not a regular file; panelboot keeps its list of report files there");
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  if (line != kManifestHeader)
    throw InvalidInput("--out " + quoted(shown) + ": its " + quoted(ReportFolder::kManifest) +
                       " was not written by this panelboot; move it or choose another --out");
  std::vector<Listed> out;
  while (std::getline(in, line)) {
    const std::size_t tab = line.find('\t');
    if (!line.empty()) out.push_back({line.substr(0, tab), tab == std::string::npos ? "" : line.substr(tab + 1)});
  }
  return out;
}

const Listed* find_listed(const std::vector<Listed>& list, const std::string& name) {
  for (const Listed& l : list)
    if (l.name == name) return &l;
  return nullptr;
}

// Whether DIR/name may be replaced (or removed): absent, or a regular file that the list names
// with the size and time it has now. InvalidInput otherwise.
bool check_replaceable(const std::string& dir, const std::string& shown, const std::string& name,
                       const std::vector<Listed>& list) {
  struct stat ls {};
  if (::lstat((dir + "/" + name).c_str(), &ls) != 0) return false;
  const Listed* l = find_listed(list, name);
  if (!S_ISREG(ls.st_mode))
    throw InvalidInput("--out " + quoted(shown) + " holds " + quoted(name) + ", which is not a regular file; replicate never "
                       "replaces it: move it or choose another --out");
  if (!l)
    throw InvalidInput("--out " + quoted(shown) + " holds " + quoted(name) + ", which panelboot did not write (it is not in " +
                       ReportFolder::kManifest + "); replicate never replaces it: move it or choose another --out");
  if (l->stamp != stamp_of(ls))
    throw InvalidInput("--out " + quoted(shown) + ": " + quoted(name) + " has changed since panelboot wrote it (its size or "
                       "time differs from " + ReportFolder::kManifest + "); replicate does not replace it: move it or "
                       "choose another --out");
  return true;
}

void write_file(const std::string& path, const std::string& content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) throw InvalidInput("cannot write " + quoted(path) + ": " + why());
  const bool ok = write_fully(fd, content.data(), content.size()) && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  errno = saved;
  if (!ok) throw InvalidInput("cannot write " + quoted(path) + ": " + why());
}

// A rename that never replaces an existing file: renameat2's RENAME_NOREPLACE, or link + unlink
// where the file system lacks it. False with errno EEXIST when `to` exists.
bool rename_no_replace(const std::string& from, const std::string& to) {
#ifdef RENAME_NOREPLACE
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return true;
  if (errno != EINVAL && errno != ENOSYS) return false;
#endif
  if (::link(from.c_str(), to.c_str()) != 0) return false;
  ::unlink(from.c_str());
  return true;
}

// Holds an exclusive flock on a folder while alive: two runs never commit into one DIR at once.
class FolderLock {
 public:
  explicit FolderLock(const std::string& dir) : fd_(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~FolderLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the lock
  }
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

 private:
  int fd_;
};

}  // namespace

ReportFolder::ReportFolder(const std::string& dir_in, const std::vector<std::string>& names)
    : shown_(dir_in), allowed_(names) {
  if (dir_in.empty()) throw InvalidInput("--out: the folder name is empty");
  std::string dir = without_trailing_slashes(dir_in);
  struct stat st {}, lst {};
  std::string stage_in;
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode))
      throw InvalidInput("--out " + quoted(dir_in) + " exists and is not a folder; replicate writes a folder of files");
    char real[PATH_MAX];
    if (::realpath(dir.c_str(), real)) dir = real;  // a link to a folder: stage beside the folder itself
    if (::access(dir.c_str(), W_OK | X_OK) != 0)
      throw InvalidInput("--out: cannot write into the folder " + quoted(dir_in) + ": " + why());
    const std::vector<Listed> ours = read_manifest(dir, dir_in);
    for (const std::string& n : names) check_replaceable(dir, dir_in, n, ours);
    // a mount point (a container's volume): its parent is another file system, so stage inside it
    struct stat pst {};
    const bool same_fs = ::stat(parent_of(dir).c_str(), &pst) == 0 && pst.st_dev == st.st_dev;
    stage_in = same_fs ? parent_of(dir) + "/." + base_of(dir) + ".panelboot-XXXXXX" : dir + "/.panelboot-staging-XXXXXX";
  } else {
    if (::lstat(dir.c_str(), &lst) == 0)
      throw InvalidInput("--out " + quoted(dir_in) + " is a symbolic link to nothing; remove it or name a folder");
    const std::string parent = parent_of(dir);
    if (::stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      throw InvalidInput("--out " + quoted(dir_in) + ": its parent folder " + quoted(parent) + " does not exist; only the last "
                         "level is made");
    if (::access(parent.c_str(), W_OK | X_OK) != 0)
      throw InvalidInput("--out: cannot make the folder " + quoted(dir_in) + " in " + quoted(parent) + ": " + why());
    stage_in = parent + "/." + base_of(dir) + ".panelboot-XXXXXX";
  }
  dir_ = dir;
  std::vector<char> buf(stage_in.begin(), stage_in.end());
  buf.push_back('\0');
  {
    const SignalHold hold;  // the folder is tracked before a signal can end the run
    if (!::mkdtemp(buf.data())) throw InvalidInput("--out: cannot make a staging folder for " + quoted(dir_in) + ": " + why());
    staging_ = buf.data();
    slots_.push_back(track_temporary(staging_, true));
    // every name the run may stage, figures drawn by another program included: the handler
    // removes them (tracked after the folder, so removed before it)
    for (const std::string& n : allowed_) slots_.push_back(track_temporary(staging_ + "/" + n, false));
    slots_.push_back(track_temporary(staging_ + "/" + kManifest, false));
  }
}

ReportFolder::~ReportFolder() { remove_staging(); }

void ReportFolder::remove_staging() {
  if (staging_.empty()) return;
  for (const std::string& n : allowed_) ::unlink((staging_ + "/" + n).c_str());
  ::unlink((staging_ + "/" + kManifest).c_str());
  ::rmdir(staging_.c_str());
  for (void* s : slots_) untrack_temporary(s);
  staging_.clear();
}

void ReportFolder::check_name(const std::string& name) const {
  if (std::find(allowed_.begin(), allowed_.end(), name) == allowed_.end())
    throw Error("internal: the report file " + quoted(name) + " was not declared");
}

void ReportFolder::add(const std::string& name, const std::string& content) {
  check_name(name);
  write_file(staging_ + "/" + name, content);
  written_.push_back(name);
}

void ReportFolder::adopt(const std::string& name) {
  check_name(name);
  struct stat st {};
  if (::lstat((staging_ + "/" + name).c_str(), &st) == 0 && S_ISREG(st.st_mode)) written_.push_back(name);
}

void ReportFolder::commit() {
  const SignalHold hold;  // no signal between the renames: the old report or the new one, never a mix
  if (::mkdir(dir_.c_str(), 0777) != 0 && errno != EEXIST)
    throw InvalidInput("--out: cannot make the folder " + quoted(shown_) + ": " + why());
  const FolderLock lock(dir_);
  // checked again: the folder may have changed while the study ran
  std::vector<Listed> listed = read_manifest(dir_, shown_);
  std::vector<std::string> replaces, stale;
  for (const std::string& n : allowed_) {
    const bool exists = check_replaceable(dir_, shown_, n, listed);
    if (std::find(written_.begin(), written_.end(), n) != written_.end()) {
      if (exists) replaces.push_back(n);
    } else if (exists) {
      stale.push_back(n);  // ours from an earlier run, not redrawn by this one
    }
  }
  // the list first, naming what this run wrote (size and time of the staged files, which the
  // renames keep) and what earlier runs wrote under names this version does not use
  std::string manifest = std::string(kManifestHeader) + "\n";
  for (const Listed& l : listed)
    if (std::find(allowed_.begin(), allowed_.end(), l.name) == allowed_.end()) manifest += l.name + "\t" + l.stamp + "\n";
  for (const std::string& n : written_) {
    struct stat st {};
    if (::stat((staging_ + "/" + n).c_str(), &st) != 0) throw InvalidInput("cannot read the staged " + quoted(n) + ": " + why());
    manifest += n + "\t" + stamp_of(st) + "\n";
  }
  const std::string staged_list = staging_ + "/" + kManifest;
  write_file(staged_list, manifest);
  if (::rename(staged_list.c_str(), (dir_ + "/" + kManifest).c_str()) != 0)
    throw InvalidInput("--out: cannot move the report's file list into " + quoted(shown_) + ": " + why());
  for (const std::string& n : written_) {
    const std::string from = staging_ + "/" + n, to = dir_ + "/" + n;
    const bool ours = std::find(replaces.begin(), replaces.end(), n) != replaces.end();
    if (ours ? ::rename(from.c_str(), to.c_str()) != 0 : !rename_no_replace(from, to))
      throw InvalidInput("--out: cannot move " + quoted(n) + " into " + quoted(shown_) + ": " +
                         (errno == EEXIST ? std::string("a file of that name appeared during the run") : why()));
  }
  for (const std::string& n : stale) ::unlink((dir_ + "/" + n).c_str());
  fsync_folder(dir_);
  remove_staging();
}

}  // namespace panelboot
