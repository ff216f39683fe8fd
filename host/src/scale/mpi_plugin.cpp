// libpanelboot_mpi.so: the MPI side of panelboot/mpi.hpp's Communicator (OpenMPI), loaded by
// mpi_launch.cpp only when a launcher started the process. Messages are bytes on MPI_COMM_WORLD;
// one over 1 GiB goes as a header and pieces (MPI counts are int).
#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "panelboot/mpi.hpp"

namespace {

constexpr int kBigTag = 1000, kPieceTag = 1001;
constexpr std::size_t kPiece = std::size_t{1} << 30;

class MpiCommunicator final : public panelboot::mpi::Communicator {
 public:
  MpiCommunicator() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &local_);
    MPI_Comm_size(node, &local_size_);
    MPI_Comm_free(&node);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_; }
  int local_size() const override { return local_size_; }

  void send(int to, int tag, const std::string& bytes) override {
    if (bytes.size() <= kPiece) {
      MPI_Send(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, to, tag, MPI_COMM_WORLD);
      return;
    }
    const std::uint64_t head[2] = {static_cast<std::uint64_t>(tag), bytes.size()};
    MPI_Send(head, sizeof head, MPI_BYTE, to, kBigTag, MPI_COMM_WORLD);
    for (std::size_t at = 0; at < bytes.size(); at += kPiece) {
      const std::size_t n = std::min(kPiece, bytes.size() - at);
      MPI_Send(bytes.data() + at, static_cast<int>(n), MPI_BYTE, to, kPieceTag, MPI_COMM_WORLD);
    }
  }

  bool try_receive(int& from, int& tag, std::string& bytes) override {
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
    if (!flag) return false;
    from = st.MPI_SOURCE;
    tag = st.MPI_TAG;
    int n = 0;
    MPI_Get_count(&st, MPI_BYTE, &n);
    bytes.resize(static_cast<std::size_t>(n));
    MPI_Recv(bytes.data(), n, MPI_BYTE, from, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (tag != kBigTag) return true;
    std::uint64_t head[2];
    std::copy_n(bytes.data(), sizeof head, reinterpret_cast<char*>(head));
    tag = static_cast<int>(head[0]);
    bytes.resize(head[1]);
    for (std::size_t at = 0; at < bytes.size(); at += kPiece) {
      const std::size_t k = std::min(kPiece, bytes.size() - at);
      MPI_Recv(bytes.data() + at, static_cast<int>(k), MPI_BYTE, from, kPieceTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
    return true;
  }

  void finalize() override { MPI_Finalize(); }

 private:
  int rank_ = 0, size_ = 1, local_ = 0, local_size_ = 1;
};

}  // namespace

// MPI_Init_thread (rank 0's coordinator thread and its compute thread take turns with MPI:
// MPI_THREAD_SERIALIZED), then the communicator; null with `why` filled when MPI cannot start.
extern "C" panelboot::mpi::Communicator* pb_mpi_plugin_open(int* argc, char*** argv, char* why, int why_len) {
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
    std::snprintf(why, static_cast<std::size_t>(why_len), "MPI_Init_thread failed");
    return nullptr;
  }
  if (provided < MPI_THREAD_SERIALIZED) {
    std::snprintf(why, static_cast<std::size_t>(why_len),
                  "this MPI library gives thread level %d; panelboot needs MPI_THREAD_SERIALIZED", provided);
    MPI_Finalize();
    return nullptr;
  }
  return new MpiCommunicator();
}
