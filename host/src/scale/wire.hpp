#pragma once
// The bytes of the messages between MPI ranks (mpi_session.cpp, mpi_runner.cpp): integers and
// doubles in this machine's byte order (every rank of a job runs the same build), strings and
// arrays with their lengths first.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "panelboot/error.hpp"

namespace panelboot::mpi::wire {

class Writer {
 public:
  Writer& u64(std::uint64_t v) { return raw(&v, sizeof v); }
  Writer& i64(std::int64_t v) { return raw(&v, sizeof v); }
  Writer& f64(double v) { return raw(&v, sizeof v); }
  Writer& str(const std::string& s) {
    u64(s.size());
    return raw(s.data(), s.size());
  }
  Writer& i64s(const std::vector<std::int64_t>& v) {
    u64(v.size());
    return raw(v.data(), v.size() * sizeof(std::int64_t));
  }
  Writer& f64s(const std::vector<double>& v) {
    u64(v.size());
    return raw(v.data(), v.size() * sizeof(double));
  }
  std::string take() { return std::move(bytes_); }

 private:
  Writer& raw(const void* p, std::size_t n) {
    if (n) bytes_.append(static_cast<const char*>(p), n);  // an empty vector's data() may be null
    return *this;
  }
  std::string bytes_;
};

class Reader {
 public:
  explicit Reader(const std::string& bytes) : b_(bytes) {}
  std::uint64_t u64() {
    std::uint64_t v;
    raw(&v, sizeof v);
    return v;
  }
  std::int64_t i64() {
    std::int64_t v;
    raw(&v, sizeof v);
    return v;
  }
  double f64() {
    double v;
    raw(&v, sizeof v);
    return v;
  }
  std::string str() {
    const std::uint64_t n = count(1);
    std::string s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::vector<std::int64_t> i64s() {
    std::vector<std::int64_t> v(count(sizeof(std::int64_t)));
    raw(v.data(), v.size() * sizeof(std::int64_t));
    return v;
  }
  std::vector<double> f64s() {
    std::vector<double> v(count(sizeof(double)));
    raw(v.data(), v.size() * sizeof(double));
    return v;
  }

 private:
  std::uint64_t count(std::size_t each) {
    const std::uint64_t n = u64();
    if (n > (b_.size() - pos_) / each) throw Error("a message between MPI ranks is cut short");
    return n;
  }
  void raw(void* p, std::size_t n) {
    if (n > b_.size() - pos_) throw Error("a message between MPI ranks is cut short");
    if (n) std::memcpy(p, b_.data() + pos_, n);  // an empty vector's data() may be null
    pos_ += n;
  }
  const std::string& b_;
  std::size_t pos_ = 0;
};

}  // namespace panelboot::mpi::wire
