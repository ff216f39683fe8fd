// Starting MPI when a launcher started the process (panelboot/mpi.hpp: start_if_launched). Built
// twice: with the plugin (PANELBOOT_MPI_ENABLED=1, the panelboot executable of an MPI build) and
// without (panelboot_nompi, the plain build that the tests time an MPI build's plain run against).
#include <dlfcn.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "panelboot/error.hpp"
#include "panelboot/mpi.hpp"
#include "util/plugin.hpp"

namespace panelboot::mpi {

namespace {

std::unique_ptr<Session> g_owned;
std::unique_ptr<Communicator> g_single;  // a job of one rank: MPI started, no session

#if PANELBOOT_MPI_ENABLED
using OpenFn = Communicator* (*)(int*, char***, char*, int);

std::unique_ptr<Communicator> open_mpi(int* argc, char*** argv) {
  std::string tried;
  void* h = open_plugin("libpanelboot_mpi.so", "PANELBOOT_MPI_PLUGIN", RTLD_NOW | RTLD_GLOBAL, tried);
  if (!h) throw StartFailed("a launcher started panelboot as an MPI rank, but its MPI library could not be loaded (" + tried + ")");
  const auto open = reinterpret_cast<OpenFn>(dlsym(h, "pb_mpi_plugin_open"));
  if (!open) throw StartFailed("libpanelboot_mpi.so lacks its entry point (a stale build?)");
  char why[512] = {0};
  Communicator* c = open(argc, argv, why, sizeof why);
  if (!c) throw StartFailed(std::string("MPI did not start: ") + why);
  return std::unique_ptr<Communicator>(c);
}
#endif

}  // namespace

void start_if_launched(int* argc, char*** argv) {
  const Launch l = launch_of();
  if (!l.by_launcher) return;
  if (l.srun_without_pmi)
    throw InvalidInput("srun started " + std::to_string(l.tasks) +
                       " tasks that no MPI process manager joins (this Slurm's MpiDefault is none): launch with "
                       "'srun --mpi=pmix panelboot ...', or with mpirun inside the allocation");
#if PANELBOOT_MPI_ENABLED
  std::unique_ptr<Communicator> comm = open_mpi(argc, argv);
  // one GPU per rank: the node's ranks take its devices in turn (cuda/context.cu)
  setenv("PANELBOOT_CUDA_DEVICE", std::to_string(comm->local_rank()).c_str(), 0);
  if (comm->size() < 2) {
    g_single = std::move(comm);
    return;
  }
  g_owned = std::make_unique<Session>(std::move(comm));
  detail::set_session(g_owned.get());
#else
  (void)argc;
  (void)argv;
  if (l.tasks > 1)
    throw InvalidInput(l.by + " says " + std::to_string(l.tasks) +
                       " ranks were started, but this panelboot was built without MPI, so each would run the whole "
                       "job: build with OpenMPI (libopenmpi-dev; PANELBOOT_MPI=AUTO or ON), or start one process");
#endif
}

void close_session() {
  if (g_owned) g_owned->finalize();
  if (g_single) g_single->finalize();
  detail::set_session(nullptr);
  g_owned.reset();
  g_single.reset();
}

}  // namespace panelboot::mpi
