// Output files that never destroy anything: a regular file is replaced atomically (a temporary
// beside it, fsync, rename, fsync of the folder) with its permissions kept; a symlink keeps
// pointing where it did and its target is replaced; a device or FIFO (/dev/null, a named pipe)
// is written in place, never replaced by a regular file; the process's own standard output or
// error (--output /dev/stdout, or the file stdout is redirected to) is written through its
// descriptor, so `>> log` appends.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <vector>

#include "panelboot/error.hpp"
#include "panelboot/report.hpp"
#include "panelboot/text.hpp"

namespace panelboot {

bool write_fully(int fd, const char* data, std::size_t size) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

namespace {

std::string why_errno() { return std::strerror(errno); }

[[noreturn]] void fail(const std::string& path, const std::string& why) {
  throw InvalidInput("cannot write output file " + quoted(path) + ": " + why);
}

// Where a write to `path` lands, resolved once.
struct Target {
  std::string path;    // as given
  std::string file;    // symlinks followed (a dangling link's target included)
  std::string folder;  // the folder of `file` ("." for a bare name)
  bool exists = false;
  struct stat st {};
  int own_fd = -1;     // 1 or 2 when the target is this process's stdout or stderr
};

// `path` with its symlinks followed by hand, up to the kernel's limit of 40, so that a link whose
// target does not exist yet still names where the file goes.
std::string follow_links(const std::string& path) {
  std::string p = path;
  for (int hops = 0; hops < 40; ++hops) {
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return p;
    std::vector<char> buf(static_cast<std::size_t>(PATH_MAX) + 1);
    const ssize_t n = ::readlink(p.c_str(), buf.data(), buf.size() - 1);
    if (n < 0) fail(path, "cannot read the symbolic link: " + why_errno());
    const std::string link(buf.data(), static_cast<std::size_t>(n));
    p = link.front() == '/' ? link : (std::filesystem::path(p).parent_path() / link).string();
  }
  fail(path, "too many levels of symbolic links");
}

bool same_inode(const struct stat& a, int fd) {
  struct stat b;
  return ::fstat(fd, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

Target resolve(const std::string& path) {
  if (path.empty()) throw InvalidInput("an output file name is empty; name a file");
  Target t;
  t.path = path;
  // the kernel's view first: /dev/stdout leads through /proc/self/fd/1 to "pipe:[N]", which is
  // no path, but stat follows it to the pipe or file itself
  if (::stat(path.c_str(), &t.st) == 0) {
    t.exists = true;
    for (int fd : {1, 2})
      if (same_inode(t.st, fd)) t.own_fd = fd;
  }
  t.file = t.own_fd >= 0 || (t.exists && !S_ISREG(t.st.st_mode)) ? path : follow_links(path);
  t.folder = std::filesystem::path(t.file).parent_path().string();
  if (t.folder.empty()) t.folder = ".";
  return t;
}

// Temporary files not yet renamed, removed if a signal ends the run (async-signal-safe: the
// handler only walks the list, unlinks and re-raises). Any number of them (power saves one file
// per group and effect): a list of nodes, each published whole before it is linked; nodes are
// never freed (a few bytes per file written, reachable from the list), only marked done when their
// file is renamed or removed.
struct PendingNode {
  PendingNode* next;
  const char* path;
  std::atomic<bool> pending;  // false once the file is renamed or removed
  bool folder;                // a folder (removed with rmdir, after the files tracked later)
};
std::atomic<PendingNode*> g_pending{nullptr};
// A helper process writing into a tracked folder (the figure script): stopped and waited for
// before the folder's files are removed, so that it cannot write after them.
std::atomic<pid_t> g_helper{0};

// While a DeferStopSignals lives, the first SIGINT, SIGTERM or SIGHUP is only recorded (a
// checkpointing run polls it between blocks, writes its checkpoint and exits); a second one ends
// the run at once, as without deferral.
std::atomic<int> g_defer{0};
std::atomic<int> g_stop_signal{0};

void remove_pending_and_reraise(int sig) {
  if (g_defer.load() > 0 && g_stop_signal.load() == 0) {
    g_stop_signal.store(sig);
    return;
  }
  if (const pid_t child = g_helper.load(); child > 0) {
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
  }
  for (PendingNode* n = g_pending.load(); n; n = n->next)
    if (n->pending.load()) n->folder ? ::rmdir(n->path) : ::unlink(n->path);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// Set by leave_signals_to_host (the Python package keeps its own handlers).
std::atomic<bool> g_handlers_done{false};

void install_cleanup_handlers() {
  if (g_handlers_done.exchange(true)) return;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old;
    if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;  // nohup
    ::signal(sig, remove_pending_and_reraise);
  }
}

PendingNode* track_pending(const std::string& tmp, bool folder = false) {
  install_cleanup_handlers();
  char* path = new char[tmp.size() + 1];
  std::memcpy(path, tmp.c_str(), tmp.size() + 1);
  auto* node = new PendingNode{g_pending.load(), path, {true}, folder};
  g_pending.store(node);  // the node is whole before the handler can see it
  return node;
}

// mkstemp and the temporary's entry in the handler's list with SIGINT, SIGTERM and SIGHUP held
// back between them, so that no signal can end the run after the file exists and before the
// handler knows it (a pending signal is delivered on the unblock, with the file tracked).
template <class Item>
int make_tracked_temporary(std::vector<char>& name, Item& it) {
  install_cleanup_handlers();
  sigset_t hold, old;
  sigemptyset(&hold);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&hold, sig);
  pthread_sigmask(SIG_BLOCK, &hold, &old);
  const int fd = ::mkstemp(name.data());
  const int saved = errno;
  if (fd >= 0) {
    it.tmp = name.data();
    it.slot = track_pending(it.tmp);
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = saved;
  return fd;
}

void untrack_pending(void* slot) {  // the node stays linked: a handler may be walking the list
  if (slot) static_cast<PendingNode*>(slot)->pending.store(false);
}

void write_all(int fd, const std::string& content, const std::string& path) {
  if (!write_fully(fd, content.data(), content.size())) fail(path, why_errno());
}

mode_t new_file_mode() {
  const mode_t mask = ::umask(0);
  ::umask(mask);
  return 0666 & ~mask;
}


// A device or FIFO written in place. A FIFO nobody reads is an error, not a wait without end.
void write_in_place(const Target& t, const std::string& content) {
  if (t.own_fd >= 0) {
    write_all(t.own_fd, content, t.path);
    return;
  }
  const int fd = ::open(t.file.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) fail(t.path, errno == ENXIO ? std::string("it is a FIFO that nobody reads") : why_errno());
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);  // then block as a pipe does when full
  try {
    write_all(fd, content, t.path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
}

}  // namespace

void fsync_folder(const std::string& folder) {
  const int dfd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return;
  ::fsync(dfd);  // best effort: some file systems refuse a folder's fsync
  ::close(dfd);
}

void* track_temporary(const std::string& path, bool folder) {
  sigset_t hold, old;
  sigemptyset(&hold);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&hold, sig);
  pthread_sigmask(SIG_BLOCK, &hold, &old);
  void* slot = track_pending(path, folder);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return slot;
}

void untrack_temporary(void* slot) { untrack_pending(slot); }

void set_helper_process(pid_t pid) {
  install_cleanup_handlers();
  g_helper.store(pid);
}

DeferStopSignals::DeferStopSignals() {
  install_cleanup_handlers();
  g_defer.fetch_add(1);
}

DeferStopSignals::~DeferStopSignals() { g_defer.fetch_sub(1); }

int stop_signal_received() { return g_stop_signal.load(); }

void reset_stop_signal() { g_stop_signal.store(0); }

void note_stop_signal(int sig) {
  int none = 0;
  g_stop_signal.compare_exchange_strong(none, sig);
}

void leave_signals_to_host() { g_handlers_done.store(true); }

SignalHold::SignalHold() {
  sigset_t hold;
  sigemptyset(&hold);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&hold, sig);
  pthread_sigmask(SIG_BLOCK, &hold, &old_);
}

SignalHold::~SignalHold() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

void check_output_target(const std::string& path) {
  const Target t = resolve(path);
  if (t.own_fd >= 0) return;
  struct stat st;
  if (::stat(t.file.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) fail(path, "it is a directory; name a file");
    if (S_ISSOCK(st.st_mode)) fail(path, "it is a socket");
    if (S_ISREG(st.st_mode) && ::access(t.file.c_str(), W_OK) != 0) fail(path, why_errno());
    if (!S_ISREG(st.st_mode)) return;  // a device or FIFO: written in place
  }
  if (::stat(t.folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    fail(path, "its folder " + quoted(t.folder) + " does not exist");
  if (::access(t.folder.c_str(), W_OK | X_OK) != 0)
    fail(path, "its folder " + quoted(t.folder) + " is not writable (" + why_errno() + ")");
}

PendingOutputs::~PendingOutputs() {
  for (const Item& it : items_) {
    if (!it.tmp.empty()) ::unlink(it.tmp.c_str());
    untrack_pending(it.slot);
  }
}

void PendingOutputs::add(const std::string& path, const std::string& content) {
  check_output_target(path);
  const Target t = resolve(path);
  Item it;
  it.path = path;
  it.target = t.file;
  it.folder = t.folder;
  it.own_fd = t.own_fd;
  if (t.own_fd >= 0 || (t.exists && !S_ISREG(t.st.st_mode))) {  // written in place at commit
    it.content = content;
    items_.push_back(std::move(it));
    return;
  }
  // a short name beside the target, so that a long file name still leaves room for it
  std::string tmpl = (std::filesystem::path(t.folder) / ".pbtmp.XXXXXX").string();
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  const int fd = make_tracked_temporary(name, it);
  if (fd < 0) fail(path, why_errno());
  items_.push_back(it);  // from here the destructor removes the temporary on any failure
  try {
    write_all(fd, content, path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  // the old file's permission bits (and owner, where we may set it), else what a new file gets
  if (t.exists) {
    ::fchmod(fd, t.st.st_mode & 07777);
    if (::geteuid() == 0) (void)!::fchown(fd, t.st.st_uid, t.st.st_gid);
  } else {
    ::fchmod(fd, new_file_mode());
  }
  if (::fsync(fd) != 0 && errno != EINVAL) {
    const std::string why = why_errno();
    ::close(fd);
    fail(path, why);
  }
  if (::close(fd) != 0) fail(path, why_errno());
}

void PendingOutputs::commit() {
  // what can fail in the middle (a device, a FIFO, a pipe) first, then the renames
  for (Item& it : items_)
    if (it.tmp.empty()) {
      Target t;
      t.path = it.path;
      t.file = it.target;
      t.own_fd = it.own_fd;
      write_in_place(t, it.content);
    }
  for (Item& it : items_) {
    if (it.tmp.empty()) continue;
    if (::rename(it.tmp.c_str(), it.target.c_str()) != 0) fail(it.path, why_errno());
    it.tmp.clear();
    untrack_pending(it.slot);
    fsync_folder(it.folder);
  }
  items_.clear();
}

}  // namespace panelboot

namespace panelboot {
namespace {

struct FileId {
  bool exists = false, regular = false;
  dev_t dev = 0;
  ino_t ino = 0;
  std::string canonical;  // for paths that do not exist yet: absolute, '.' and '..' resolved
};

FileId identify(const std::string& path) {
  FileId id;
  const Target t = resolve(path);
  if (t.exists) {
    id.exists = true;
    id.regular = S_ISREG(t.st.st_mode);
    id.dev = t.st.st_dev;
    id.ino = t.st.st_ino;
  }
  std::error_code ec;
  id.canonical = std::filesystem::weakly_canonical(std::filesystem::absolute(t.file, ec), ec).string();
  if (ec) id.canonical = t.file;
  return id;
}

bool same_file(const FileId& a, const FileId& b) {
  if (a.exists && b.exists) return a.dev == b.dev && a.ino == b.ino;
  return !a.exists && !b.exists && a.canonical == b.canonical;
}

}  // namespace

void check_output_paths(const std::vector<NamedPath>& outputs, const std::vector<NamedPath>& inputs) {
  std::vector<std::pair<const NamedPath*, FileId>> seen;
  for (const NamedPath& in : inputs) {
    if (in.second.empty()) continue;
    FileId id = identify(in.second);
    if (id.exists && id.regular) seen.emplace_back(&in, id);
  }
  const std::size_t n_inputs = seen.size();
  for (const NamedPath& out : outputs) {
    if (out.second.empty()) continue;
    check_output_target(out.second);
    const FileId id = identify(out.second);
    if (id.exists && !id.regular) continue;  // /dev/null, /dev/stdout, a FIFO
    for (std::size_t i = 0; i < seen.size(); ++i) {
      if (!same_file(seen[i].second, id)) continue;
      const NamedPath& other = *seen[i].first;
      if (i < n_inputs)
        throw InvalidInput(out.first + " " + quoted(out.second) + " is the input file given to " + other.first +
                           "; writing there would destroy it: choose another output file");
      throw InvalidInput(out.first + " " + quoted(out.second) + " and " + other.first + " " + quoted(other.second) +
                         " name the same file; give each output its own file");
    }
    seen.emplace_back(&out, id);
  }
}

}  // namespace panelboot
