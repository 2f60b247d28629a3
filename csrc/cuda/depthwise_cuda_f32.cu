// CUDA depthwise kernels for float (tiled fast paths and generic kernels).
#include "cuda/depthwise_cuda_kernels.cuh"

namespace leanconv::cuda_dw {
LEANCONV_DW_INSTANTIATE_FAST(float)
LEANCONV_DW_INSTANTIATE_GENERIC(float, float)
}  // namespace leanconv::cuda_dw
