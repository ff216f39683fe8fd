#pragma once
// An input file opened for reading. Regular files are read with their size known; pipes, FIFOs,
// /dev/stdin and process substitutions cannot seek, so they are read until end of file.
#include <sys/stat.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "panelboot/data_frame.hpp"

namespace panelboot {

class InputFile {
 public:
  // Opens `path`; an InvalidInput error naming it when it is missing, unreadable or a directory.
  explicit InputFile(const std::string& path);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  bool is_regular() const { return S_ISREG(st_.st_mode); }
  std::size_t size() const { return static_cast<std::size_t>(st_.st_size); }
  int fd() const { return fd_; }
  const std::string& shown() const { return path_; }  // the name as messages show it
  // Appends to `out` up to `limit` more bytes; all that is left when limit is kAll.
  void read_into(std::string& out, std::size_t limit);
  static constexpr std::size_t kAll = static_cast<std::size_t>(-1);

 private:
  std::size_t next_chunk() const;

  std::string path_;
  int fd_ = -1;
  struct stat st_ {};
  std::size_t consumed_ = 0;  // bytes read so far
};

// A file's name as messages and reports show it: one printable line of valid UTF-8 (a name
// that is not UTF-8 would break JSON output), at most 1024 bytes.
std::string shown_path(const std::string& path);

// The CSV text of an open file as a frame: a regular file with a size mapped (MappedFile), anything
// else read to its end after `head`, the bytes already read from it (csv.cpp).
DataFrame read_csv_file(InputFile& in, std::string head, const CsvOptions& opts = {});

// An open regular file's bytes mapped read-only (no copy, no zero-filled buffer: the CSV reader
// parses the page cache in place); empty for an empty file. Unmapped when it goes out of scope.
class MappedFile {
 public:
  explicit MappedFile(const InputFile& in);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::string_view text() const { return {data_, size_}; }

 private:
  const char* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace panelboot
