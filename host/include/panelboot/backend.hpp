#pragma once
// The compute backend: one coarse interface called once per batch (never per regression), with
// the CPU reference implementation (host/src/backend/cpu) and a CUDA one (cuda/). Plain data
// crosses the boundary: sizes, row- or column-major arrays whose layouts are documented here.
// Both backends draw the same counter-based random numbers (kernels/wild_weights.hpp), so the
// same seed gives the same counts on either.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "panelboot/kernels/boot_counts.hpp"
#include "panelboot/kernels/gray_walk.hpp"
#include "panelboot/kernels/power_batch.hpp"
#include "panelboot/kernels/small_solve.hpp"
#include "panelboot/kernels/threshold_boot.hpp"
#include "panelboot/kernels/wild_weights.hpp"
#include "panelboot/kernels/wre.hpp"
#include "panelboot/progress.hpp"

namespace panelboot {

enum class Device { kAuto, kCpu, kCuda };
using kernels::BootCounts;
using kernels::Pairs;

// One wild bootstrap test's fixed data, after the host has reduced the data to cluster-level
// pieces (see wild.hpp for the algebra): flat arrays, laid out in the order the backends read
// them. Built once per test (WildEngine); any number of runs (WildRunOptions) may use it, and a
// backend may prepare it once (Backend::prepare_wild) for many runs. For replication b with
// weights v (n_clu), S the variance terms, C = row_off[n_terms] their error clusters in all:
//   R1_p      = M1_p v                         M1_p: rows1 x n_clu, row-major, at m1_of(p); rows
//                                              0..q-1 give the numerators N_{p,j}, the rest the
//                                              shared factors
//   Z_{p,j,S} = Kd_{p,j,S} v                   dense: n_rows[S] x n_clu, row-major, at kd_of(p, j, S)
//             = T1_{p,j,S} v - PF_{j,S} R1_p[q:]   factored: T1 sparse on the cells of term S
//                                              (t1_of(p, j, S), CSR below), PF n_rows[S] x kl,
//                                              row-major, at pf_of(j, S)
//   q = 1:  D_{p1,p2} = sum_S w_S sum_c Z_{p1,0,S} Z_{p2,0,S}; the stored coefficients are
//           n0 = N_0, d0 = D_00 and, with two parts (the CI), n1 = N_1, d1 = D_01, d2 = D_11;
//           t = kernels::wild_t(n0, n1, d0, d1, d2, delta).
//   q > 1:  D_{j,l} = sum_S w_S sum_c Z_{0,j,S} Z_{0,l,S}; F = N' D^-1 N / q, stored as n0 with
//           d0 = 1 (so wild_t gives F back).
// The cells (error cluster c, bootstrap cluster g) of term S, which the factored form reads, are
// sorted by c (CSR, each cluster's cells in the order the host found them): those of cluster c
// are the term's cells row_ptr[row_ptr_off(S) + c] .. row_ptr[row_ptr_off(S) + c + 1] - 1, cell e
// of the term at bootstrap cluster cell_g[cell_off[S] + e]. The *_at functions give where each
// block starts in its flat array.
struct WildProblem {
  std::int32_t n_clu = 0;  // bootstrap clusters G
  int q = 1;               // restriction rows
  int n_part = 1;          // 1, or 2 (uhat and the CI direction h) with q = 1
  bool dense = true;
  int kl = 0;              // rows1 - q in the factored form (k + re-projected FE levels)
  std::vector<std::int32_t> n_rows;      // [S] error clusters of term S
  std::vector<double> term_weight;       // [S] w_S
  std::vector<std::int64_t> row_off;     // [S + 1] sum of n_rows before term S (the last: C)
  std::vector<std::int64_t> cell_off;    // [S + 1] the same over the terms' cells
  std::vector<std::int32_t> row_ptr;     // [C + S] per term n_rows[S] + 1 offsets into its cells
  std::vector<std::int32_t> cell_g;      // [cells] bootstrap cluster of each cell
  std::vector<double> m1;                // [P rows1 n_clu]
  std::vector<double> kd;                // [P q C n_clu] dense
  std::vector<double> pf;                // [q C kl] factored
  std::vector<double> t1;                // [P q cells] factored
  std::size_t n_terms() const { return n_rows.size(); }
  std::size_t rows1() const { return static_cast<std::size_t>(q) + (dense ? 0 : static_cast<std::size_t>(kl)); }
  std::int64_t n_cells() const { return cell_off.empty() ? 0 : cell_off.back(); }
  std::int64_t row_ptr_off(std::size_t s) const { return row_off[s] + static_cast<std::int64_t>(s); }
  std::int64_t zi(std::size_t p, std::size_t j) const { return static_cast<std::int64_t>(p) * q + static_cast<std::int64_t>(j); }
  std::int64_t m1_at(std::size_t p) const { return static_cast<std::int64_t>(p * rows1()) * n_clu; }
  std::int64_t kd_at(std::size_t p, std::size_t j, std::size_t s) const { return (zi(p, j) * row_off.back() + row_off[s]) * n_clu; }
  std::int64_t pf_at(std::size_t j, std::size_t s) const { return (static_cast<std::int64_t>(j) * row_off.back() + row_off[s]) * kl; }
  std::int64_t t1_at(std::size_t p, std::size_t j, std::size_t s) const { return zi(p, j) * n_cells() + cell_off[s]; }
  const double* m1_of(std::size_t p) const { return m1.data() + m1_at(p); }
  const double* kd_of(std::size_t p, std::size_t j, std::size_t s) const { return kd.data() + kd_at(p, j, s); }
  const double* pf_of(std::size_t j, std::size_t s) const { return pf.data() + pf_at(j, s); }
  const double* t1_of(std::size_t p, std::size_t j, std::size_t s) const { return t1.data() + t1_at(p, j, s); }
  const std::int32_t* row_ptr_of(std::size_t s) const { return row_ptr.data() + row_ptr_off(s); }
  const std::int32_t* cell_g_of(std::size_t s) const { return cell_g.data() + cell_off[s]; }
};

// One run of the bootstrap on a WildProblem: which replications, drawn how, counted against what.
struct WildRunOptions {
  // draws: replications b0 .. b0+n_rep-1, Philox weights, or enumerated sign vectors
  std::uint64_t seed = 0;
  kernels::WeightType weight = kernels::WeightType::kRademacher;
  bool enumerate = false;
  std::uint64_t b0 = 0;
  std::uint64_t n_rep = 0;
  std::size_t chunk = 0;        // replications per batch (0: the backend decides); no effect on results
  std::size_t trace_keep = 0;   // return the statistics of the first trace_keep replications of the run
  // counts returned with the run, at delta = count_delta against t = count_t (tie tolerance
  // count_tol); the coefficients are kept for further counts (the CI) only with keep_coefs
  double count_delta = 0, count_t = 0, count_tol = 0;
  bool inclusive = false;
  bool keep_coefs = false;
  // The CPU backend starts its thread team only for more work than this, counted in
  // multiply-adds (wild_work_per_replication; about 5 ms on one thread); tests set 0.
  double min_team_work = 1e7;
  ProgressSink* progress = nullptr;  // told of each finished batch of replications (may be null)
};

// A run's stored coefficients as host columns, replication by replication: n0 and d0, and with
// two parts n1, d1, d2 (else empty). What a shard's partial file keeps for the merge's CI.
struct WildCoefs {
  std::vector<double> n0, n1, d0, d1, d2;
};

// The stored coefficients of every replication, held where they were computed (host or device
// memory), so that the test-inversion CI can count at many deltas without moving them.
class WildReplicates {
 public:
  virtual ~WildReplicates() = default;
  // Counts of t*(delta) against t with tie tolerance tol.
  virtual BootCounts count(double delta, double t, double tol, bool inclusive) const = 0;
  virtual std::uint64_t size() const = 0;
  // A host copy of every replication's coefficients.
  virtual WildCoefs coefficients() const = 0;
};

struct WildRun {
  BootCounts counts;                    // at (count_delta, count_t, count_tol)
  std::unique_ptr<WildReplicates> reps;  // with keep_coefs
  std::vector<double> trace;            // statistics at count_delta of the first trace_keep replications
};

// The IV wild bootstrap (WRE/WUE and the wild bootstrap Anderson-Rubin test, one endogenous
// regressor; kernels/wre.hpp for the algebra): the fixed data of one model. Replication b's
// products are K v_b (K rows() x n_clu, row-major), its moments (kernels::wre_moments) are read
// from them with the model's constants, and the statistic at any null value from the moments
// (WreEval). Built once per model by the host (inference/wre.cpp).
//   dense:     P = K v, K = k (rows() x n_clu, row-major)
//   factored:  P(j, 0, l)     = k[j L + l] . v              k: (J L) x n_clu, the A rows only
//              R1_j           = F1_j v                      f1: (J kl) x n_clu, rows j kl + k
//              P(j, 1 + c, l) = sum_{cells e of c} t1[(j cells + e) L + l] v_{cell_g[e]}
//                               - pf[(c L + l) kl .. +kl] . R1_j
// (cells: the (error cluster, bootstrap cluster) pairs met in the data, CSR by c over every term:
// row_ptr [C + 1]; kl = k_exo + the re-projected FE levels). Each output is summed in that order
// on every backend; the form with fewer multiply-adds per replication is chosen (wre_form).
struct WreProblem {
  std::int32_t n_clu = 0;  // bootstrap clusters G
  int L = 0;               // excluded instruments
  std::int64_t C = 0;      // error clusters over every variance term
  bool dense = true;
  int kl = 0;
  std::vector<double> k;   // dense: [rows() n_clu]; factored: [J L n_clu]
  std::vector<double> f1, t1, pf;
  std::vector<std::int32_t> row_ptr, cell_g;
  std::vector<double> pihat, zz, zzq, row_w;  // kernels::WreModelView
  int J() const { return L + 2; }
  std::int64_t n_cells() const { return static_cast<std::int64_t>(cell_g.size()); }
  std::int64_t rows() const { return kernels::wre_rows(L, C); }
  std::int64_t n_moments() const { return kernels::WreMomentLayout{L}.size(); }
  kernels::WreModelView view() const {
    kernels::WreModelView v;
    v.L = L;
    v.C = C;
    v.pihat = pihat.data();
    v.zz = zz.data();
    v.zzq = zzq.data();
    v.row_w = row_w.data();
    return v;
  }
};

// One evaluation (see kernels::WreEvalView), owned.
struct WreEval {
  bool ar = false, at_infinity = false;
  int L = 0;
  double b0 = 0, ar_scale = 1;
  std::vector<double> ptilde, zzp, Q;
  kernels::WreEvalView view() const {
    kernels::WreEvalView v;
    v.L = L;
    v.ar = ar;
    v.at_infinity = at_infinity;
    v.b0 = b0;
    v.ar_scale = ar_scale;
    v.ptilde = ptilde.data();
    v.zzp = zzp.data();
    v.Q = Q.data();
    return v;
  }
};

// One run: replications 0 .. n_rep-1 (Philox draws), or, enumerating, the 2^(G-1) sign vectors
// with cluster 0 at +1, each with its products and their negation (the other half of the 2^G
// vectors: the WRE statistic is not symmetric in the signs, so both are evaluated; statistic
// 2i is vector i, 2i + 1 its negation).
struct WreRunOptions {
  std::uint64_t seed = 0;
  kernels::WeightType weight = kernels::WeightType::kRademacher;
  bool enumerate = false;
  std::uint64_t b0 = 0;         // the first replication (or sign-vector pair): a range's start
  std::uint64_t n_rep = 0;      // replications, or sign-vector pairs when enumerating
  std::size_t chunk = 0;        // replications per batch (0: the backend decides); no effect on results
  std::size_t trace_keep = 0;   // return the first trace_keep statistics (enumerating: v, -v, in index order)
  double count_t = 0, count_tol = 0;  // counts against the observed statistic, tie tolerance
  bool inclusive = false;
  bool keep = false;            // keep every statistic's moments for counts at other null values
  double min_team_work = 1e7;   // as WildRunOptions
  ProgressSink* progress = nullptr;
};

// Every statistic's moments, held where they were computed, for the test-inversion sets.
class WreReplicates {
 public:
  virtual ~WreReplicates() = default;
  virtual BootCounts count(const WreEval& e, double t, double tol, bool inclusive) const = 0;
  // A host copy of every statistic's moments, one statistic after another (n_moments each).
  virtual std::vector<double> moments() const = 0;
};

struct WreRun {
  BootCounts counts;
  std::unique_ptr<WreReplicates> reps;  // with keep
  std::vector<double> trace;
};

// A default batch of about `target` replications (16 to 2016) made cache-friendly for the CPU's
// products (cpu::gemm_rows): from 32 on, an odd number of whole 32-replication blocks. Whole
// blocks leave no replications to the scalar tail; with an odd count the row stride of a G x batch
// array is no multiple of 4 KB (at 2048 every row fell on the same L1 cache sets: 2048 -> 2016
// made the AVX2 product's wild bootstrap a fifth faster, bench/RESULTS.md).
inline std::size_t cache_friendly_batch(std::int64_t target) {
  const std::int64_t c = std::min<std::int64_t>(std::max<std::int64_t>(target, 16), 2016);
  if (c < 32) return static_cast<std::size_t>(c);
  std::int64_t blocks = c / 32;
  if (blocks % 2 == 0) --blocks;
  return static_cast<std::size_t>(32 * blocks);
}

// Replications per batch when WreRunOptions::chunk is 0: about 2^18 products per batch
// (cache_friendly_batch: 16 to 2016).
inline std::size_t default_wre_chunk(const WreProblem& p) {
  const std::int64_t rows = std::max<std::int64_t>({p.rows(), p.n_clu, 1});
  return cache_friendly_batch((std::int64_t{1} << 18) / rows);
}
// The multiply-adds of one replication's products in either form (the choice of the form), and
// with its moments.
inline double wre_product_work(const WreProblem& p, bool dense) {
  const double J = p.L + 2.0, L = p.L, G = p.n_clu, C = static_cast<double>(p.C);
  if (dense) return static_cast<double>(p.rows()) * G;
  return J * L * G + J * p.kl * G + J * L * static_cast<double>(p.n_cells()) + J * L * C * p.kl;
}
inline double wre_work_per_replication(const WreProblem& p) {
  const double K = p.L * (p.L + 2.0);
  return wre_product_work(p, p.dense) + static_cast<double>(p.C) * (K * (K + 1) / 2 + 4.0 * p.L * p.L);
}

// n_batch independent regressions y_b = X_b beta_b + e (no intercept added), each X_b n_obs x
// n_reg column-major at X + b * stride_x (stride_x >= n_obs * n_reg), y_b at y + b * stride_y.
struct OlsBatch {
  const double* X = nullptr;
  const double* y = nullptr;
  std::int64_t n_obs = 0, n_reg = 0, n_batch = 0, stride_x = 0, stride_y = 0;
  double rel_tol = 1e-12;  // pivot tolerance of the Cholesky factor (relative to the largest diagonal)
};
struct OlsBatchResult {
  std::vector<double> beta;  // n_reg x n_batch, column-major; NaN for items not solved
  std::vector<double> ssr;   // n_batch
  std::vector<int> status;   // n_batch: kernels::SolveStatus (0 ok, 1 singular, 2 not finite)
  double device_s = std::numeric_limits<double>::quiet_NaN();  // CUDA: the kernels' own time
                                                               // (events; copies excluded)
};

// The threshold bootstrap's Gram matrix W'MW, as the host holds it: the diagonal p x p blocks
// (flat, block g at diag() + g p^2) and a grid point's column block ((n_grid p) x p,
// column-major) computed on first use (thread-safe).
class ThresholdGram {
 public:
  virtual ~ThresholdGram() = default;
  virtual const double* diag() const = 0;
  virtual const double* column(std::int64_t f) const = 0;
};

// A ThresholdGram as the shared search (kernels::threshold_stage) reads a Gram on the host: the
// diagonal blocks, and a column computed when a replication first fixes its point.
struct HostGramAccess {
  const double* diag;
  const ThresholdGram* g;
  const double* column(std::int64_t f) const { return g->column(f); }
};

// One bootstrap test of the threshold model: the per-replication data (host pointers; the
// layouts are documented in kernels/threshold_boot.hpp) and the number of replications.
struct ThresholdBootSpec {
  kernels::ThresholdBootView view;
  std::int64_t b0 = 0;      // replications b0 .. b0+n_boot-1 (their draws are keyed by the index)
  std::int64_t n_boot = 0;
  // The CPU backend starts its OpenMP team only for more work than this, counted as
  // n_boot (n_obs (n_q + 2) + n_grid p k) (about 10 ms on one thread), and plain threads below it
  // (one per cpu::kLightThreadWork, up to --threads); tests set 0 for the team.
  double min_team_work = 4e7;
  ProgressSink* progress = nullptr;  // told of each finished batch of replications (may be null)
};

// power's regressions over one fixed design: kernels/power_batch.hpp.
using kernels::FixedDesign;
using kernels::FixedDesignBatch;
using kernels::FixedDesignResult;

// A WildProblem as a backend holds it for runs (CPU: the problem itself; CUDA: its device copy).
class PreparedWild {
 public:
  virtual ~PreparedWild() = default;
  virtual WildRun run(const WildRunOptions& o) const = 0;
};

// What one processor can do at most, and how each figure was found.
struct MachineLimits {
  std::string device;        // "cpu" or "cuda"
  std::string name;          // the CPU model or the GPU's name
  int units = 0;             // CPU: the threads in use, at most the physical cores; GPU: multiprocessors
  int fp64_lanes = 0;        // CPU: FP64 lanes of its widest vector unit;
                             // GPU: FP64 units per multiprocessor
  double clock_hz = 0;
  std::string clock_source;  // where the clock came from (a documented constant when hidden)
  // the FP64 limit: GPU: fp64_model_flops; CPU: the larger of that and fp64_flops_measured
  // (cpu_limits)
  double fp64_flops = 0;
  // CPU: vector multiplies and adds timed in this run; 0: not measured
  double fp64_flops_measured = 0;
  std::string fp64_source;   // how fp64_flops was found ("": the model)
  double bytes_per_s = 0;    // CPU: a STREAM-like copy measured in this run; GPU: the interface's peak
  std::string bytes_source;
  // GPU: pinned host memory to the device, measured when the limits are asked for (the floor of
  // a call whose data starts on the host); 0 on the CPU
  double host_to_device_bytes_per_s = 0;
  std::string host_to_device_source;
};

// The FP64 model of a processor: units x lanes x 2 (a multiply and an add per cycle) x clock.
inline double fp64_model_flops(const MachineLimits& m) {
  return m.units * static_cast<double>(m.fp64_lanes) * 2.0 * m.clock_hz;
}

// Host memory for the data a backend's calls read (the batched OLS design): page-locked
// (pinned) on the CUDA backend, so that its copies to the device run at the link's full rate
// and overlap its kernels; ordinary memory on the CPU. Uninitialized; it must not outlive the
// backend that made it.
class HostArray {
 public:
  virtual ~HostArray() = default;
  double* data() const { return data_; }
  std::size_t size() const { return size_; }

