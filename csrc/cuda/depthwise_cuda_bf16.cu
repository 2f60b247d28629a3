// CUDA depthwise kernels for __nv_bfloat16 (tiled fast paths and generic kernels).
#include "cuda/depthwise_cuda_kernels.cuh"

namespace leanconv::cuda_dw {
LEANCONV_DW_INSTANTIATE_FAST(__nv_bfloat16)
LEANCONV_DW_INSTANTIATE_GENERIC(__nv_bfloat16, float)
}  // namespace leanconv::cuda_dw
