// Plugin search (plugin.hpp).
#include "util/plugin.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <vector>

namespace panelboot {
namespace {

std::string exe_dir() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string p(buf, static_cast<std::size_t>(n));
  return p.substr(0, p.find_last_of('/'));
}

// The folder of the binary this code is linked into: the executable, or the Python package's
// extension module (whose plugins are installed beside it).
std::string own_dir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&own_dir), &info) == 0 || !info.dli_fname) return ".";
  const std::string p = info.dli_fname;
  const std::size_t slash = p.find_last_of('/');
  return slash == std::string::npos ? "." : p.substr(0, slash);
}

}  // namespace

void* open_plugin(const std::string& file, const char* env_var, int flags, std::string& tried) {
  std::vector<std::string> paths;
  if (const char* env = std::getenv(env_var)) paths.push_back(env);
  const std::string dir = exe_dir();
  paths.push_back(dir + "/" + file);
  paths.push_back(dir + "/../" + file);
  paths.push_back(dir + "/../lib/" + file);
  if (const std::string own = own_dir(); own != dir) paths.push_back(own + "/" + file);
  paths.push_back(std::string(PANELBOOT_PLUGIN_DIR) + "/" + file);
  for (const std::string& p : paths) {
    if (void* h = dlopen(p.c_str(), flags)) return h;
    const char* e = dlerror();
    tried += (tried.empty() ? "" : "; ") + p + ": " + (e ? e : "not loadable");
  }
  return nullptr;
}

}  // namespace panelboot
