// CUDA depthwise kernels for double: the generic kernels only (float64 is
// there for gradcheck, not for speed).
#include "cuda/depthwise_cuda_kernels.cuh"

namespace leanconv::cuda_dw {
LEANCONV_DW_INSTANTIATE_GENERIC(double, double)
}  // namespace leanconv::cuda_dw
