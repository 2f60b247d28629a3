// CUDA depthwise convolution kernels and their launchers.  Included by one
// small .cu file per dtype (depthwise_cuda_<dtype>.cu) that instantiates the
// launchers, so the dtypes compile in parallel.  The index arithmetic lives
// in depthwise_cuda_plan.h (shared with the CPU replay test); this file adds
// the thread/block structure: block loops, __syncthreads, warp shuffles.
//
// Every kernel loops over its blocks (b = blockIdx.x, b += gridDim.x), so any
// problem size fits a grid of at most 2^31 - 1 blocks; every branch around a
// __syncthreads is uniform across the block (it depends on b and kd or the
// tile q only).
#pragma once

#include <c10/cuda/CUDAException.h>
#include <c10/util/Exception.h>

#include "cuda/depthwise_cuda_launch.h"

namespace leanconv::cuda_dw {

// ------------------------------------------------------------- conversions

template <typename T>
struct AccOf {
  using type = float;  // half types and float accumulate in float
};
template <>
struct AccOf<double> {
  using type = double;
};
template <typename T>
using acc_t = typename AccOf<T>::type;

__device__ __forceinline__ float load_acc(const float* p) { return __ldg(p); }
__device__ __forceinline__ double load_acc(const double* p) { return __ldg(p); }
__device__ __forceinline__ float load_acc(const __half* p) { return __half2float(__ldg(p)); }
__device__ __forceinline__ float load_acc(const __nv_bfloat16* p) { return __bfloat162float(__ldg(p)); }

__device__ __forceinline__ void store_acc(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_acc(double* p, double v) { *p = v; }
__device__ __forceinline__ void store_acc(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store_acc(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

__device__ __forceinline__ int64_t global_thread() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t global_threads() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

// ----------------------------------------------------------- forward, fast

template <typename T, int TW, int KWF>
__global__ void __launch_bounds__(kMaxThreads)
    dw_forward_fast_kernel(const FwdFast a, const T* __restrict__ x, const T* __restrict__ w,
                           const T* __restrict__ bias, T* __restrict__ y) {
  extern __shared__ float smem[];
  float* xs = smem;                                            // rows x pitch
  float* ws = smem + static_cast<int64_t>(a.rows) * a.pitch;  // KH x KW
  const int tid = threadIdx.x;
  const auto load_x = [x](int64_t i) { return load_acc(x + i); };
  const auto load_w = [w](int64_t i) { return load_acc(w + i); };
  const auto store_y = [y](int64_t i, float v) { store_acc(y + i, v); };
  for (int64_t b = blockIdx.x; b < a.nblocks; b += gridDim.x) {
    const FwdBlock k = fwd_block(a, b);
    float acc[TW];
#pragma unroll
    for (int i = 0; i < TW; ++i) acc[i] = 0.f;
    for (int64_t kd = 0; kd < a.g.kernel[0]; ++kd) {
      const int64_t id = input_depth(a.g, k.od, kd);
      if (id < 0 || id >= a.g.in[0]) continue;  // same for the whole block
      fwd_fill(a, k, id, kd, tid, xs, ws, load_x, load_w);
      __syncthreads();
      fwd_compute<TW, KWF>(a, xs, ws, tid, acc);
      __syncthreads();  // before the next fill overwrites the tile
    }
    const float bv = bias != nullptr ? load_acc(bias + k.c) : 0.f;
    fwd_store<TW>(a, k, tid, acc, bv, store_y);
  }
}

template <typename T>
using FwdFastKernel = void (*)(const FwdFast, const T*, const T*, const T*, T*);

// Kernel widths compiled with a fixed trip count: the common ones.
template <typename T, int TW>
FwdFastKernel<T> forward_fast_kernel_for(int kw) {
  switch (kw) {
    case 3: return dw_forward_fast_kernel<T, TW, 3>;
    case 5: return dw_forward_fast_kernel<T, TW, 5>;
    case 7: return dw_forward_fast_kernel<T, TW, 7>;
    case 13: return dw_forward_fast_kernel<T, TW, 13>;
    case 31: return dw_forward_fast_kernel<T, TW, 31>;
    default: return dw_forward_fast_kernel<T, TW, 0>;
  }
}

// Dynamic shared memory above 48 KB must be requested per kernel.
template <typename K>
void allow_smem(K kernel, size_t bytes) {
  if (bytes > kSmemDefault)
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(bytes)));
}

template <typename T>
void launch_forward_fast(const FwdFast& a, const T* x, const T* w, const T* bias, T* y,
                         cudaStream_t stream) {
  const size_t smem = static_cast<size_t>(fwd_smem_floats(a)) * sizeof(float);
  TORCH_INTERNAL_ASSERT(smem <= a.smem_bytes && a.nthreads % kWarp == 0 && a.nthreads <= kMaxThreads,
                        "depthwise forward: inconsistent tile plan");
  const FwdFastKernel<T> kernel =
      a.tw == 16 ? forward_fast_kernel_for<T, 16>(a.KW) : forward_fast_kernel_for<T, 8>(a.KW);
  TORCH_INTERNAL_ASSERT(a.tw == 16 || a.tw == 8);
  allow_smem(kernel, smem);
  kernel<<<static_cast<unsigned>(grid_blocks(a.nblocks)), a.nthreads, smem, stream>>>(a, x, w, bias, y);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// --------------------------------------------------------- generic kernels

template <typename T>
__global__ void __launch_bounds__(kGenericThreads)
    dw_forward_direct_kernel(const ConvGeometry g, const T* __restrict__ x, const T* __restrict__ w,
                             const T* __restrict__ bias, T* __restrict__ y, int64_t total) {
  using Acc = acc_t<T>;
  const auto load_x = [x](int64_t i) { return load_acc(x + i); };
  const auto load_w = [w](int64_t i) { return load_acc(w + i); };
  for (int64_t i = global_thread(); i < total; i += global_threads()) {
    int64_t c = 0;
    Acc s = direct_forward_one<Acc>(g, i, load_x, load_w, c);
    if (bias != nullptr) s += load_acc(bias + c);
    store_acc(y + i, s);
  }
}

template <typename T>
void launch_forward_direct(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y,
                           cudaStream_t stream) {
  const int64_t total = g.batch * g.channels * g.out[0] * g.out[1] * g.out[2];
  const auto blocks = static_cast<unsigned>(grid_blocks(ceil_div(total, kGenericThreads)));
  dw_forward_direct_kernel<T><<<blocks, kGenericThreads, 0, stream>>>(g, x, w, bias, y, total);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T>
__global__ void __launch_bounds__(kGenericThreads)
    dw_backward_input_gather_kernel(const ConvGeometry g, const T* __restrict__ gy, const T* __restrict__ w,
                                    T* __restrict__ gx, int64_t total) {
  using Acc = acc_t<T>;
  const auto load_g = [gy](int64_t i) { return load_acc(gy + i); };
  const auto load_w = [w](int64_t i) { return load_acc(w + i); };
  for (int64_t i = global_thread(); i < total; i += global_threads())
    store_acc(gx + i, gather_input_one<Acc>(g, i, load_g, load_w));
}

template <typename T>
void launch_backward_input_gather(const ConvGeometry& g, const T* gy, const T* w, T* gx,
                                  cudaStream_t stream) {
  const int64_t total = g.batch * g.channels * g.in[0] * g.in[1] * g.in[2];
  const auto blocks = static_cast<unsigned>(grid_blocks(ceil_div(total, kGenericThreads)));
  dw_backward_input_gather_kernel<T><<<blocks, kGenericThreads, 0, stream>>>(g, gy, w, gx, total);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Block b sums one tap of one channel over one chunk of positions: strided
// per-thread sums, then a shared-memory tree in a fixed order.
template <typename T, typename Acc>
__global__ void __launch_bounds__(kGenericThreads)
    dw_wgrad_generic_kernel(const WgGeneric a, const T* __restrict__ gy, const T* __restrict__ x,
                            Acc* __restrict__ partial) {
  __shared__ Acc red[kGenericThreads];
  const int tid = threadIdx.x;
  const auto load_g = [gy](int64_t i) { return load_acc(gy + i); };
  const auto load_x = [x](int64_t i) { return load_acc(x + i); };
  for (int64_t b = blockIdx.x; b < a.nblocks; b += gridDim.x) {
    const WgGenericBlock k = wg_generic_block(a, b);
    const int64_t begin = k.s * a.chunk, end = min64(begin + a.chunk, a.positions);
    Acc s = 0;
    for (int64_t pos = begin + tid; pos < end; pos += kGenericThreads)
      s += wg_generic_term<Acc>(a, k, pos, load_g, load_x);
    red[tid] = s;
    __syncthreads();
#pragma unroll
    for (int step = kGenericThreads / 2; step > 0; step >>= 1) {
      if (tid < step) red[tid] += red[tid + step];
      __syncthreads();
    }
    if (tid == 0) partial[wg_generic_partial_index(a, k)] = red[0];
    __syncthreads();  // red[0] is read before the next block's sums overwrite it
  }
}

template <typename T, typename Acc>
void launch_wgrad_generic(const WgGeneric& a, const T* gy, const T* x, Acc* partial, cudaStream_t stream) {
  dw_wgrad_generic_kernel<T, Acc>
      <<<static_cast<unsigned>(grid_blocks(a.nblocks)), kGenericThreads, 0, stream>>>(a, gy, x, partial);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T, typename Acc>
__global__ void __launch_bounds__(kGenericThreads)
    dw_reduce_partials_kernel(const Acc* __restrict__ partial, T* __restrict__ gw, int64_t total,
                              int64_t S, int64_t taps) {
  for (int64_t i = global_thread(); i < total; i += global_threads())
    store_acc(gw + i, reduce_partials_one(partial, i, S, taps));
}

template <typename T, typename Acc>
void launch_reduce_partials(const Acc* partial, T* gw, int64_t C, int64_t S, int64_t taps,
                            cudaStream_t stream) {
  const int64_t total = C * taps;
  const auto blocks = static_cast<unsigned>(grid_blocks(ceil_div(total, kGenericThreads)));
  dw_reduce_partials_kernel<T, Acc><<<blocks, kGenericThreads, 0, stream>>>(partial, gw, total, S, taps);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// --------------------------------------------------- weight gradient, fast

template <typename T>
__global__ void __launch_bounds__(kMaxThreads)
    dw_wgrad_fast_kernel(const WgFast a, const T* __restrict__ gy, const T* __restrict__ x,
                         float* __restrict__ partial) {
  extern __shared__ float smem[];
  float* xs = smem;                                         // rows x px
  float* gs = smem + static_cast<int64_t>(a.rows) * a.px;  // kWgRows x pg
  const int tid = threadIdx.x, warp = tid / kWarp, lane = tid % kWarp;
  const auto load_x = [x](int64_t i) { return load_acc(x + i); };
  const auto load_g = [gy](int64_t i) { return load_acc(gy + i); };
  for (int64_t b = blockIdx.x; b < a.nblocks; b += gridDim.x) {
    const WgBlock k = wg_block(a, b);
    int ky0 = 0, kx0 = 0;
    const bool active = wg_warp_taps(a, k.group, warp, ky0, kx0);  // same for the whole warp
    float acc[kWgU][kWgT];
#pragma unroll
    for (int u = 0; u < kWgU; ++u)
#pragma unroll
      for (int t = 0; t < kWgT; ++t) acc[u][t] = 0.f;
    const int64_t q_end = min64((k.s + 1) * a.chunk, a.tiles);
    for (int64_t q = k.s * a.chunk; q < q_end; ++q) {
      const WgTile tile = wg_tile(a, q);
      const int64_t id = input_depth(a.g, tile.od, k.kd);
      if (id < 0 || id >= a.g.in[0]) continue;  // same for the whole block
      wg_fill(a, k.c, tile, id, tid, xs, gs, load_x, load_g);
      __syncthreads();
      if (active && tile.oy0 + lane < a.g.out[1])
        wg_compute(a, xs, gs, lane, ky0, kx0, wg_tile_width(a, tile), acc);
      __syncthreads();  // before the next fill overwrites the tiles
    }
    if (active) {
      // Butterfly over the 32 lanes (all lanes of the warp are here); lane 0's
      // sum has a fixed order, so the result is deterministic.
#pragma unroll
      for (int u = 0; u < kWgU; ++u)
#pragma unroll
        for (int t = 0; t < kWgT; ++t) {
          float v = acc[u][t];
#pragma unroll
          for (int off = kWarp / 2; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
          const int ky = ky0 + u, kx = kx0 + t;
          if (lane == 0 && ky < a.KH && kx < a.KW) partial[wg_partial_index(a, k, ky, kx)] = v;
        }
    }
  }
}

template <typename T>
void launch_wgrad_fast(const WgFast& a, const T* gy, const T* x, float* partial, cudaStream_t stream) {
  const size_t smem = static_cast<size_t>(wg_smem_floats(a)) * sizeof(float);
  TORCH_INTERNAL_ASSERT(smem <= a.smem_bytes && a.nthreads == a.nwarps * kWarp && a.nthreads <= kMaxThreads,
                        "depthwise weight gradient: inconsistent tile plan");
  allow_smem(dw_wgrad_fast_kernel<T>, smem);
  dw_wgrad_fast_kernel<T>
      <<<static_cast<unsigned>(grid_blocks(a.nblocks)), a.nthreads, smem, stream>>>(a, gy, x, partial);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace leanconv::cuda_dw

// Explicit instantiations, one dtype per .cu file (inside namespace
// leanconv::cuda_dw).
#define LEANCONV_DW_INSTANTIATE_FAST(T)                                                             \
  template void launch_forward_fast<T>(const FwdFast&, const T*, const T*, const T*, T*,          \
                                       cudaStream_t);                                             \
  template void launch_wgrad_fast<T>(const WgFast&, const T*, const T*, float*, cudaStream_t);

#define LEANCONV_DW_INSTANTIATE_GENERIC(T, Acc)                                                     \
  template void launch_forward_direct<T>(const ConvGeometry&, const T*, const T*, const T*, T*,           \
                                         cudaStream_t);                                           \
  template void launch_backward_input_gather<T>(const ConvGeometry&, const T*, const T*, T*, cudaStream_t); \
  template void launch_wgrad_generic<T, Acc>(const WgGeneric&, const T*, const T*, Acc*,          \
                                             cudaStream_t);                                       \
  template void launch_reduce_partials<T, Acc>(const Acc*, T*, int64_t, int64_t, int64_t,         \
                                               cudaStream_t);
