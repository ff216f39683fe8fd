// Linear restrictions written as text over coefficient names: "x1 = 0, x2 - x3 = 0.5", and the
// joint Wald statistic of several.
#include <cctype>
#include <cstdlib>

#include "estimate/detail.hpp"
#include "panelboot/error.hpp"
#include "panelboot/estimate.hpp"

namespace panelboot {
namespace {

// Parses one side "a*x1 - x2 + 3" into coefficients (added with sign) and a constant.
void parse_side(const std::string& full, std::size_t b, std::size_t e,
                const std::vector<std::string>& names, double sign, Eigen::VectorXd& R,
                double& constant) {
  std::size_t i = b;
  auto skip = [&] {
    while (i < e && std::isspace(static_cast<unsigned char>(full[i]))) ++i;
  };
  auto err = [&](const std::string& msg) {
    throw InvalidInput("hypothesis '" + full + "': " + msg + " at column " + std::to_string(i + 1));
  };
  bool first = true;
  skip();
  if (i >= e) err("empty side of '='");
  while (i < e) {
    double s = 1.0;
    skip();
    if (i < e && (full[i] == '+' || full[i] == '-')) {
      s = full[i] == '-' ? -1.0 : 1.0;
      ++i;
      skip();
    } else if (!first) {
      err("expected '+' or '-'");
    }
    first = false;
    double mult = 1.0;
    bool have_number = false;
    if (i < e && (std::isdigit(static_cast<unsigned char>(full[i])) || full[i] == '.')) {
      char* endp = nullptr;
      mult = std::strtod(full.c_str() + i, &endp);
      i = static_cast<std::size_t>(endp - full.c_str());
      have_number = true;
      skip();
      if (i < e && full[i] == '*') {
        ++i;
        skip();
      } else {
        constant += sign * s * mult;
        continue;
      }
    }
    // longest coefficient name starting here
    std::size_t best = 0, best_len = 0;
    for (std::size_t k = 0; k < names.size(); ++k) {
      const std::string& nm = names[k];
      if (nm.size() > best_len && full.compare(i, nm.size(), nm) == 0 && i + nm.size() <= e) {
        const std::size_t after = i + nm.size();
        if (after < e && (std::isalnum(static_cast<unsigned char>(full[after])) || full[after] == '_'))
          continue;
        best = k;
        best_len = nm.size();
      }
    }
    if (best_len == 0) {
      std::size_t j = i;
      while (j < e && !std::isspace(static_cast<unsigned char>(full[j])) && full[j] != '+' &&
             full[j] != '-' && full[j] != '*')
        ++j;
      const std::string word = full.substr(i, j - i);
      std::string msg = "'" + word + "' is not a coefficient of the model";
      const std::string near = nearest_name(word, names);
      if (!near.empty()) msg += " (did you mean '" + near + "'?)";
      err(msg);
    }
    (void)have_number;
    R[best] += sign * s * mult;
    i += best_len;
    skip();
  }
}

}  // namespace

std::vector<LinearRestriction> parse_restrictions(const std::string& text,
                                                  const std::vector<std::string>& names) {
  std::vector<LinearRestriction> out;
  std::size_t start = 0;
  int depth = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i < text.size() && text[i] == '(') ++depth;
    if (i < text.size() && text[i] == ')') --depth;
    if (i < text.size() && !(text[i] == ',' && depth == 0)) continue;
    const std::size_t eq = text.find('=', start);
    if (eq == std::string::npos || eq >= i)
      throw InvalidInput("hypothesis '" + text + "': each restriction needs '=' (e.g. 'x1 = 0')");
    LinearRestriction lr;
    std::size_t b = start, e = i;
    while (b < e && std::isspace(static_cast<unsigned char>(text[b]))) ++b;
    while (e > b && std::isspace(static_cast<unsigned char>(text[e - 1]))) --e;
    lr.text = text.substr(b, e - b);
    lr.R = Eigen::VectorXd::Zero(static_cast<Eigen::Index>(names.size()));
    double c_left = 0, c_right = 0;
    parse_side(text, start, eq, names, 1.0, lr.R, c_left);
    parse_side(text, eq + 1, i, names, -1.0, lr.R, c_right);
    // R b + c_left - c_right(with sign) = 0  ->  R b = -(c_left + c_right)
    lr.r = -(c_left + c_right);
    if (lr.R.cwiseAbs().maxCoeff() == 0)
      throw InvalidInput("hypothesis '" + lr.text + "' names no coefficient");
    out.push_back(lr);
    start = i + 1;
  }
  return out;
}

double wald_f(const Eigen::VectorXd& diff, const Eigen::MatrixXd& RVR, const std::string& what) {
  Eigen::FullPivLU<Eigen::MatrixXd> lu(RVR);
  if (lu.rank() < RVR.rows())
    throw InvalidInput(what + ": the restrictions are linearly dependent or the variance of R b is singular; "
                              "remove redundant rows");
  return diff.dot(lu.solve(diff)) / static_cast<double>(RVR.rows());
}

}  // namespace panelboot
