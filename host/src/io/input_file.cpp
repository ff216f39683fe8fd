#include "input_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "panelboot/error.hpp"
#include "panelboot/text.hpp"

namespace panelboot {

InputFile::InputFile(const std::string& path) : path_(shown_path(path)) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0)
    throw InvalidInput("cannot open data file '" + path_ + "': " + std::strerror(errno) +
                       "; check the path given to --data");
  if (::fstat(fd_, &st_) != 0)
    throw InvalidInput("cannot read data file '" + path_ + "': " + std::strerror(errno));
  if (S_ISDIR(st_.st_mode))
    throw InvalidInput("cannot read data file '" + path_ +
                       "': it is a directory; give --data a CSV or Stata .dta file");
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

// The next read's size: what is left of a regular file plus one byte (to meet its end in the same
// call, with no second allocation), or a stream's chunk.
std::size_t InputFile::next_chunk() const {
  constexpr std::size_t kStreamChunk = 1 << 16;
  const std::size_t size = is_regular() && st_.st_size > 0 ? static_cast<std::size_t>(st_.st_size) : 0;
  return size >= consumed_ && size > 0 ? size - consumed_ + 1 : kStreamChunk;
}

void InputFile::read_into(std::string& out, std::size_t limit) {
  for (std::size_t got = 0; got < limit;) {
    const std::size_t chunk = std::min(limit - got, next_chunk());
    const std::size_t old = out.size();
    out.resize(old + chunk);
    const ssize_t n = ::read(fd_, &out[old], chunk);
    out.resize(old + (n > 0 ? static_cast<std::size_t>(n) : 0));
    if (n == 0) return;
    if (n < 0) {
      if (errno == EINTR) continue;
      throw InvalidInput("cannot read data file '" + path_ + "': " + std::strerror(errno));
    }
    got += static_cast<std::size_t>(n);
    consumed_ += static_cast<std::size_t>(n);
  }
}

std::string shown_path(const std::string& path) { return printable(path, 1024); }

MappedFile::MappedFile(const InputFile& in) : size_(in.size()) {
  if (size_ == 0) return;
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, in.fd(), 0);
  if (p == MAP_FAILED)
    throw InvalidInput("cannot read data file '" + in.shown() + "': " + std::strerror(errno));
  data_ = static_cast<const char*>(p);
  ::madvise(p, size_, MADV_SEQUENTIAL);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<char*>(data_), size_);
}

}  // namespace panelboot
