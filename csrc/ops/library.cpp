// The leanconv op namespace, declared once here.  Each op family defines its
// schemas next to its argument checks (csrc/ops/<family>.cpp, with
// TORCH_LIBRARY_FRAGMENT); backends add kernels with
// TORCH_LIBRARY_IMPL(leanconv, CPU|CUDA, m) in csrc/cpu and csrc/cuda; Python
// adds fake (meta) kernels and autograd in leanconv/ops.
#include <torch/library.h>

TORCH_LIBRARY(leanconv, m) {}
