// The IV wild bootstrap (one endogenous regressor): the WRE bootstrap of Davidson and MacKinnon
// (2010) as boottest implements it, its unrestricted variant WUE, and the wild bootstrap
// Anderson-Rubin test, each with its confidence set by test inversion. The host reduces the model
// to the products of kernels/wre.hpp (IvSpace, wre_problem) and, per null value, to the
// coefficients of one evaluation (wre_eval, ar_eval); a Backend draws the replications. Stages:
// check, fit, the partialled columns, the products, then per test the WRE/WUE row (and with --ar
// the AR row), each with its p-value and set.
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "inference/wild_engine.hpp"
#include "panelboot/distributions.hpp"
#include "panelboot/error.hpp"
#include "panelboot/memory.hpp"
#include "panelboot/progress.hpp"
#include "panelboot/wild.hpp"

namespace panelboot {
namespace wild_detail {
namespace {

// Sign vectors are enumerated for at most this many bootstrap clusters (2^G of them, each
// evaluated in full: see plan_wre_enumeration).
constexpr std::int32_t kMaxWreEnumerateClusters = 26;
// The multiply-adds per second and thread the enumeration's time estimate assumes.
constexpr double kAssumedRate = 1e9;

std::string fmt(const char* spec, double v) {
  char b[64];
  std::snprintf(b, sizeof b, spec, v);
  return b;
}

std::vector<double> flat(const Mat& m) {  // row-major
  std::vector<double> out;
  out.reserve(static_cast<std::size_t>(m.size()));
  for (Eigen::Index a = 0; a < m.rows(); ++a)
    for (Eigen::Index b = 0; b < m.cols(); ++b) out.push_back(m(a, b));
  return out;
}
std::vector<double> flat(const Vec& v) { return std::vector<double>(v.data(), v.data() + v.size()); }

// The model's columns after the IV fit, in the within-transformed sqrt(w)-scaled space, with the
// kept exogenous regressors X partialled out: the basis e_j = [r1, m2, Zt] of kernels/wre.hpp.
struct IvSpace {
  Mat X;                   // N x kx
  Mat XtXi;                // (X'X)^-1
  Mat Zt;                  // N x L: M_X Z
  Vec r1, r2;              // M_X y1, M_X y2
  Mat ZZ, Q;               // Zt'Zt and its inverse
  Vec pihat;               // Q Zt'r2: the first stage's coefficients on Z
  Mat E;                   // N x J: r1, m2 = r2 - Zt pihat, Zt
  Mat Gb;                  // E'E
  double b_hat = 0, se = 0;
  int L = 0, J = 0;
};

Eigen::Index column_of(const Design& d, const std::string& name) {
  for (std::size_t j = 0; j < d.x_names.size(); ++j)
    if (d.x_names[j] == name) return static_cast<Eigen::Index>(j);
  throw InvalidInput("wild: IV column '" + name + "' is not in the design");
}

Mat design_columns(const Design& d, const std::vector<std::string>& names) {
  const auto n = static_cast<Eigen::Index>(d.n_obs);
  Mat out(n, static_cast<Eigen::Index>(names.size()));
  for (std::size_t a = 0; a < names.size(); ++a)
    out.col(static_cast<Eigen::Index>(a)) = Eigen::Map<const Vec>(d.X.data() + column_of(d, names[a]) * n, n);
  return out;
}

// M_X A
Mat partial_x(const Mat& A, const Mat& X, const Mat& XtXi) {
  if (X.cols() == 0) return A;
  return A - X * (XtXi * (X.transpose() * A));
}

// The partialled columns; the fit left the structural residuals in d.y, so y1 = u + [y2 X] b.
IvSpace iv_space(const Design& d, const FitResult& fr) {
  const IvInfo& iv = *fr.iv;
  IvSpace s;
  s.X = design_columns(d, iv.exogenous);
  const Mat y2 = design_columns(d, iv.endogenous);
  const Mat Z = design_columns(d, iv.instruments);
  const auto n = static_cast<Eigen::Index>(d.n_obs);
  Vec y1 = Eigen::Map<const Vec>(d.y.data(), n) + y2.col(0) * fr.beta(0);
  if (s.X.cols() > 0) {
    y1 += s.X * fr.beta.tail(s.X.cols());
    s.XtXi = (s.X.transpose() * s.X).ldlt().solve(Mat::Identity(s.X.cols(), s.X.cols()));
  }
  s.Zt = partial_x(Z, s.X, s.XtXi);
  s.r1 = partial_x(y1, s.X, s.XtXi);
  s.r2 = partial_x(y2.col(0), s.X, s.XtXi);
  s.L = static_cast<int>(Z.cols());
  s.J = s.L + 2;
  s.ZZ = s.Zt.transpose() * s.Zt;
  s.Q = s.ZZ.ldlt().solve(Mat::Identity(s.L, s.L));
  s.pihat = s.Q * (s.Zt.transpose() * s.r2);
  s.E.resize(n, s.J);
  s.E.col(0) = s.r1;
  s.E.col(1) = s.r2 - s.Zt * s.pihat;
  s.E.rightCols(s.L) = s.Zt;
  s.Gb = s.E.transpose() * s.E;
  s.b_hat = fr.beta(0);
  s.se = std::sqrt(fr.vcov(0, 0));
  return s;
}

// The basis coefficients of r2 = m2 + Zt pihat and of r1 - b r2.
Vec r2_coefficients(const IvSpace& s) {
  Vec c = Vec::Zero(s.J);
  c(1) = 1.0;
  c.tail(s.L) = s.pihat;
  return c;
}
Vec restricted_residual_coefficients(const IvSpace& s, double b) {
  Vec c = -b * r2_coefficients(s);
  c(0) += 1.0;
  return c;
}

// The variance terms as the products' rows see them: per term its error-cluster codes, and each
// error cluster's weight (w_S of its term) in row order.
struct Rows {
  std::vector<const std::int32_t*> code;  // [S]
  std::vector<std::int64_t> off;          // [S + 1]
  std::int64_t C = 0;
};

Rows variance_rows(const std::vector<ClusterTerm>& terms) {
  Rows r;
  r.off.push_back(0);
  for (const ClusterTerm& t : terms) {
    r.code.push_back(t.grouping->code.data());
    r.off.push_back(r.off.back() + t.grouping->n_levels);
  }
  r.C = r.off.back();
  return r;
}

std::vector<double> row_weights(const std::vector<ClusterTerm>& terms) {
  std::vector<double> w;
  for (const ClusterTerm& t : terms) w.insert(w.end(), static_cast<std::size_t>(t.grouping->n_levels), t.weight);
  return w;
}

// Per error cluster c (over every term): Zt_c'Zt_c (L x L).
std::vector<Mat> cluster_zz(const IvSpace& s, const Rows& rows, std::size_t n) {
  std::vector<Mat> zz(static_cast<std::size_t>(rows.C), Mat::Zero(s.L, s.L));
  for (std::size_t t = 0; t < rows.code.size(); ++t)
    for (std::size_t i = 0; i < n; ++i) {
      Mat& m = zz[static_cast<std::size_t>(rows.off[t] + rows.code[t][i])];
      for (int l = 0; l < s.L; ++l)
        for (int k = 0; k < s.L; ++k) m(l, k) += s.Zt(i, l) * s.Zt(i, k);
    }
  return zz;
}

// The products of kernels/wre.hpp: per basis vector e_j, the rows A_j (Zt_g'e_j,g) and
// K_jc = Zt_c'[M(e_j 1_g)]_c = sum_{i in c, g} Zt_i e_ji - (Zt_c'X_c)(X'X)^-1 X_g'e_j
//                               - (Zt_c'Dt_c) Gi Dt_g'e_j,
// M re-demeaning the bootstrap data by X and the fixed effects not nested in the bootstrap
// clusters (Dt, Gi: fe_reprojection); the nested ones leave v_g e_j demeaned. Built factored (the
// cells' sums t1, the rank-kl correction pf and F1 = [X_g'e_j; Dt_g'e_j]) and expanded to the dense
// K when that costs fewer multiply-adds per replication (or as `form` forces: 1 dense, 2 factored).
WreProblem wre_problem(const IvSpace& s, const Rows& rows, const std::vector<ClusterTerm>& terms, const Grouping& boot,
                       const FeReprojection& fe, std::size_t n, int form) {
  WreProblem pr;
  pr.n_clu = boot.n_levels;
  pr.L = s.L;
  pr.C = rows.C;
  const std::int64_t G = pr.n_clu, L = s.L, C = rows.C, J = s.J;
  const Eigen::Index kx = s.X.cols(), Ld = fe.L, kl = kx + Ld;
  pr.kl = static_cast<int>(kl);
  // the cells (c, g) of every term (term_cells), one CSR over the error clusters of all terms:
  // term t's cells follow the earlier terms' (cell_off), its rows theirs (rows.off)
  std::vector<Term> cells_of;
  std::vector<std::size_t> cell_off{0};
  pr.row_ptr.assign(1, 0);
  for (const ClusterTerm& ct : terms) {
    cells_of.push_back(term_cells(ct, boot, n));
    const Term& tc = cells_of.back();
    for (std::int32_t c = 0; c < tc.n_clu; ++c) pr.row_ptr.push_back(static_cast<std::int32_t>(cell_off.back()) + tc.row_ptr[c + 1]);
    pr.cell_g.insert(pr.cell_g.end(), tc.pair_g.begin(), tc.pair_g.end());
    cell_off.push_back(cell_off.back() + tc.pair_g.size());
  }
  const std::size_t n_cells = cell_off.back();
  // per cell and basis vector: t1; per bootstrap cluster: A_j and F1_j; per error cluster: pf
  pr.t1.assign(static_cast<std::size_t>(J) * n_cells * static_cast<std::size_t>(L), 0.0);
  Mat A = Mat::Zero(J * L, G), F1 = Mat::Zero(J * kl, G);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t g = boot.code[i];
    const auto ii = static_cast<Eigen::Index>(i);
    for (Eigen::Index j = 0; j < J; ++j) {
      const double ei = s.E(ii, j);
      for (Eigen::Index l = 0; l < L; ++l) {
        const double v = s.Zt(ii, l) * ei;
        A(j * L + l, g) += v;
        for (std::size_t t = 0; t < rows.code.size(); ++t)
          pr.t1[(static_cast<std::size_t>(j) * n_cells + cell_off[t] + static_cast<std::size_t>(cells_of[t].pair_of[i])) * L + l] += v;
      }
      for (Eigen::Index k = 0; k < kx; ++k) F1(j * kl + k, g) += s.X(ii, k) * ei;
      for (Eigen::Index k = 0; k < Ld; ++k) F1(j * kl + kx + k, g) += fe.Dt(ii, k) * ei;
    }
  }
  Mat pf = Mat::Zero(C * L, kl);  // row c L + l: ((Zt_c'X_c)(X'X)^-1 | (Zt_c'Dt_c) Gi)
  {
    Mat zx = Mat::Zero(C * L, kx), zd = Mat::Zero(C * L, Ld);
    for (std::size_t t = 0; t < rows.code.size(); ++t)
      for (std::size_t i = 0; i < n; ++i) {
        const std::int64_t c = rows.off[t] + rows.code[t][i];
        const auto ii = static_cast<Eigen::Index>(i);
        for (Eigen::Index l = 0; l < L; ++l) {
          const double z = s.Zt(ii, l);
          for (Eigen::Index k = 0; k < kx; ++k) zx(c * L + l, k) += z * s.X(ii, k);
          for (Eigen::Index k = 0; k < Ld; ++k) zd(c * L + l, k) += z * fe.Dt(ii, k);
        }
      }
    if (kx) pf.leftCols(kx) = zx * s.XtXi;
    if (Ld) pf.rightCols(Ld) = zd * fe.Gi;
  }
  pr.pf = flat(pf);
  pr.dense = form == 1 || (form == 0 && wre_product_work(pr, true) <= wre_product_work(pr, false));
  if (!pr.dense) {
    pr.k = flat(A);
    pr.f1 = flat(F1);
    return pr;
  }
  // dense: K = the cells' sums - pf F1, and the A rows
  pr.k.assign(static_cast<std::size_t>(pr.rows() * G), 0.0);
  auto at = [&](std::int64_t j, std::int64_t c1, std::int64_t l, std::int64_t g) -> double& {
    return pr.k[static_cast<std::size_t>(kernels::wre_row(s.L, C, static_cast<int>(j), c1, static_cast<int>(l)) * G + g)];
  };
  for (std::int64_t j = 0; j < J; ++j)
    for (std::int64_t l = 0; l < L; ++l)
      for (std::int64_t g = 0; g < G; ++g) at(j, 0, l, g) = A(j * L + l, g);
  for (std::int64_t j = 0; j < J; ++j) {
    const Mat low = kl ? Mat(pf * F1.middleRows(j * kl, kl)) : Mat::Zero(C * L, G);
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t l = 0; l < L; ++l) {
        for (std::int32_t e = pr.row_ptr[c]; e < pr.row_ptr[c + 1]; ++e)
          at(j, 1 + c, l, pr.cell_g[e]) += pr.t1[(static_cast<std::size_t>(j) * n_cells + e) * L + l];
        for (std::int64_t g = 0; g < G; ++g) at(j, 1 + c, l, g) -= low(c * L + l, g);
      }
  }
  pr.t1.clear();
  pr.pf.clear();
  pr.row_ptr.clear();
  pr.cell_g.clear();
  return pr;
}

// The products at v = 1 (the sample itself), in either form.
Vec sample_products(const WreProblem& pr) {
  const std::int64_t G = pr.n_clu;
  if (pr.dense) return Eigen::Map<const Mat>(pr.k.data(), G, pr.rows()).colwise().sum().transpose();
  const int L = pr.L, J = pr.J(), kl = pr.kl;
  const std::int64_t C = pr.C, cells = pr.n_cells();
  Vec P = Vec::Zero(pr.rows());
  const Vec A = Eigen::Map<const Mat>(pr.k.data(), G, J * L).colwise().sum().transpose();
  const Vec R1 = kl ? Vec(Eigen::Map<const Mat>(pr.f1.data(), G, J * kl).colwise().sum().transpose()) : Vec();
  for (int j = 0; j < J; ++j)
    for (int l = 0; l < L; ++l) {
      P(kernels::wre_row(L, C, j, 0, l)) = A(j * L + l);
      for (std::int64_t c = 0; c < C; ++c) {
        double acc = 0, low = 0;
        for (std::int32_t e = pr.row_ptr[c]; e < pr.row_ptr[c + 1]; ++e)
          acc += pr.t1[static_cast<std::size_t>((j * cells + e) * L + l)];
        for (int k = 0; k < kl; ++k) low += pr.pf[static_cast<std::size_t>((c * L + l) * kl + k)] * R1(j * kl + k);
        P(kernels::wre_row(L, C, j, 1 + c, l)) = acc - low;
      }
    }
  return P;
}

// What every evaluation of one model shares.
struct WreModel {
  IvSpace s;
  Rows rows;
  double ar_scale = 1;       // the AR regression's small-sample factor over the structural one's
  WreProblem problem;
  std::vector<double> ones_moments;  // the sample's own moments (v = 1)
};


// The efficient first stage at the null b0: u1~ = r1 - b0 r2 (the restricted structural
// residuals, X and the FE partialled), r2 regressed on [Zt, u1~]; its coefficients on Zt (p~).
// U2~ = r2 - Zt p~ keeps the u1~ term, so U2~ keeps its correlation with u1~.
Vec efficient_first_stage(const IvSpace& s, double b0) {
  const Vec c1 = restricted_residual_coefficients(s, b0), cr2 = r2_coefficients(s);
  const int L = s.L;
  Mat A(L + 1, L + 1);  // [Zt u1~]'[Zt u1~] from the basis Gram
  Vec rhs(L + 1);
  const Mat Gz = s.Gb.bottomRows(L);  // Zt'E
  A.topLeftCorner(L, L) = s.ZZ;
  A.topRightCorner(L, 1) = Gz * c1;
  A.bottomLeftCorner(1, L) = (Gz * c1).transpose();
  A(L, L) = c1.dot(s.Gb * c1);
  rhs.head(L) = Gz * cr2;
  rhs(L) = c1.dot(s.Gb * cr2);
  // u1~ = 0 (an exact fit): the efficient first stage is the plain one
  if (!(A(L, L) > 1e-14 * std::max(s.Gb(0, 0), 1e-300))) return s.pihat;
  return Vec(A.ldlt().solve(rhs)).head(L);
}

// The WRE evaluation at the null b0; WUE is the same evaluation at b0 = b_hat (the unrestricted
// residuals and the first stage run with them).
WreEval wre_eval(const WreModel& m, double b0) {
  const Vec pt = efficient_first_stage(m.s, b0);
  WreEval e;
  e.L = m.s.L;
  e.b0 = b0;
  e.ptilde = flat(pt);
  e.zzp = flat(Vec(m.s.ZZ * pt));
  e.Q = flat(m.s.Q);
  return e;
}

// The AR evaluation at b0 (or its limit |b0| -> infinity).
WreEval ar_eval(const WreModel& m, double b0, bool at_infinity = false) {
  WreEval e;
  e.ar = true;
  e.at_infinity = at_infinity;
  e.L = m.s.L;
  e.b0 = b0;
  e.ar_scale = m.ar_scale;
  return e;
}

// The sample's own statistic under an evaluation (v = 1).
double observed(const WreModel& m, const WreEval& e) {
  return kernels::wre_statistic(m.ones_moments.data(), e.view());
}

// --- stages -------------------------------------------------------------------------------

void check_wre_options(const Design& d, const WildOptions& wo) {
  if (d.n_endo != 1)
    throw InvalidInput("wild: formula '" + d.formula + "' has " + std::to_string(d.n_endo) +
                       " endogenous regressors; the WRE bootstrap supports one (as boottest)");
  if (d.n_inst > static_cast<std::size_t>(kernels::kMaxWreInstruments))
    throw InvalidInput("wild: formula '" + d.formula + "' has " + std::to_string(d.n_inst) +
                       " excluded instruments; the IV wild bootstrap supports at most " +
                       std::to_string(kernels::kMaxWreInstruments));
  if (wo.joint) throw InvalidInput("--joint is not available for an IV model: the WRE bootstrap tests one restriction on the endogenous coefficient");
  if (wo.keep_draws) throw InvalidInput("--save-draws is not available for an IV model (WRE) in this version");
}

// The AR statistic's cluster-robust variance of the L instruments' coefficients has rank at most
// G - 1 (G: the fewest clusters of a variance term): it needs L < G.
void refuse_ar_without_enough_clusters(const std::vector<ClusterTerm>& terms, std::size_t L) {
  std::int32_t g_min = 0;
  for (const ClusterTerm& t : terms)
    if (t.weight > 0 && (g_min == 0 || t.grouping->n_levels < g_min)) g_min = t.grouping->n_levels;
  if (g_min > 0 && static_cast<std::size_t>(g_min) <= L)
    throw InvalidInput("--ar: the Anderson-Rubin test of " + std::to_string(L) +
                       " instruments needs more clusters than instruments (its cluster-robust variance has rank at "
                       "most G - 1 = " + std::to_string(g_min - 1) + "); use fewer instruments or more clusters");
}

// Whether the replications enumerate (every one of the 2^G sign vectors: the WRE statistic is
// not symmetric in the signs, so the OLS halving does not apply), and the limit on G.
bool plan_wre_enumeration(const WildOptions& wo, const WreProblem& pr, WildResult& res) {
  const std::int32_t G = pr.n_clu;
  // auto enumerates only within the limit; beyond it, random draws
  const bool enumerate = enumerates(wo.enumerate, wo.weight, G, wo.n_boot) &&
                         (wo.enumerate == Enumerate::kAlways || G <= kMaxWreEnumerateClusters);
  if (enumerate && G > kMaxWreEnumerateClusters) {
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    const double pairs = std::ldexp(1.0, G - 1);
    const double hours = pairs * (wre_work_per_replication(pr) + wre_work_per_replication(pr) - static_cast<double>(pr.rows()) * G) /
                         (kAssumedRate * threads) / 3600.0;
    throw InvalidInput("--enumerate always: the WRE enumeration evaluates each of the 2^" + std::to_string(G) +
                       " sign vectors in full (a ratio of quadratic forms, with no O(G) Gray-code update as for OLS), "
                       "so it is limited to " + std::to_string(kMaxWreEnumerateClusters) + " bootstrap clusters; " +
                       std::to_string(G) + " would take about " + fmt("%.3g", hours) + " hours on " +
                       std::to_string(threads) + (threads == 1 ? " thread" : " threads") +
                       " (at 1e9 multiply-adds per second each); use random draws (--enumerate never)");
  }
  if (!enumerate && wo.n_boot < 99) res.notes.push_back("B = " + std::to_string(wo.n_boot) + " is below 99: the p-value is coarse");
  return enumerate;
}

// The bytes the problem holds, in the form it was built in.
double problem_bytes(const WreProblem& pr) {
  const std::size_t doubles = pr.k.size() + pr.f1.size() + pr.t1.size() + pr.pf.size() + pr.pihat.size() +
                              pr.zz.size() + pr.zzq.size() + pr.row_w.size();
  return 8.0 * static_cast<double>(doubles) + 4.0 * static_cast<double>(pr.row_ptr.size() + pr.cell_g.size());
}

// The run's memory, checked first: the problem, each thread's batch (weights, products, the
// factored form's R1, one replication's moments) and, with the sets, every statistic's moments.
void check_wre_memory(const WreProblem& pr, std::uint64_t n_rep, std::uint64_t n_stats, bool keep,
                      std::size_t chunk_option, std::uint64_t max_memory) {
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  const double rows = static_cast<double>(pr.rows()), mom = static_cast<double>(pr.n_moments());
  const double r1 = pr.dense ? 0.0 : static_cast<double>(pr.J()) * pr.kl;
  const double chunk =
      static_cast<double>(std::min<std::uint64_t>(chunk_option ? chunk_option : default_wre_chunk(pr), n_rep));
  const double bytes = problem_bytes(pr) + 8.0 * (threads * (chunk * (rows + pr.n_clu + r1) + mom) +
                                                  (keep ? static_cast<double>(n_stats) * mom : 0.0));
  check_memory(bytes, max_memory,
               "the IV wild bootstrap (" + std::to_string(pr.rows()) + " products per replication over " +
                   std::to_string(pr.n_clu) + " bootstrap clusters" +
                   (keep ? ", " + std::to_string(pr.n_moments()) + " moments kept for each of " +
                               std::to_string(n_stats) + " statistics for the confidence sets)"
                         : ")"),
               keep ? "lower --B (or --chunk), or add --no-ci" : "lower --chunk (0 chooses it) or --threads");
}

// Only hypotheses on the endogenous coefficient alone, written as b = b0.
double null_value(const TestSpec& sp, const FitResult& fr) {
  for (Eigen::Index k = 1; k < sp.R.cols(); ++k)
    if (sp.R(0, k) != 0)
      throw InvalidInput("--test '" + sp.text + "': the IV wild bootstrap tests the endogenous coefficient '" +
                         fr.iv->endogenous[0] + "' alone (e.g. --test '" + fr.iv->endogenous[0] +
                         " = 0'); '" + fr.coefficients[static_cast<std::size_t>(k)].name + "' is exogenous");
  if (sp.R(0, 0) != 1)
    throw InvalidInput("--test '" + sp.text + "': write the IV restriction as '" + fr.iv->endogenous[0] +
                       " = value' (the IV bootstrap tests the endogenous coefficient itself, in its own units)");
  return sp.r(0);
}

struct WreContext {
  const WreModel& m;
  const WildOptions& wo;
  const Backend& backend;
  bool enumerate;
  std::size_t trace_keep;
};

// The run through WildOptions::runner: each range a backend run from its first replication, its
// counts and (kept for a set) its statistics' moments; the whole task's moments counted on the host.
WreRun run_through(const WreContext& cx, const WreEval& e, const WreRunOptions& o, const TaskSpec& task) {
  const WreProblem& pr = cx.m.problem;
  const Segment all = cx.wo.runner->run(task, [&](RepRange r) {
    WreRunOptions ro = o;
    ro.b0 = o.b0 + r.begin;
    ro.n_rep = r.size();
    ro.trace_keep = 0;
    const WreRun part = cx.backend.wre_replicates(pr, e, ro);
    Segment seg{r, counts_of(part.counts), {}};
    if (o.keep) seg.values = part.reps->moments();
    return seg;
  }, o.progress);
  WreRun run;
  run.counts = counts_from(all.counts);
  // a shard's share cannot make the set: no replicates, so none is inverted
  if (o.keep && cx.wo.runner->complete()) run.reps = cpu::host_wre_replicates(all.values, pr.n_moments(), o.min_team_work);
  return run;
}

// One backend run of the evaluation `e`, counted at `t` (the task `key` under a runner).
WreRun run_evaluation(const WreContext& cx, const WreEval& e, double t, bool keep, const std::string& label,
                      const std::string& key) {
  const WildOptions& wo = cx.wo;
  const WreProblem& pr = cx.m.problem;
  WreRunOptions o;
  o.seed = wo.seed;
  o.weight = wo.weight;
  o.enumerate = cx.enumerate;
  o.n_rep = cx.enumerate ? (std::uint64_t{1} << (pr.n_clu - 1)) : static_cast<std::uint64_t>(wo.n_boot);
  o.chunk = wo.chunk;
  o.trace_keep = cx.trace_keep;
  o.count_t = t;
  o.count_tol = tie_tolerance(t);
  o.inclusive = wo.ties == Ties::kInclusive;
  o.keep = keep;
  o.min_team_work = wo.min_team_work;
  check_wre_memory(pr, o.n_rep, o.n_rep * (cx.enumerate ? 2 : 1), keep, wo.chunk, wo.max_memory);
  // the task: its counts and, kept for a set, each statistic's moments (two per enumerated pair)
  const std::size_t width = keep ? (cx.enumerate ? 2 : 1) * static_cast<std::size_t>(pr.n_moments()) : 0;
  const TaskSpec task{key, o.n_rep, 1, kBootCountFields, width};
  ProgressReporter progress(label, cx.enumerate ? "sign-vector pairs" : "replications",
                            planned_replications(wo.runner, task), wo.progress);
  o.progress = &progress;
  WreRun run = wo.runner ? run_through(cx, e, o, task) : cx.backend.wre_replicates(pr, e, o);
  progress.finish();
  return run;
}

void fill_counts(const WreContext& cx, const BootCounts& c, bool upper_only, WildTest& out) {
  out.enumerated = cx.enumerate;
  out.n_boot = cx.enumerate ? (std::int64_t{1} << cx.m.problem.n_clu) : cx.wo.n_boot;
  out.work_per_replication = wre_work_per_replication(cx.m.problem);
  out.n_finite = c.finite;
  out.n_exceed = exceedances(c, cx.wo.pvalue, upper_only);
  out.p_value = p_from_counts(c, cx.wo.pvalue, upper_only);
}

// The WRE (or WUE) row of one test, with its confidence set by inversion: each trial value b
// re-evaluates every replication with the efficient first stage at b (the products are kept).
WildTest wre_row(const WreContext& cx, const TestSpec& sp, std::size_t test_index, double b0, const FitResult& fr,
                 std::vector<double>* trace) {
  const WreModel& m = cx.m;
  const WildOptions& wo = cx.wo;
  WildTest out;
  out.hypothesis = sp.text;
  out.test = wo.impose_null ? "wre" : "wue";
  out.q = 1;
  const Mat RVR = sp.R * fr.vcov * sp.R.transpose();
  refuse_zero_variance(sp.text, sp.R, fr, RVR);
  auto t_at = [&](double b) { return (m.s.b_hat - b) / m.s.se; };
  out.stat = t_at(b0);
  out.crve_p_value = t_two_sided_p(out.stat, fr.df_inference);
  const bool want_ci = wo.ci;
  auto eval_at = [&](double b) { return wo.impose_null ? wre_eval(m, b) : wre_eval(m, m.s.b_hat); };
  WreRun run = run_evaluation(cx, eval_at(b0), out.stat, want_ci,
                              std::string(wo.impose_null ? "WRE" : "WUE") + " bootstrap of '" + sp.text + "'",
                              "test " + std::to_string(test_index + 1) + ": " + sp.text + " (" + out.test + ")");
  if (trace) *trace = run.trace;
  fill_counts(cx, run.counts, false, out);
  if (want_ci && run.reps) {
    const bool inclusive = wo.ties == Ties::kInclusive;
    const WreEval fixed = eval_at(m.s.b_hat);
    const auto p_at = [&](double b) {
      const double t = t_at(b);
      return p_from_counts(run.reps->count(wo.impose_null ? eval_at(b) : fixed, t, tie_tolerance(t), inclusive),
                           wo.pvalue, false);
    };
    invert_set(p_at, m.s.b_hat, m.s.se, t_quantile(1 - (1 - wo.level) / 2, fr.df_inference), 1.0 - wo.level, out);
  }
  return out;
}

// The AR confidence set {b : p_AR(b) > alpha} over the whole line: a grid uniform in theta,
// b = b_hat + se tan(theta), whose ends theta = +-pi/2 are |b| = infinity (where the AR statistic
// has the limit p_inf: u1~ proportional to r2), each boundary bisected to 1e-5 se. A piece that
// reaches an end is unbounded (its end infinite).
void invert_ar_set(const std::function<double(double)>& p_at, double p_inf, double center, double se, double alpha,
                   WildTest& out) {
  const double pi = 3.14159265358979323846, tol = 1e-5 * se;
  auto b_of = [&](double th) { return center + se * std::tan(th); };
  auto p_theta = [&](double th) { return std::fabs(th) >= pi / 2 ? p_inf : p_at(b_of(th)); };
  auto accepted = [&](double th) { return p_theta(th) > alpha; };
  // a grid in theta = atan((b - center) / se), then 8 points inside every interval with an end
  // whose p is within kNearAlpha of alpha: the bootstrap p is a step function of b, and a short
  // dip below alpha (or rise above it) between two grid points sits where p is near alpha
  constexpr double kNearAlpha = 0.02;
  const int n_grid = 120, n_fine = 8;
  std::vector<double> coarse_th(n_grid + 1), coarse_p(n_grid + 1);
  for (int i = 0; i <= n_grid; ++i) {
    coarse_th[i] = -pi / 2 + pi * i / n_grid;
    coarse_p[i] = p_theta(coarse_th[i]);
  }
  std::vector<double> th;
  std::vector<char> acc;
  for (int i = 0; i <= n_grid; ++i) {
    th.push_back(coarse_th[i]);
    acc.push_back(coarse_p[i] > alpha);
    if (i == n_grid || std::min(std::fabs(coarse_p[i] - alpha), std::fabs(coarse_p[i + 1] - alpha)) > kNearAlpha) continue;
    for (int k = 1; k < n_fine; ++k) {
      const double t = coarse_th[i] + (coarse_th[i + 1] - coarse_th[i]) * k / n_fine;
      th.push_back(t);
      acc.push_back(accepted(t));
    }
  }
  const int n_points = static_cast<int>(th.size()) - 1;
  std::vector<std::pair<double, double>> pieces;
  const double inf = std::numeric_limits<double>::infinity();
  bool in = acc[0];
  double start = -inf;
  for (int i = 1; i <= n_points; ++i) {
    if (acc[i] == in) continue;
    double lo = th[i - 1], hi = th[i];
    for (int it = 0; it < 200 && std::fabs(b_of(std::min(hi, pi / 2 - 1e-15)) - b_of(std::max(lo, -pi / 2 + 1e-15))) > tol; ++it) {
      const double mid = 0.5 * (lo + hi);
      if (mid <= lo || mid >= hi) break;
      (accepted(mid) == static_cast<bool>(in) ? lo : hi) = mid;
    }
    const double edge = b_of(0.5 * (lo + hi));
    if (in) pieces.emplace_back(start, edge);
    else start = edge;
    in = acc[i];
  }
  if (in) pieces.emplace_back(start, inf);
  out.ci_pieces = pieces;
  out.ci_tol = tol;
  out.ci_available = !pieces.empty();
  if (pieces.empty()) {
    out.note = "the Anderson-Rubin confidence set is empty at this level (the model is rejected at every value)";
    return;
  }
  out.ci_low = pieces.front().first;
  out.ci_high = pieces.back().second;
  const bool unbounded = std::isinf(out.ci_low) || std::isinf(out.ci_high);
  out.ci_bounded = !unbounded;
  if (unbounded && pieces.size() == 1 && std::isinf(out.ci_low) && std::isinf(out.ci_high))
    out.note = "the Anderson-Rubin confidence set is the whole line: the instruments do not identify the coefficient";
  else if (unbounded)
    out.note = "the Anderson-Rubin confidence set is unbounded (" + std::to_string(pieces.size()) +
               (pieces.size() == 1 ? " piece" : " disjoint pieces") + "): weak instruments";
  else if (pieces.size() > 1)
    out.note = "the Anderson-Rubin confidence set is made of " + std::to_string(pieces.size()) + " disjoint pieces";
}

// The AR row of one test: the AR F of the instruments in the regression of y1 - y2 b0 on Z, X
// (and the FE), its wild restricted bootstrap, and its set by inversion.
WildTest ar_row(const WreContext& cx, const TestSpec& sp, std::size_t test_index, double b0, const FitResult& fr,
                std::vector<double>* trace) {
  const WreModel& m = cx.m;
  const WildOptions& wo = cx.wo;
  WildTest out;
  out.hypothesis = sp.text;
  out.test = "ar";
  out.q = m.s.L;
  const WreEval e = ar_eval(m, b0);
  out.stat = observed(m, e);
  out.crve_p_value = f_upper_p(out.stat, m.s.L, fr.df_inference);
  WreRun run = run_evaluation(cx, e, out.stat, wo.ci, "wild bootstrap Anderson-Rubin test of '" + sp.text + "'",
                              "test " + std::to_string(test_index + 1) + ": " + sp.text + " (ar)");
  if (trace) *trace = run.trace;
  fill_counts(cx, run.counts, true, out);
  if (wo.ci && run.reps) {
    const bool inclusive = wo.ties == Ties::kInclusive;
    auto p_of = [&](const WreEval& ev) {
      const double f = observed(m, ev);
      return p_from_counts(run.reps->count(ev, f, tie_tolerance(f), inclusive), wo.pvalue, true);
    };
    const double p_inf = p_of(ar_eval(m, 0.0, true));
    invert_ar_set([&](double b) { return p_of(ar_eval(m, b)); }, p_inf, m.s.b_hat, m.s.se, 1.0 - wo.level, out);
  }
  return out;
}

// The model's pieces: partialled columns, variance rows and weights, products and the constants
// of the moments.
WreModel wre_model(const Design& d, const FitOptions& fo, const FitResult& fr, const Grouping& boot,
                   const std::vector<ClusterTerm>& terms, const FeReprojection& fe, std::uint64_t max_memory,
                   int form) {
  WreModel m{iv_space(d, fr), variance_rows(terms), 1.0, {}, {}};
  // the AR regression has L instruments where the structural one has the endogenous regressor:
  // its factor (N-1)/(N-K) or N/(N-K) differs from the structural one's by this ratio on every term
  const double N = static_cast<double>(d.n_obs), K_ar = fr.dof_k - 1 + m.s.L;
  if (fo.small) m.ar_scale = (N - fr.dof_k) / (N - K_ar);
  // the factored pieces (cells at most N per variance term), which bound the dense K whenever it
  // is chosen (it is chosen only when it takes fewer multiply-adds, one per stored value)
  const double J = m.s.J, L = m.s.L, G = boot.n_levels, C = static_cast<double>(m.rows.C);
  const double kl = static_cast<double>(m.s.X.cols() + fe.L);
  const double cells = std::min(static_cast<double>(d.n_obs) * static_cast<double>(terms.size()), C * G);
  double bytes = 8.0 * (J * L * cells + C * L * kl + J * L * G + J * kl * G) + 12.0 * cells +
                 4.0 * static_cast<double>(d.n_obs) * static_cast<double>(terms.size());
  if (form == 1) bytes += 8.0 * static_cast<double>(kernels::wre_rows(m.s.L, m.rows.C)) * G;
  check_memory(bytes, max_memory, "the IV wild bootstrap's products (" + std::to_string(m.rows.C) + " error clusters by " +
                             std::to_string(boot.n_levels) + " bootstrap clusters)",
               "bootstrap and cluster by coarser groups");
  WreProblem& pr = m.problem;
  pr = wre_problem(m.s, m.rows, terms, boot, fe, d.n_obs, form);
  pr.pihat = flat(m.s.pihat);
  for (const Mat& zz : cluster_zz(m.s, m.rows, d.n_obs)) {
    const std::vector<double> a = flat(zz), b = flat(Mat(zz * m.s.Q));
    pr.zz.insert(pr.zz.end(), a.begin(), a.end());
    pr.zzq.insert(pr.zzq.end(), b.begin(), b.end());
  }
  pr.row_w = row_weights(terms);
  const Vec ones = sample_products(pr);
  m.ones_moments.assign(static_cast<std::size_t>(pr.n_moments()), 0.0);
  kernels::wre_moments(ones.data(), 1, 1.0, pr.view(), m.ones_moments.data());
  return m;
}

// The recommendation of item 4: weak instruments by the effective F.
void recommend_pvalue(const FitResult& fr, const WildOptions& wo, WildResult& res) {
  const IvDiagnostics& dg = fr.iv->diagnostics;
  if (!(dg.effective_f < dg.effective_f_crit)) return;
  res.pvalue_recommended = "equal-tailed";
  if (wo.pvalue == PValueType::kEqualTailed) return;
  res.notes.push_back("the effective F (" + fmt("%.3g", dg.effective_f) + ") is below its critical value (" +
                      fmt("%.3g", dg.effective_f_crit) +
                      "): weak instruments; Davidson and MacKinnon (2010) find the equal-tailed WRE p-value more "
                      "reliable then: rerun with --pvalue equal-tailed (and --ar, robust to weak instruments)");
}

}  // namespace

