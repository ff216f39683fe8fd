#pragma once
// The plugins panelboot loads at run time (libpanelboot_cuda.so, libpanelboot_mpi.so): looked for
// at $ENV_VAR, beside the executable, in ../ and ../lib/ of it, beside the binary that links the
// engine (the Python package's extension module), and in the build folder.
#include <string>

namespace panelboot {

// dlopen's handle of the first candidate that loads (`flags`: RTLD_*), or null with `tried`
// naming each path and why it did not load.
void* open_plugin(const std::string& file, const char* env_var, int flags, std::string& tried);

}  // namespace panelboot
