#pragma once
// The files that carry replication ranges between processes: a shard's partial result (`--shard
// i/n`, combined by `panelboot merge`) and a checkpoint (`--checkpoint FILE`, continued by
// `--resume`). One JSON format for both: the run's identity (what the command line recorded: the
// command, its options, the checksums of the data, options and seed) and each task's segments
// (ranges, their integer counts, and their per-replication values as base64 little-endian doubles,
// so every bit survives).
#include <string>

#include "panelboot/replications.hpp"

namespace panelboot {

struct RunFile {
  std::string kind;         // "partial" or "checkpoint"
  std::string header_json;  // the run's identity, a JSON object (written by the command line)
  TaskRecords tasks;
};

std::string run_file_text(const RunFile& f);
// InvalidInput naming `path` when the text is not a panelboot run file of a known version or a
// task's segments do not fit its shape.
RunFile parse_run_file(const std::string& text, const std::string& path);

// 64-bit FNV-1a, the checksums' hash.
std::uint64_t fnv1a(const void* data, std::size_t n, std::uint64_t h = 14695981039346656037ULL);
std::string hex64(std::uint64_t h);

}  // namespace panelboot
