#pragma once
// Wild bootstrap weights from a counter-based generator (Philox4x32-10, Random123), keyed by
// (seed, replication, cluster): the weight of cluster g in replication b is a pure function of
// (seed, b, g, type), so results do not depend on threads, chunking, GPU grid or MPI ranks.
// Shared by the CPU backend and the CUDA kernels (PB_HD).
#include <Random123/philox.h>

#include <cmath>
#include <cstdint>

#include "panelboot/kernels/hd.hpp"

namespace panelboot::kernels {

enum class WeightType : int { kRademacher = 0, kMammen = 1, kWebb = 2, kNormal = 3, kGamma = 4 };

// Counter layout: {b low, b high, block, stream}; key: {seed low, seed high}.
PB_HD inline r123::Philox4x32::ctr_type philox_block(std::uint64_t seed, std::uint64_t b,
                                                     std::uint32_t block, std::uint32_t stream) {
  r123::Philox4x32 rng;
  r123::Philox4x32::ctr_type c = {{static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(b >> 32),
                                   block, stream}};
  r123::Philox4x32::key_type k = {{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}};
  return rng(c, k);
}

// (w + 0.5) / 2^32: in (0, 1), never 0 or 1.
PB_HD inline double to_unit(std::uint32_t w) { return (static_cast<double>(w) + 0.5) * 2.3283064365386963e-10; }

PB_HD inline double standard_normal(std::uint32_t w1, std::uint32_t w2) {
  const double u1 = to_unit(w1), u2 = to_unit(w2);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

// The weight of cluster g in replication b.
PB_HD inline double wild_weight(std::uint64_t seed, std::uint64_t b, std::uint32_t g, WeightType type) {
  switch (type) {
    case WeightType::kRademacher: {
      // one Philox block gives 128 signs: clusters 128j .. 128j+127
      const auto r = philox_block(seed, b, g >> 7, 0);
      const std::uint32_t bit = (r.v[(g >> 5) & 3] >> (g & 31)) & 1u;
      return bit ? 1.0 : -1.0;
    }
    case WeightType::kMammen: {
      const auto r = philox_block(seed, b, g >> 2, 1);
      const double u = to_unit(r.v[g & 3]);
      const double s5 = 2.23606797749979;  // sqrt(5)
      // 1 - phi = (1 - sqrt5)/2 with probability phi/sqrt5 = (sqrt5 + 1)/(2 sqrt5), else phi
      return u < (s5 + 1.0) / (2.0 * s5) ? (1.0 - s5) / 2.0 : (1.0 + s5) / 2.0;
    }
    case WeightType::kWebb: {
      const auto r = philox_block(seed, b, g >> 2, 2);
      const std::uint32_t idx = static_cast<std::uint32_t>((static_cast<std::uint64_t>(r.v[g & 3]) * 6u) >> 32);
      const double pts[6] = {-1.224744871391589, -1.0, -0.7071067811865476,
                             0.7071067811865476, 1.0, 1.224744871391589};
      return pts[idx];
    }
    case WeightType::kNormal: {
      const auto r = philox_block(seed, b, g >> 1, 3);
      return standard_normal(r.v[(g & 1) * 2], r.v[(g & 1) * 2 + 1]);
    }
    case WeightType::kGamma: {
      // Gamma(shape 4, scale 0.5) - 2: mean 0, variance 1. Marsaglia-Tsang, one Philox block per
      // attempt (the attempt number is the counter's stream word).
      const double d = 4.0 - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
      for (std::uint32_t attempt = 0; attempt < 64; ++attempt) {
        const auto r = philox_block(seed, b, g, 16u + attempt);
        const double z = standard_normal(r.v[0], r.v[1]);
        const double t = 1.0 + c * z;
        if (t <= 0) continue;
        const double v = t * t * t;
        const double u = to_unit(r.v[2]);
        if (log(u) < 0.5 * z * z + d - d * v + d * log(v)) return 0.5 * d * v - 2.0;
      }
      return 0.0;  // unreachable in practice (acceptance rate ~0.98 per attempt)
    }
  }
  return 0.0;
}

// The weights of clusters 0..n_clu-1 in replication b, each Philox block computed once:
// out[g * stride] = wild_weight(seed, b, g, type), identically.
PB_HD inline void wild_weights_row(std::uint64_t seed, std::uint64_t b, std::uint32_t n_clu, WeightType type,
                                   double* out, std::size_t stride) {
  if (type == WeightType::kRademacher) {
    for (std::uint32_t g0 = 0; g0 < n_clu; g0 += 128) {
      const auto r = philox_block(seed, b, g0 >> 7, 0);
      const std::uint32_t end = n_clu - g0 < 128 ? n_clu - g0 : 128;
      for (std::uint32_t j = 0; j < end; ++j)  // bit 1 -> +1, bit 0 -> -1, without a branch
        out[(g0 + j) * stride] = static_cast<double>(2 * static_cast<int>((r.v[j >> 5] >> (j & 31)) & 1u) - 1);
    }
    return;
  }
  if (type == WeightType::kMammen || type == WeightType::kWebb) {
    const std::uint32_t stream = type == WeightType::kMammen ? 1 : 2;
    for (std::uint32_t g0 = 0; g0 < n_clu; g0 += 4) {
      const auto r = philox_block(seed, b, g0 >> 2, stream);
      const std::uint32_t end = n_clu - g0 < 4 ? n_clu - g0 : 4;
      for (std::uint32_t j = 0; j < end; ++j) {
        if (type == WeightType::kMammen) {
          const double s5 = 2.23606797749979;
          out[(g0 + j) * stride] = to_unit(r.v[j]) < (s5 + 1.0) / (2.0 * s5) ? (1.0 - s5) / 2.0 : (1.0 + s5) / 2.0;
        } else {
          const double pts[6] = {-1.224744871391589, -1.0, -0.7071067811865476,
                                 0.7071067811865476, 1.0, 1.224744871391589};
          out[(g0 + j) * stride] = pts[static_cast<std::uint32_t>((static_cast<std::uint64_t>(r.v[j]) * 6u) >> 32)];
        }
      }
    }
    return;
  }
  for (std::uint32_t g = 0; g < n_clu; ++g) out[g * stride] = wild_weight(seed, b, g, type);
}

// Sign of cluster g in enumerated vector i (cluster 0 is always +1).
PB_HD inline double enumerated_weight(std::uint64_t i, std::uint32_t g) {
  return g == 0 ? 1.0 : (((i >> (g - 1)) & 1u) ? -1.0 : 1.0);
}

// The weights of replication b for clusters 0..n_clu-1 at out[g * stride]: Philox draws, or
// enumerated sign vector b. The one weight fill of every backend (the CPU's blocks below, a
// CUDA thread's column of a block, the fused kernel's registers).
PB_HD inline void wild_weights_column(std::uint64_t seed, WeightType type, bool enumerate, std::uint64_t b,
                                      std::uint32_t n_clu, double* out, std::size_t stride) {
  if (enumerate) {
    for (std::uint32_t g = 0; g < n_clu; ++g) out[g * stride] = enumerated_weight(b, g);
  } else {
    wild_weights_row(seed, b, n_clu, type, out, stride);
  }
}

// V (n_clu x nb, row-major): the weights of replications b0 .. b0+nb-1.
PB_HD inline void wild_weights_block(std::uint64_t seed, WeightType type, bool enumerate, std::uint64_t b0,
                                     std::size_t nb, std::uint32_t n_clu, double* V) {
  for (std::size_t b = 0; b < nb; ++b) wild_weights_column(seed, type, enumerate, b0 + b, n_clu, V + b, nb);
}

}  // namespace panelboot::kernels
