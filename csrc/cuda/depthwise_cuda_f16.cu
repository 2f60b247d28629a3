// CUDA depthwise kernels for __half (tiled fast paths and generic kernels).
#include "cuda/depthwise_cuda_kernels.cuh"

namespace leanconv::cuda_dw {
LEANCONV_DW_INSTANTIATE_FAST(__half)
LEANCONV_DW_INSTANTIATE_GENERIC(__half, float)
}  // namespace leanconv::cuda_dw
