// The first stages and the weak-instrument diagnostics of a 2SLS fit, as ivreg2/ivreghdfe
// report them (docs/IV.md: every formula, factor and degree of freedom). Everything works on
// the demeaned, sqrt(w)-scaled columns with the exogenous regressors X partialled out
// (Frisch-Waugh-Lovell): Zt = M_X Z, Yt = M_X Y2, and the structural residuals u.
#include <algorithm>
#include <cmath>
#include <limits>

#include "estimate/iv_detail.hpp"
#include "estimate/stock_yogo.hpp"
#include "panelboot/distributions.hpp"
#include "panelboot/error.hpp"

namespace panelboot::detail {

using Mat = Eigen::MatrixXd;
using Vec = Eigen::VectorXd;

Mat partial_out(const Mat& A, const Mat& X) {
  if (X.cols() == 0) return A;
  return A - X * solve_spd(X.transpose() * X, X.transpose() * A);
}

Partialled partialled(const IvProblem& prob) {
  const auto L = static_cast<Eigen::Index>(prob.c.inst.size()), p = static_cast<Eigen::Index>(prob.c.endo.size());
  const Mat X = prob.W.rightCols(prob.W.cols() - L);
  Partialled pt;
  pt.Z = partial_out(prob.W.leftCols(L), X);
  pt.Y = partial_out(prob.R.leftCols(p), X);
  pt.ZZinv = solve_spd(pt.Z.transpose() * pt.Z, Mat::Identity(L, L));
  pt.Pi = prob.Pi.topRows(L);
  pt.V = pt.Y - pt.Z * pt.Pi;
  pt.N = static_cast<double>(prob.d.n_obs);
  const double fe_k = prob.dof.K - static_cast<double>(prob.c.endo.size() + prob.c.exo.size());
  const double fe_k_all = prob.dof.K_all - static_cast<double>(prob.c.endo.size() + prob.c.exo.size());
  pt.K_first = static_cast<double>(prob.W.cols()) + fe_k;
  pt.K_first_all = static_cast<double>(prob.W.cols()) + fe_k_all;
  return pt;
}

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The options of the first stages: always the small-sample form (ivreg2 reports the first-stage
// and Sanderson-Windmeijer F with it whether or not 'small' is given).
FitOptions small_sample(const FitOptions& o) {
  FitOptions s = o;
  s.small = true;
  return s;
}

// Scores kron(e_i, m_i): column j*m + a is m_ia e_ij (vec order of an m x r coefficient matrix).
Mat kron_scores(const Mat& M, const Mat& E) {
  Mat S(M.rows(), M.cols() * E.cols());
  for (Eigen::Index j = 0; j < E.cols(); ++j)
    for (Eigen::Index a = 0; a < M.cols(); ++a) S.col(j * M.cols() + a) = M.col(a).cwiseProduct(E.col(j));
  return S;
}

// sum of s_i s_i' for the scores s_i = kron(e_i, m_i) (M: N x m, E: N x r) over the model's
// variance structure: per observation (hc1), the signed cluster terms (one- or multiway), or
// Driscoll-Kraay's time sums. `small`: with the model's small-sample factor for K (as its vcov);
// else the raw sum M(S) that ranktest, the GMM weight and weakivtest use. (compute_vcov with M as
// the regressors, e as the residuals and an identity bread is exactly that sum; several columns
// of E are formed into their scores first.) Not for iid.
Mat meat(const IvProblem& prob, const Mat& M, const Mat& E, bool small, double K = 0, double K_all = 0) {
  FitOptions o = prob.opts;
  o.small = small;
  o.psd_fix = false;  // the diagnostics' sums as ivreg2 forms them, never clipped
  const Mat S = E.cols() == 1 ? Mat() : kron_scores(M, E);
  const Mat& X = E.cols() == 1 ? M : S;
  const Vec u = E.cols() == 1 ? Vec(E.col(0)) : Vec::Ones(M.rows());
  const Mat I = Mat::Identity(X.cols(), X.cols());
  const VcovInput in{prob.d, X.data(), u.data(), prob.d.n_obs, static_cast<std::size_t>(X.cols()), I,
                     static_cast<double>(prob.d.n_obs), K, K_all, o};
  return compute_vcov(in).V;
}

Mat kron(const Mat& A, const Mat& B) {
  Mat out(A.rows() * B.rows(), A.cols() * B.cols());
  for (Eigen::Index i = 0; i < A.rows(); ++i)
    for (Eigen::Index j = 0; j < A.cols(); ++j) out.block(i * B.rows(), j * B.cols(), B.rows(), B.cols()) = A(i, j) * B;
  return out;
}

bool is_iid(const IvProblem& prob) { return prob.opts.vcov == VcovType::kIid; }
bool is_cluster(const IvProblem& prob) { return prob.opts.vcov == VcovType::kCluster; }

// The fewest clusters of any cluster variable (ivreg2's G with two-way clustering).
double min_clusters(const IvProblem& prob) {
  double g = 0;
  for (const Grouping& c : prob.d.clusters) g = g == 0 ? c.n_levels : std::min(g, static_cast<double>(c.n_levels));
  return g;
}

// The small-sample variance of the coefficients of Zt in regressions with residuals E (N x r):
// iid (e'e/(N-K_all)) kron (Zt'Zt)^-1, else the sandwich with the model's small-sample factor for
// the first stage's K; for r > 1 the joint variance of the vec.
Mat first_stage_variance(const IvProblem& prob, const Partialled& pt, const Mat& E) {
  const Eigen::Index L = pt.Z.cols(), r = E.cols();
  if (is_iid(prob)) return kron(E.transpose() * E / (pt.N - pt.K_first_all), pt.ZZinv);
  Mat bread = Mat::Zero(L * r, L * r);
  for (Eigen::Index j = 0; j < r; ++j) bread.block(j * L, j * L, L, L) = pt.ZZinv;
  return bread * meat(prob, pt.Z, E, true, pt.K_first, pt.K_first_all) * bread;
}

// b' V^-1 b, measured against V_ref, the homoskedastic variance of b: NaN when V is
// (numerically) singular or negligible next to it in some direction - a cluster-robust variance
// with no more clusters than coefficients has rank at most G - 1, and a first stage that fits
// (almost) exactly has none; ivreg2 reports such a statistic missing.
double wald(const Vec& b, const Mat& V, const Mat& V_ref) {
  const Eigen::LLT<Mat> ref(0.5 * (V_ref + V_ref.transpose()));
  if (ref.info() != Eigen::Success) return kNaN;
  const Mat C = ref.matrixL();
  const Mat Ci = C.triangularView<Eigen::Lower>().solve(Mat::Identity(C.rows(), C.cols()));
  const Mat Vw = Ci * V * Ci.transpose();
  Eigen::SelfAdjointEigenSolver<Mat> es(0.5 * (Vw + Vw.transpose()));
  const Vec ev = es.eigenvalues();
  if (!(ev.minCoeff() > 1e-10 * std::max(1.0, ev.maxCoeff()))) return kNaN;
  const Vec c = es.eigenvectors().transpose() * (Ci * b);
  return c.cwiseAbs2().cwiseQuotient(ev).sum();
}

// The homoskedastic variance of Zt's coefficients with residuals e: (e'e/(N - K_first_all)) (Zt'Zt)^-1.
Mat homoskedastic_variance(const Partialled& pt, const Vec& e) {
  return e.squaredNorm() / (pt.N - pt.K_first_all) * pt.ZZinv;
}

// One-way clusters no more than the instruments: the cluster sums of first-stage scores add up
// to Zt'v = 0, so their variance has rank at most G - 1 < L (ivreg2: the statistic is missing).
bool too_few_clusters(const IvProblem& prob, Eigen::Index L) {
  return prob.opts.vcov == VcovType::kCluster && prob.d.clusters.size() == 1 &&
         static_cast<Eigen::Index>(prob.d.clusters[0].n_levels) - 1 < L;
}

// The coefficient table of one first stage, Y2_j on [Z X], in fit()'s small-sample conventions.
FitResult first_stage_fit(const IvProblem& prob, const Partialled& pt, Eigen::Index j) {
  const FitOptions opts = small_sample(prob.opts);
  FitResult fs;
  fs.level = opts.level;
  const Mat WW = prob.W.transpose() * prob.W;
  fs.bread = solve_spd(WW, Mat::Identity(WW.rows(), WW.cols()));
  fs.bread = 0.5 * (fs.bread + fs.bread.transpose());
  fs.beta = prob.Pi.col(j);
  const Vec v = prob.R.col(j) - prob.W * fs.beta;
  fs.rss = v.squaredNorm();
  fs.sigma = std::sqrt(fs.rss / (pt.N - pt.K_first_all));
  const VcovInput in{prob.d, prob.W.data(), v.data(), prob.d.n_obs, static_cast<std::size_t>(prob.W.cols()), fs.bread,
                     pt.N, pt.K_first, pt.K_first_all, opts};
  take_variance(compute_vcov(in), fs);
  std::vector<std::string> names;
  for (std::size_t a : prob.c.inst) names.push_back(prob.d.x_names[a]);
  for (std::size_t a : prob.c.exo) names.push_back(prob.d.x_names[a]);
  coefficient_table(names, opts, fs);
  return fs;
}

// Sanderson-Windmeijer (2016) for endogenous j: delta = 2SLS of Yt_j on the other endogenous
// Yt_{-j} with instruments Zt; e = Yt_j - Yt_{-j} delta (actual, not fitted, Yt_{-j}) regressed
// on Zt; its Wald statistic with the first stage's variance over (L - p + 1), F(L - p + 1, df).
void sanderson_windmeijer(const IvProblem& prob, const Partialled& pt, Eigen::Index j, FirstStage& fs) {
  const Eigen::Index p = pt.Y.cols(), L = pt.Z.cols();
  Mat Yo(pt.Y.rows(), p - 1);
  for (Eigen::Index a = 0, b = 0; a < p; ++a)
    if (a != j) Yo.col(b++) = pt.Y.col(a);
  const Mat PzYo = pt.Z * (pt.ZZinv * (pt.Z.transpose() * Yo));
  const Vec delta = solve_spd(PzYo.transpose() * PzYo, PzYo.transpose() * pt.Y.col(j));
  const Vec e = pt.Y.col(j) - Yo * delta;
  const Vec g = pt.ZZinv * (pt.Z.transpose() * e);
  const Vec r = e - pt.Z * g;
  fs.sw_df1 = static_cast<double>(L - p + 1);
  fs.sw_df2 = fs.f_df2;
  fs.sw_f = too_few_clusters(prob, L) ? kNaN
                                      : wald(g, first_stage_variance(prob, pt, r), homoskedastic_variance(pt, r)) / fs.sw_df1;
  fs.sw_p_value = f_upper_p(fs.sw_f, fs.sw_df1, fs.sw_df2);
}

}  // namespace

std::vector<FirstStage> first_stages(const IvProblem& prob, const Partialled& pt) {
  const Eigen::Index p = pt.Y.cols(), L = pt.Z.cols();
  std::vector<FirstStage> out;
  for (Eigen::Index j = 0; j < p; ++j) {
    const FitResult f = first_stage_fit(prob, pt, j);
    FirstStage fs;
    fs.variable = prob.d.x_names[prob.c.endo[static_cast<std::size_t>(j)]];
    fs.coefficients = f.coefficients;
    fs.f_df1 = static_cast<double>(L);
    fs.f_df2 = f.df_inference;
    fs.f_stat = too_few_clusters(prob, L) ? kNaN
                                          : wald(f.beta.head(L), f.vcov.topLeftCorner(L, L),
                                                 homoskedastic_variance(pt, pt.V.col(j))) / fs.f_df1;
    fs.f_p_value = f_upper_p(fs.f_stat, fs.f_df1, fs.f_df2);
    fs.partial_r2 = (pt.Z * pt.Pi.col(j)).squaredNorm() / pt.Y.col(j).squaredNorm();
    fs.sw_f = fs.sw_df1 = fs.sw_df2 = fs.sw_p_value = kNaN;
    if (p > 1) sanderson_windmeijer(prob, pt, j, fs);
    out.push_back(fs);
  }
  return out;
}

namespace {

Mat sqrtm(const Mat& M) {
  Eigen::SelfAdjointEigenSolver<Mat> es(0.5 * (M + M.transpose()));
  return es.eigenvectors() * es.eigenvalues().cwiseMax(0.0).cwiseSqrt().asDiagonal() * es.eigenvectors().transpose();
}

// The canonical standardisation shared by Anderson, Cragg-Donald and Kleibergen-Paap:
// Qzz = Rz Rz', Qyy = Ry Ry' (lower Cholesky factors of Zt'Zt/N, Yt'Yt/N),
// Theta = Rz' Pi Ry'^-1 (L x p), whose singular values are the canonical correlations.
struct Canonical {
  Mat Rz, Ry, theta;
  Vec rho;  // decreasing
  Mat U, V;
};

Canonical canonical(const Partialled& pt) {
  Canonical c;
  const Eigen::Index p = pt.Y.cols();
  c.Rz = Eigen::LLT<Mat>(pt.Z.transpose() * pt.Z / pt.N).matrixL();
  c.Ry = Eigen::LLT<Mat>(pt.Y.transpose() * pt.Y / pt.N).matrixL();
  const Mat Ry_t_inv = c.Ry.transpose().triangularView<Eigen::Upper>().solve(Mat::Identity(p, p));
  c.theta = c.Rz.transpose() * pt.Pi * Ry_t_inv;
  Eigen::JacobiSVD<Mat> svd(c.theta, Eigen::ComputeFullU | Eigen::ComputeFullV);
  c.rho = svd.singularValues();
  c.U = svd.matrixU();
  c.V = svd.matrixV();
  return c;
}

// Kleibergen and Paap (2006), rank(Pi) = p - 1 against full rank, as ranktest computes it:
// scores kron(v_i, zt_i) (v: the first-stage residuals for the Wald form, Yt itself - the
// residuals under Pi = 0 - for the LM form), S = M(scores) / N without any factor,
// kpvar = T S T' with T = Ry^-1 kron Rz^-1, A = U_2 U_22^-1 (U_22 U_22')^(1/2),
// B = (V_22 V_22')^(1/2) V_22'^-1 V_2', lambda = (B kron A') vec(Theta),
// rk = N lambda' [(B kron A') kpvar (B kron A')']^-1 lambda, chi2(L - p + 1).
double kp_rank_statistic(const IvProblem& prob, const Partialled& pt, const Canonical& c, const Mat& resid) {
  const Eigen::Index L = pt.Z.cols(), p = pt.Y.cols(), q = p - 1;
  const Mat S = meat(prob, pt.Z, resid, false) / pt.N;
  const Mat Ry_inv = c.Ry.triangularView<Eigen::Lower>().solve(Mat::Identity(p, p));
  const Mat Rz_inv = c.Rz.triangularView<Eigen::Lower>().solve(Mat::Identity(L, L));
  const Mat T = kron(Ry_inv, Rz_inv);
  Mat kpvar = T * S * T.transpose();
  kpvar = 0.5 * (kpvar + kpvar.transpose());
  const Mat U2 = c.U.rightCols(L - q), U22 = c.U.bottomRightCorner(L - q, L - q);
  const Mat V2 = c.V.rightCols(p - q), V22 = c.V.bottomRightCorner(p - q, p - q);
  const Mat A = U2 * U22.fullPivLu().solve(sqrtm(U22 * U22.transpose()));
  const Mat B = sqrtm(V22 * V22.transpose()) * V22.transpose().fullPivLu().solve(V2.transpose());
  const Mat BA = kron(B, A.transpose());
  Eigen::Map<const Vec> vec_theta(c.theta.data(), c.theta.size());
  const Vec lambda = BA * vec_theta;
  // in the canonical coordinates a homoskedastic kpvar is (1 - rho^2)-scaled identity: the
  // reference is the identity
  const Mat V_lambda = BA * kpvar * BA.transpose();
  return pt.N * wald(lambda, V_lambda, Mat::Identity(V_lambda.rows(), V_lambda.cols()));
}

// Montiel Olea and Pflueger (2013), one endogenous regressor, as weakivtest computes it: with
// Zt orthonormalised, W = M([v2 o Z, v1 o Z]) / (N - K_first) (v1 first-stage, v2 reduced-form
// residuals; raw sums, no G/(G-1)), F_eff = Pi'Zt'Zt Pi / tr(Zt'Zt Var(Pi)) with that scaling, and
// the critical values of its Patnaik approximation: c(x) = chi2^-1(0.95; K_eff, x K_eff) / K_eff,
// K_eff = tr(W2)^2 (1 + 2x) / (tr(W2 W2) + 2x tr(W2) lmax(W2)); x = 1/tau (simplified) or
// B_TSLS/tau (generalized, the value weakivtest prints), tau = 10%.
struct EffectiveF {
  double f = kNaN, crit = kNaN, k_eff = kNaN, crit_simplified = kNaN, k_eff_simplified = kNaN, b_tsls = kNaN;
  bool psd_clipped = false;
};

Mat psd_part(const Mat& M, bool& clipped) {
  Eigen::SelfAdjointEigenSolver<Mat> es(0.5 * (M + M.transpose()));
  clipped = es.eigenvalues().minCoeff() < -1e-12 * std::max(0.0, es.eigenvalues().maxCoeff());
  if (!clipped) return M;
  return es.eigenvectors() * es.eigenvalues().cwiseMax(0.0).asDiagonal() * es.eigenvectors().transpose();
}

double patnaik_k_eff(const Mat& W2, double x) {
  const double tr = W2.trace(), tr2 = (W2 * W2).trace();
  const double lmax = Eigen::SelfAdjointEigenSolver<Mat>(0.5 * (W2 + W2.transpose())).eigenvalues().maxCoeff();
  return tr * tr * (1 + 2 * x) / (tr2 + 2 * x * tr * lmax);
}

double patnaik_critical_value(double k_eff, double x) {
  return noncentral_chi2_quantile(0.95, k_eff, x * k_eff) / k_eff;
}

// MOP's worst-case Nagar bias of 2SLS relative to the benchmark, at beta.
double tsls_bias(const Mat& W1, const Mat& W12, const Mat& W2, double beta) {
  const Mat S12 = W12 - beta * W2, S1 = W1 - 2 * beta * W12 + beta * beta * W2;
  const double t12 = S12.trace(), t1 = S1.trace(), t2 = W2.trace();
  if (!(t1 > 0) || t12 == 0) return 0.0;
  const double f = t12 / std::sqrt(t2 * t1);
  const Vec ev = Eigen::SelfAdjointEigenSolver<Mat>(0.5 * (S12 + S12.transpose())).eigenvalues();
  return std::max(std::fabs(f * (1 - 2 * ev.minCoeff() / t12)), std::fabs(f * (1 - 2 * ev.maxCoeff() / t12)));
}

// sup over beta of tsls_bias: a grid on [-b*, b*], b* grown until the bias at both ends is
// within 1e-3 of its limit, then golden-section refinement around the best grid point.
double max_tsls_bias(const Mat& W1, const Mat& W12, const Mat& W2) {
  const Vec ev = Eigen::SelfAdjointEigenSolver<Mat>(0.5 * (W2 + W2.transpose())).eigenvalues();
  const double limit = std::max(std::fabs(1 - 2 * ev.minCoeff() / W2.trace()), std::fabs(1 - 2 * ev.maxCoeff() / W2.trace()));
  double bstar = 1.0;
  // the scale of beta: the reduced form over the first stage
  const double scale = std::sqrt(std::max(W1.trace(), 1e-300) / std::max(W2.trace(), 1e-300));
  while (bstar < 1e8 && (std::fabs(tsls_bias(W1, W12, W2, bstar * scale) - limit) > 1e-3 ||
                         std::fabs(tsls_bias(W1, W12, W2, -bstar * scale) - limit) > 1e-3))
    bstar *= 2.0;
  // weakivtest's 10,000 points; 2,000 when each point costs an eigensolve of a large L x L
  const int n = W2.rows() <= 10 ? 10000 : 2000;
  double best = limit, best_b = 0;
  for (int i = 0; i <= n; ++i) {
    const double b = scale * bstar * (2.0 * i / n - 1.0);
    const double v = tsls_bias(W1, W12, W2, b);
    if (v > best) {
      best = v;
      best_b = b;
    }
  }
  const double h = scale * bstar * 2.0 / n;
  double lo = best_b - h, hi = best_b + h;
  const double g = 0.5 * (std::sqrt(5.0) - 1);
  for (int it = 0; it < 100; ++it) {
    const double m1 = hi - g * (hi - lo), m2 = lo + g * (hi - lo);
    if (tsls_bias(W1, W12, W2, m1) > tsls_bias(W1, W12, W2, m2)) hi = m2;
    else lo = m1;
  }
  return std::min(1.0, std::max(best, tsls_bias(W1, W12, W2, 0.5 * (lo + hi))));
}

EffectiveF effective_f(const IvProblem& prob, const Partialled& pt, const Vec& y_partialled) {
  EffectiveF e;
  const Eigen::Index L = pt.Z.cols();
  // the orthonormalised instruments Zo = Zt Rz'^-1 (Zo'Zo / N = I) need not be formed: their
  // scores are Rz^-1 times Zt's, so their sums are T M(Zt's scores) T', T = diag(Rz^-1, Rz^-1)
  const Mat Rz = Eigen::LLT<Mat>(pt.Z.transpose() * pt.Z / pt.N).matrixL();
  const Vec v1 = pt.V.col(0);
  const Vec v2 = y_partialled - pt.Z * (pt.ZZinv * (pt.Z.transpose() * y_partialled));
  Mat W;
  const double d_s = pt.N - pt.K_first;
  if (is_iid(prob)) {
    Mat E(v1.size(), 2);
    E << v2, v1;
    W = kron(E.transpose() * E / d_s, Mat::Identity(L, L));  // Zo'Zo / N = I
  } else {
    Mat E(v1.size(), 2);
    E << v2, v1;
    const Mat Rz_inv = Rz.triangularView<Eigen::Lower>().solve(Mat::Identity(L, L));
    const Mat T = kron(Mat::Identity(2, 2), Rz_inv);
    W = T * meat(prob, pt.Z, E, false) * T.transpose() / d_s;
  }
  // a multiway cluster sum can be indefinite: its negative eigenvalues set to zero (as
  // --vcov-psd-fix does), so that K_eff >= 1 and the bias bound are defined
  W = psd_part(W, e.psd_clipped);
  const Mat W1 = W.topLeftCorner(L, L), W12 = W.topRightCorner(L, L), W2 = W.bottomRightCorner(L, L);
  const Vec pi_o = Rz.transpose() * pt.Pi.col(0);  // the first stage's coefficients on Zo
  // a first-stage variance negligible next to the homoskedastic one (v1'v1/d_s per instrument):
  // no effective F (an exact first stage, or too few clusters)
  if (!(W2.trace() > 1e-10 * static_cast<double>(L) * v1.squaredNorm() / d_s)) return e;
  e.f = pt.N * pi_o.squaredNorm() / W2.trace();
  const double x = 10.0;  // 1 / tau, tau = 10%
  e.k_eff_simplified = patnaik_k_eff(W2, x);
  e.crit_simplified = patnaik_critical_value(e.k_eff_simplified, x);
  e.b_tsls = max_tsls_bias(W1, W12, W2);
  e.k_eff = patnaik_k_eff(W2, x * e.b_tsls);
  e.crit = patnaik_critical_value(e.k_eff, x * e.b_tsls);
  return e;
}

// Hansen's J for 2SLS with a robust or cluster variance, as ivreg2 computes it: the weight
// Omega = M(u o Zt) from the 2SLS residuals (raw sum), the two-step efficient GMM estimate
// b2 = (Yt'Zt Om^-1 Zt'Yt)^-1 Yt'Zt Om^-1 Zt'yt, and J = g' Om^-1 g with g = Zt'(yt - Yt b2).
// Sargan's (iid): u'P_Zt u / (u'u / N). NaN when Omega is singular (fewer clusters than
// instruments), as ivreg2 reports it missing.
double overidentification(const IvProblem& prob, const Partialled& pt, const Vec& y_partialled) {
  const Vec& u = prob.u;
  const Vec zu = pt.Z.transpose() * u;
  if (is_iid(prob)) return zu.dot(pt.ZZinv * zu) / (u.squaredNorm() / pt.N);
  // ivreg2's Omega spans every instrument (the exogenous ones too): with fewer clusters than
  // instruments it is singular and J is missing, even where the partialled Omega is not
  if (is_cluster(prob) && prob.d.clusters.size() == 1 && min_clusters(prob) < static_cast<double>(prob.W.cols()))
    return kNaN;
  const Mat omega = meat(prob, pt.Z, u, false);
  Eigen::SelfAdjointEigenSolver<Mat> es(0.5 * (omega + omega.transpose()));
  if (!(es.eigenvalues().minCoeff() > 1e-12 * es.eigenvalues().maxCoeff())) return kNaN;
  const Mat om_inv = es.eigenvectors() * es.eigenvalues().cwiseInverse().asDiagonal() * es.eigenvectors().transpose();
  const Mat ZY = pt.Z.transpose() * pt.Y;
  const Vec Zy = pt.Z.transpose() * y_partialled;
  const Vec b2 = solve_spd(ZY.transpose() * om_inv * ZY, ZY.transpose() * om_inv * Zy);
  const Vec g = Zy - ZY * b2;
  return g.dot(om_inv * g);
}

}  // namespace

IvDiagnostics iv_diagnostics(const IvProblem& prob, const Partialled& pt) {
  IvDiagnostics dg;
  const Eigen::Index L = pt.Z.cols(), p = pt.Y.cols();
  const double N = pt.N, Ld = static_cast<double>(L);
  const double d_s = N - pt.K_first;  // N - all instruments (incl. absorbed FE levels)
  const Canonical c = canonical(pt);
  const double rho2 = c.rho(p - 1) * c.rho(p - 1);
  dg.kp_rk_lm_df = static_cast<double>(L - p + 1);
  dg.cragg_donald_f = dg.kp_rk_lm = dg.kp_rk_wald = dg.kp_rk_wald_f = kNaN;
  const bool exact = !(1 - rho2 > 1e-12);  // the instruments span the endogenous regressors
  if (!exact) dg.cragg_donald_f = rho2 / (1 - rho2) * d_s / Ld;
  if (!exact && is_iid(prob)) {  // Anderson's LM and the Cragg-Donald F, as ivreg2 reports them
    dg.kp_rk_lm = N * rho2;
    dg.kp_rk_wald = N * rho2 / (1 - rho2);
    dg.kp_rk_wald_f = dg.cragg_donald_f;
  } else if (!exact) {
    dg.kp_rk_lm = kp_rank_statistic(prob, pt, c, pt.Y);
    if (!too_few_clusters(prob, L)) {
      dg.kp_rk_wald = kp_rank_statistic(prob, pt, c, pt.V);
      dg.kp_rk_wald_f = is_cluster(prob)
                            ? dg.kp_rk_wald / (N - 1) * d_s * (min_clusters(prob) - 1) / min_clusters(prob) / Ld
                            : dg.kp_rk_wald * d_s / (N * Ld);
    }
  }
  dg.kp_rk_lm_p = chi2_upper_p(dg.kp_rk_lm, dg.kp_rk_lm_df);
  dg.stock_yogo = stock_yogo_values(static_cast<int>(p), static_cast<int>(L));
  const Mat X = prob.W.rightCols(prob.W.cols() - L);
  const Vec y_partialled = partial_out(prob.y, X);
  dg.effective_f = dg.effective_f_crit = dg.effective_f_k_eff = dg.effective_f_crit_simplified = dg.mop_b_tsls = kNaN;
  if (p == 1) {
    const EffectiveF e = effective_f(prob, pt, y_partialled);
    if (e.psd_clipped)
      dg.warnings.push_back("the multiway cluster variance behind the effective F was not positive semi-definite; "
                            "its negative eigenvalues were set to zero");
    dg.effective_f = e.f;
    dg.effective_f_crit = e.crit;
    dg.effective_f_k_eff = e.k_eff;
    dg.effective_f_crit_simplified = e.crit_simplified;
    dg.mop_b_tsls = e.b_tsls;
  }
  dg.j_name = is_iid(prob) ? "Sargan" : "Hansen J";
  dg.hansen_j_df = static_cast<double>(L - p);
  dg.hansen_j = dg.hansen_j_p = kNaN;
  if (L > p) {
    dg.hansen_j = overidentification(prob, pt, y_partialled);
    dg.hansen_j_p = chi2_upper_p(dg.hansen_j, dg.hansen_j_df);
  }
  return dg;
}

// Why a statistic is missing, in the words of the model's variance.
std::string missing_reason(const IvProblem& prob, std::size_t L) {
  if (too_few_clusters(prob, static_cast<Eigen::Index>(L)))
    return std::to_string(prob.d.clusters[0].n_levels) + " clusters for " + std::to_string(L) +
           " excluded instruments: the cluster-robust variance has rank at most G - 1";
  return "its variance is singular, or negligible next to the homoskedastic one (an exact first stage?)";
}

std::vector<std::string> missing_statistics(const IvProblem& prob, const IvInfo& info) {
  std::vector<std::string> out;
  const std::size_t L = info.instruments.size();
  const std::string why = missing_reason(prob, L);
  const IvDiagnostics& dg = info.diagnostics;
  for (const FirstStage& fs : info.first_stages) {
    if (std::isnan(fs.f_stat)) out.push_back("first-stage F of '" + fs.variable + "' not reported: " + why);
    if (info.endogenous.size() > 1 && std::isnan(fs.sw_f))
      out.push_back("Sanderson-Windmeijer F of '" + fs.variable + "' not reported: " + why);
  }
  if (std::isnan(dg.cragg_donald_f))
    out.push_back("Cragg-Donald F and the Kleibergen-Paap statistics not reported: the instruments span the "
                  "endogenous regressors exactly (2SLS equals OLS)");
  else {
    if (std::isnan(dg.kp_rk_lm)) out.push_back("Kleibergen-Paap rk LM not reported: " + why);
    if (std::isnan(dg.kp_rk_wald_f)) out.push_back("Kleibergen-Paap rk Wald F not reported: " + why);
  }
  if (info.endogenous.size() == 1 && std::isnan(dg.effective_f))
    out.push_back("effective F not reported: " + why);
  if (dg.hansen_j_df > 0 && std::isnan(dg.hansen_j))
    out.push_back(dg.j_name + " statistic not reported: its weight matrix is singular" +
                  (prob.opts.vcov == VcovType::kCluster && prob.d.clusters.size() == 1
                       ? " (" + std::to_string(prob.d.clusters[0].n_levels) + " clusters for " +
                             std::to_string(prob.W.cols()) + " instruments, the exogenous ones included)"
                       : std::string()));
  return out;
}

}  // namespace panelboot::detail
