// Loading libreadstat (readstat_api.hpp).
#include "panelboot/config.hpp"

#if PANELBOOT_HAVE_READSTAT
#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include "panelboot/error.hpp"
#include "readstat_api.hpp"

namespace panelboot {
namespace {

struct Loaded {
  ReadStat fns;
  std::string why;  // why it could not be loaded, or empty
};

Loaded load() {
  Loaded l;
  const char* env = std::getenv("PANELBOOT_READSTAT_LIBRARY");
  const std::string lib = env && *env ? env : PANELBOOT_READSTAT_SONAME;
  void* h = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    l.why = lib + " could not be loaded (" + (e ? e : "unknown reason") + ")";
    return l;
  }
#define PB_READSTAT_LOAD(name)                                                      \
  l.fns.name = reinterpret_cast<decltype(l.fns.name)>(dlsym(h, "readstat_" #name)); \
  if (!l.fns.name) {                                                                \
    l.why = lib + " lacks readstat_" #name " (a ReadStat older than 1.1)";          \
    dlclose(h);                                                                     \
    return l;                                                                       \
  }
  PB_READSTAT_FUNCTIONS(PB_READSTAT_LOAD)
#undef PB_READSTAT_LOAD
  return l;
}

}  // namespace

const ReadStat& readstat(const std::string& reading) {
  static Loaded loaded;
  static std::once_flag once;
  std::call_once(once, [] { loaded = load(); });
  if (!loaded.why.empty())
    throw NotCompiled("cannot read '" + reading +
                      "': Stata .dta input needs the ReadStat library, and " + loaded.why +
                      "; install it (Debian: libreadstat1) or export the data to CSV");
  return loaded.fns;
}

}  // namespace panelboot
#endif