 protected:
  double* data_ = nullptr;
  std::size_t size_ = 0;
};

// Ordinary host memory (the CPU backend's HostArray). Inline, like every default of Backend, so
// that the CUDA plugin, which derives from Backend, needs nothing of the host library.
class PlainHostArray final : public HostArray {
 public:
  explicit PlainHostArray(std::size_t n) : memory_(new double[n]) {
    data_ = memory_.get();
    size_ = n;
  }

 private:
  std::unique_ptr<double[]> memory_;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string name() const = 0;      // "cpu" or "cuda"
  virtual std::string describe() const = 0;  // one line: which device and why
  // The device's peak FP64 rate and memory bandwidth (`panelboot bench`'s limits): the CUDA
  // backend's from the device's attributes; the CPU's are measured by the bench (cpu_limits), so
  // the CPU backend returns an empty one.
  virtual MachineLimits limits() const { return {}; }
  // n doubles of host memory for this backend's inputs (HostArray): pinned on a GPU
  virtual std::unique_ptr<HostArray> host_array(std::size_t n) const {
    return std::make_unique<PlainHostArray>(n);
  }

  // The weights of replications b0 .. b0+nb-1 as the wild bootstrap draws them: n_clu x nb,
  // row-major (Philox, or enumerated sign vectors). Exposed so tests can prove the draws match.
  virtual std::vector<double> wild_weights(std::uint64_t seed, kernels::WeightType type, bool enumerate,
                                           std::uint64_t b0, std::size_t nb, std::int32_t n_clu) const = 0;
  // A problem made ready for runs on this backend (its arrays uploaded, for a device): the
  // problem and the backend must outlive it, and the problem must not change while it is
  // prepared (a device copy would no longer match the sizes and offsets read from it); a new
  // problem (another test) is prepared anew. Many runs of one problem (replication ranges,
  // several seeds) share one preparation.
  virtual std::unique_ptr<PreparedWild> prepare_wild(const WildProblem& problem) const = 0;
  // Every replication of one run of a wild bootstrap test (o.n_rep of them), counted (and stored
  // with o.keep_coefs): prepare_wild(problem)->run(o).
  WildRun wild_replicates(const WildProblem& problem, const WildRunOptions& o) const {
    return prepare_wild(problem)->run(o);
  }
  // Exact enumeration of all 2^(G-1) sign-vector pairs by the Gray-code walk (G <= 40);
  // `progress` (may be null) is told of each finished range of sign vectors.
  virtual BootCounts wild_enumerate(const kernels::GrayProblem& p, ProgressSink* progress) const = 0;
  // F* of replications b0 .. b0+n_boot-1 of one threshold test (kernels/threshold_boot.hpp): the same
  // operations in the same order on every backend, so the same bits.
  virtual std::vector<double> threshold_fstar(const ThresholdBootSpec& spec, const ThresholdGram& gram) const = 0;
  // The IV wild bootstrap's replications (WreRunOptions), evaluated with `e` and counted; every
  // backend computes the products and the statistic in the same order (the same bits).
  virtual WreRun wre_replicates(const WreProblem& problem, const WreEval& e, const WreRunOptions& o) const = 0;
  // Many small regressions at once; singular items are flagged per item, never thrown.
  virtual OlsBatchResult batched_ols(const OlsBatch& batch) const = 0;
  // power's batch of regressions over one fixed design (kernels/power_batch.hpp). The CPU backend
  // runs column blocks in parallel; this default (one block after another, on the host) is what
  // the CUDA backend inherits until power's GPU path exists (power runs on the CPU backend only).
  virtual FixedDesignResult fixed_design_ols(const FixedDesign& design, const FixedDesignBatch& batch) const {
    FixedDesignResult out = kernels::fixed_design_result(design, batch);
    for (std::int64_t b0 = 0; b0 < batch.nb; b0 += kernels::kFixedDesignBlock)
      kernels::fixed_design_columns(design, batch, b0, std::min(batch.nb, b0 + kernels::kFixedDesignBlock), out);
    return out;
  }
};

// kAuto: CUDA when compiled and a device is present, else CPU. kCuda without a usable GPU
// throws NotCompiled (no CUDA in this build) or CudaError (no device, driver too old).
std::unique_ptr<Backend> make_backend(Device d);
// Where make_backend(d) would run, without constructing anything (the driver is probed): the
// same errors; `why` says why the CPU (empty for CUDA).
Device resolve_device(Device d, std::string& why);

// The pairing rule of stored statistics (see kernels::Pairs) for a wild test.
inline Pairs wild_pairs(const WildProblem& p, const WildRunOptions& o) {
  return !o.enumerate ? Pairs::kSingle : p.q == 1 ? Pairs::kNegated : Pairs::kDoubled;
}

// Replications per batch when WildRunOptions::chunk is 0 (the CPU backend's rule: about 2^18
// values in the largest cluster-level array of a batch; cache_friendly_batch: 16 to 2016).
inline std::size_t default_wild_chunk(const WildProblem& p) {
  std::int64_t mc = p.n_clu;
  for (std::int32_t c : p.n_rows) mc = std::max<std::int64_t>(mc, c);
  return cache_friendly_batch((std::int64_t{1} << 18) / std::max<std::int64_t>(mc, 1));
}

// Bytes one replication of a batch takes in a thread's buffers: its weights (G), the products
// (rows1 per part), the cluster-level scores of the largest term, the numerators and
// denominators, and its stored coefficients.
inline double wild_batch_bytes_per_replication(const WildProblem& p) {
  double max_rows = 0;
  for (std::int32_t c : p.n_rows) max_rows = std::max(max_rows, static_cast<double>(c));
  const double P = p.n_part, q = p.q;
  return 8.0 * (p.n_clu + P * static_cast<double>(p.rows1()) + P * q * max_rows + P * q + (q == 1 ? P * P : q * q) + 6);
}

// The multiply-adds of one replication (its products and denominators): the unit of
// WildRunOptions::min_team_work.
inline double wild_work_per_replication(const WildProblem& p) {
  const double P = p.n_part, q = p.q, G = p.n_clu, kl = p.kl;
  double w = P * static_cast<double>(p.rows1()) * G;
  for (std::size_t s = 0; s < p.n_terms(); ++s) {
    const double C = p.n_rows[s];
    const double cells = p.dense ? 0.0 : static_cast<double>(p.cell_off[s + 1] - p.cell_off[s]);
    w += P * q * (p.dense ? C * G : cells + C * kl) + (q == 1 ? P * P : q * q) * C;
  }
  return w;
}

namespace cpu {
std::unique_ptr<Backend> make_cpu_backend(const std::string& why);
// Coefficients held on the host (a merge's, gathered from the shards' parts) counted by the CPU
// backend's rule: the same counts as the backend that computed them (kernels::WildCountOp).
std::unique_ptr<WildReplicates> host_wild_replicates(WildCoefs coefs, Pairs pairs, double min_team_work);
// The IV bootstrap's moments held on the host (n_mom per statistic), counted by the CPU backend.
std::unique_ptr<WreReplicates> host_wre_replicates(std::vector<double> moments, std::int64_t n_mom, double min_team_work);
}

namespace cuda {
// Number of usable CUDA devices; on 0, `why` says why (not compiled, no device, driver).
int usable_devices(std::string& why);
std::unique_ptr<Backend> make_cuda_backend();
}  // namespace cuda

}  // namespace panelboot
