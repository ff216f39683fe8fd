// ReportFolder (report.hpp): replicate's report folder, staged beside DIR and moved in by renames
// only once the whole run has succeeded; never replacing a file panelboot did not write.
#include <fcntl.h>
#include <stdlib.h>
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

constexpr const char* kManifestHeader = "# panelboot replicate: the files panelboot wrote into this folder (it replaces only these)";

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

// The names DIR/.panelboot-report lists; empty when there is no list. A list that is not
// panelboot's (another program's file of that name) is an error: it is not ours to replace.
std::vector<std::string> read_manifest(const std::string& dir) {
  const std::string path = dir + "/" + ReportFolder::kManifest;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return {};
  if (!S_ISREG(st.st_mode))
    throw InvalidInput("--out " + quoted(dir) + ": " + quoted(path) + " is not a regular file; panelboot keeps its list of "
                       "report files there");
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  if (line != kManifestHeader)
    throw InvalidInput("--out " + quoted(dir) + ": " + quoted(path) + " was not written by panelboot; move it or choose "
                       "another --out");
  std::vector<std::string> names;
  while (std::getline(in, line))
    if (!line.empty()) names.push_back(line);
  return names;
}

void fsync_folder(const std::string& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
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

}  // namespace

ReportFolder::ReportFolder(const std::string& dir_in, const std::vector<std::string>& names) : allowed_(names) {
  if (dir_in.empty()) throw InvalidInput("--out: the folder name is empty");
  std::string dir = without_trailing_slashes(dir_in);
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode))
      throw InvalidInput("--out " + quoted(dir_in) + " exists and is not a folder; replicate writes a folder of files");
    char real[PATH_MAX];
    if (::realpath(dir.c_str(), real)) dir = real;  // a link to a folder: stage beside the folder itself
    if (::access(dir.c_str(), W_OK | X_OK) != 0)
      throw InvalidInput("--out: cannot write into the folder " + quoted(dir_in) + ": " + why());
    const std::vector<std::string> ours = read_manifest(dir);
    dir_ = dir;
    for (const std::string& n : names) {
      const std::string path = dir + "/" + n;
      struct stat ls {};
      if (::lstat(path.c_str(), &ls) != 0) continue;
      if (!S_ISREG(ls.st_mode) || std::find(ours.begin(), ours.end(), n) == ours.end())
        throw InvalidInput("--out " + quoted(dir_in) + " holds " + quoted(n) + ", which panelboot did not write (it is not in " +
                           kManifest + (S_ISREG(ls.st_mode) ? "" : ", and it is not a regular file") +
                           "); replicate never replaces it: move it or choose another --out");
    }
  } else {
    const std::string parent = parent_of(dir);
    if (::stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      throw InvalidInput("--out " + quoted(dir_in) + ": its parent folder " + quoted(parent) + " does not exist; only the last "
                         "level is made");
    if (::access(parent.c_str(), W_OK | X_OK) != 0)
      throw InvalidInput("--out: cannot make the folder " + quoted(dir_in) + " in " + quoted(parent) + ": " + why());
    dir_ = dir;
  }
  std::string tmpl = parent_of(dir_) + "/." + base_of(dir_) + ".panelboot-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) throw InvalidInput("--out: cannot make a staging folder beside " + quoted(dir_in) + ": " + why());
  staging_ = buf.data();
  staging_slot_ = track_temporary(staging_, true);
}

ReportFolder::~ReportFolder() {
  if (committed_) return;
  for (std::size_t i = 0; i < written_.size(); ++i) {
    ::unlink((staging_ + "/" + written_[i]).c_str());
    untrack_temporary(slots_[i]);
  }
  // what another program left there unadopted (a figure script killed midway)
  for (const std::string& n : allowed_) ::unlink((staging_ + "/" + n).c_str());
  ::rmdir(staging_.c_str());
  untrack_temporary(staging_slot_);
}

void ReportFolder::check_name(const std::string& name) const {
  if (std::find(allowed_.begin(), allowed_.end(), name) == allowed_.end())
    throw Error("internal: the report file " + quoted(name) + " was not declared");
}

void ReportFolder::add(const std::string& name, const std::string& content) {
  check_name(name);
  const std::string path = staging_ + "/" + name;
  slots_.push_back(track_temporary(path, false));
  written_.push_back(name);
  write_file(path, content);
}

void ReportFolder::adopt(const std::string& name) {
  check_name(name);
  const std::string path = staging_ + "/" + name;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return;
  slots_.push_back(track_temporary(path, false));
  written_.push_back(name);
}

void ReportFolder::commit() {
  if (::mkdir(dir_.c_str(), 0777) != 0 && errno != EEXIST)
    throw InvalidInput("--out: cannot make the folder " + quoted(dir_) + ": " + why());
  // checked again: the folder may have changed while the study ran
  std::vector<std::string> listed = read_manifest(dir_);
  for (const std::string& n : written_) {
    const std::string to = dir_ + "/" + n;
    struct stat ls {};
    if (::lstat(to.c_str(), &ls) == 0 &&
        (!S_ISREG(ls.st_mode) || std::find(listed.begin(), listed.end(), n) == listed.end()))
      throw InvalidInput("--out: " + quoted(to) + " appeared during the run and panelboot did not write it; nothing was "
                         "replaced");
  }
  // the list first names what this run and the earlier ones wrote, so that no file of ours is
  // ever in DIR without being listed
  for (const std::string& n : written_)
    if (std::find(listed.begin(), listed.end(), n) == listed.end()) listed.push_back(n);
  std::string manifest = std::string(kManifestHeader) + "\n";
  for (const std::string& n : listed) manifest += n + "\n";
  const std::string staged_list = staging_ + "/" + kManifest;
  void* list_slot = track_temporary(staged_list, false);
  write_file(staged_list, manifest);
  if (::rename(staged_list.c_str(), (dir_ + "/" + kManifest).c_str()) != 0)
    throw InvalidInput("--out: cannot move the report's file list into " + quoted(dir_) + ": " + why());
  untrack_temporary(list_slot);
  for (std::size_t i = 0; i < written_.size(); ++i) {
    if (::rename((staging_ + "/" + written_[i]).c_str(), (dir_ + "/" + written_[i]).c_str()) != 0)
      throw InvalidInput("--out: cannot move " + quoted(written_[i]) + " into " + quoted(dir_) + ": " + why());
    untrack_temporary(slots_[i]);
  }
  fsync_folder(dir_);
  ::rmdir(staging_.c_str());
  untrack_temporary(staging_slot_);
  committed_ = true;
}

}  // namespace panelboot
