// Python module leanconv._C: build information.  The ops themselves are
// registered with the PyTorch dispatcher by the files in csrc/ops, csrc/cpu
// and csrc/cuda (static registration when this module is loaded) and are
// reached as torch.ops.leanconv.*.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "cpu/isa.h"

#ifndef LEANCONV_CUDA_ARCHS
#define LEANCONV_CUDA_ARCHS ""
#endif

namespace py = pybind11;

namespace {

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : s) {
    if (ch == ',' || ch == ';') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += ch;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

py::dict compiled_info() {
  py::dict d;
#ifdef LEANCONV_WITH_CUDA
  d["cuda"] = true;
  d["cuda_archs"] = split_commas(LEANCONV_CUDA_ARCHS);
#else
  d["cuda"] = false;
  d["cuda_archs"] = std::vector<std::string>{};
#endif
  d["cpu_isas"] = split_commas(LEANCONV_CPU_ISAS);
  d["cpu_isa_selected"] = std::string(leanconv::cpu::isa_name(leanconv::cpu::selected_isa()));
  d["torch_version"] = std::string(LEANCONV_TORCH_VERSION);
  d["compiler"] = std::string(__VERSION__);
  return d;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "leanconv compiled kernels (ops are registered as torch.ops.leanconv.*)";
  m.def("compiled_info", &compiled_info,
        "What this build compiled: CUDA and its archs, CPU ISA variants and the one in use.");
}