WildResult wre_bootstrap(Design& d, const FitOptions& fo, const WildOptions& wo, const Backend& backend,
                         WildTrace* trace) {
  check_wre_options(d, wo);
  const Grouping boot = bootstrap_clusters(d, wo);
  WildResult res = fit_for_wild(d, fo, wo, boot, backend);
  res.method = wo.impose_null ? "WRE" : "WUE";
  const FitResult& fr = res.fit;
  Grouping obs;
  const std::vector<ClusterTerm> terms = variance_terms(d, fo, fr, boot, obs);
  const FeReprojection fe = fe_reprojection(d, boot);
  res.fe_reprojected = fe.names;
  const std::vector<TestSpec> specs = parse_tests(wo, fr);
  std::vector<double> b0s;  // every --test checked before any work
  for (const TestSpec& sp : specs) b0s.push_back(null_value(sp, fr));
  if (wo.ar) refuse_ar_without_enough_clusters(terms, d.n_inst);
  const WreModel m = wre_model(d, fo, fr, boot, terms, fe, wo.max_memory, wo.wre_form);
  const bool enumerate = plan_wre_enumeration(wo, m.problem, res);
  const WreContext cx{m, wo, backend, enumerate, trace ? trace->keep : 0};
  if (trace) trace->stats.assign(specs.size() * (wo.ar ? 2 : 1), {});
  std::size_t row = 0;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const TestSpec& sp = specs[i];
    const double b0 = b0s[i];
    res.tests.push_back(wre_row(cx, sp, i, b0, fr, trace ? &trace->stats[row++] : nullptr));
    if (wo.ar) res.tests.push_back(ar_row(cx, sp, i, b0, fr, trace ? &trace->stats[row++] : nullptr));
  }
  recommend_pvalue(fr, wo, res);
  if (enumerate)
    res.notes.push_back("exact enumeration of all 2^" + std::to_string(boot.n_levels) +
                        " Rademacher sign vectors (the WRE statistic is not symmetric in the signs: none is halved)");
  adjust_and_note(wo, false, boot.n_levels, res);
  return res;
}

}  // namespace wild_detail
}  // namespace panelboot
