// The embedded stand-in dataset: reproducible from its generator, calibrated to the paper's
// Table 3 (moments), Table 4 (correlations) and Table 5 column (2) (the baseline slopes).
#include <Eigen/Dense>
#include <algorithm>
#include <cstdio>
#include <map>
#include <fstream>
#include <sstream>

#include "helpers.hpp"
#include "panelboot/data_frame.hpp"

using namespace panelboot;

namespace {
std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
const std::string kFile = std::string(PB_SOURCE_DIR) + "/data/nqpf_synthetic.csv";

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / v.size();
}
double sd(const std::vector<double>& v) {
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / (v.size() - 1));
}
}  // namespace

TEST(EmbeddedData, GeneratorReproducesTheCommittedFileByteForByte) {
  const std::string out = pbtest::temp_path(".csv");
  const std::string cmd = std::string(PB_BINARY_DIR) + "/pb_gen_nqpf > " + out + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_TRUE(slurp(out) == slurp(kFile)) << "regenerate with: build/pb_gen_nqpf > data/nqpf_synthetic.csv";
  std::remove(out.c_str());
}

TEST(EmbeddedData, CompiledInCopyEqualsTheFile) {
  const DataFrame a = embedded_dataset(), b = read_csv(kFile);
  ASSERT_EQ(a.n_rows(), b.n_rows());
  ASSERT_EQ(a.names(), b.names());
  EXPECT_EQ(a.numeric("newqua").to_vector(), b.numeric("newqua").to_vector());
}

TEST(EmbeddedData, ShapeOfTheStudysPanel) {
  const DataFrame df = embedded_dataset();
  EXPECT_EQ(df.n_rows(), 360u);
  EXPECT_EQ(df.column("province").levels.size(), 30u);
  std::map<std::string, int> region, dev;
  int muni = 0;
  for (std::size_t r = 0; r < df.n_rows(); ++r) {
    ++region[df.column("region").text(r)];
    ++dev[df.column("devlevel").text(r)];
    muni += df.numeric("municipality").to_vector()[r] == 1;
    EXPECT_EQ(df.numeric("simulated").to_vector()[r], 1.0);
  }
  EXPECT_EQ(region["East"], 132);
  EXPECT_EQ(region["Central"], 96);
  EXPECT_EQ(region["West"], 132);
  EXPECT_EQ(dev["high"], 233);
  EXPECT_EQ(dev["average"], 127);
  EXPECT_EQ(muni, 48);
  const auto& y = df.numeric("year").to_vector();
  EXPECT_EQ(*std::min_element(y.begin(), y.end()), 2011);
  EXPECT_EQ(*std::max_element(y.begin(), y.end()), 2022);
}

TEST(EmbeddedData, MomentsMatchTable3WithinFivePercent) {
  const DataFrame df = embedded_dataset();
  struct M {
    const char* v;
    double mean, sd;
  } t3[] = {{"rgzn", 11.20761, 10.49283}, {"newqua", 0.28516, 0.13074}, {"urban", 0.6011, 0.12056},
            {"ind", 1.3571, 0.74433},     {"fdi", 0.8757, 4.34608},     {"open", 0.2813, 0.28469},
            {"fin", 0.2590, 0.1115},      {"tec", 10.8320, 1.3876}};
  for (const auto& m : t3) {
    const auto& x = df.numeric(m.v).to_vector();
    EXPECT_NEAR(mean(x), m.mean, 0.05 * m.mean) << m.v;
    EXPECT_NEAR(sd(x), m.sd, 0.05 * m.sd) << m.v;
    EXPECT_GT(*std::min_element(x.begin(), x.end()), 0.0) << m.v;
  }
}

TEST(EmbeddedData, CorrelationsHaveTable4SignsAndRoughSizes) {
  const DataFrame df = embedded_dataset();
  const char* v[8] = {"rgzn", "newqua", "urban", "ind", "fdi", "open", "fin", "tec"};
  // Table 4, lower triangle by rows
  const double t4[8][8] = {{1},
                           {0.830, 1},
                           {0.600, 0.484, 1},
                           {0.269, 0.155, 0.538, 1},
                           {0.018, -0.014, 0.086, 0.269, 1},
                           {0.593, 0.684, 0.654, 0.143, 0.056, 1},
                           {-0.533, -0.629, -0.323, 0.038, 0.016, -0.436, 1},
                           {0.780, 0.756, 0.498, 0.116, -0.03, 0.479, -0.782, 1}};
  for (int a = 1; a < 8; ++a)
    for (int b = 0; b < a; ++b) {
      if (std::fabs(t4[a][b]) < 0.1) continue;  // near zero in the paper: no sign to keep
      const double r = pbtest::correlation(df.numeric(v[a]).to_vector(), df.numeric(v[b]).to_vector());
      EXPECT_EQ(r > 0, t4[a][b] > 0) << v[a] << "-" << v[b] << " r = " << r;
      EXPECT_NEAR(r, t4[a][b], 0.35) << v[a] << "-" << v[b];
    }
}

TEST(EmbeddedData, BaselineRegressionRecoversTable5Column2) {
  const auto j = pbtest::fit_json({"-f", "newqua ~ rgzn + urban + ind + fdi + open + fin | province + year",
                                   "--cluster", "province"});
  const auto& m = j["models"][0];
  const std::pair<const char*, double> truth[] = {{"rgzn", 0.00212}, {"urban", 0.567}, {"ind", -0.00189},
                                                  {"fdi", 0.00108},  {"open", 0.000943}, {"fin", -0.155}};
  for (const auto& [name, b] : truth) {
    const auto& c = pbtest::coef(m, name);
    EXPECT_LT(std::fabs(c["estimate"].get<double>() - b), 3 * c["std_error"].get<double>()) << name;
  }
  EXPECT_NEAR(m["r2_within"].get<double>(), 0.486, 0.05);
}

TEST(EmbeddedData, PrincipalComponentOfSubIndicatorsTracksRgzn) {
  // Table 7's robustness check rebuilds the AI index as a principal component.
  const DataFrame df = embedded_dataset();
  const char* sub[10] = {"ai_fiber", "ai_rd_exp", "ai_rd_staff", "ai_equip", "ai_software",
                         "ai_embedded", "ai_firms", "ai_newprod", "ai_patent", "ai_profit"};
  Eigen::MatrixXd Z(360, 10);
  for (int k = 0; k < 10; ++k) {
    const auto& x = df.numeric(sub[k]).to_vector();
    const double m = mean(x), s = sd(x);
    for (int r = 0; r < 360; ++r) Z(r, k) = (x[r] - m) / s;
  }
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(Z.transpose() * Z);
  const Eigen::VectorXd pc = Z * es.eigenvectors().col(9);
  const double r = pbtest::correlation(std::vector<double>(pc.data(), pc.data() + 360), df.numeric("rgzn").to_vector());
  EXPECT_GT(std::fabs(r), 0.9);
}
