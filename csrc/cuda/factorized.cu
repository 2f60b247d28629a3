// CUDA kernels of the one-way filter chain (forward and all gradients).
//
// One thread block computes an output tile of TH x TW positions (one thread
// each) for up to TD output slices of one plane (n, c).  It walks the input
// slices the tile reads, one at a time: the slice's input region goes to
// shared memory (S0), the W filter fills S1 (region rows x TW), and each
// thread applies the H filter to its column and adds the result to the TD
// output accumulators that this slice feeds through the D filter.  Nothing
// between the axis filters goes to global memory.
//
// The backward kernel walks the same tiles and slices: it rebuilds S0/S1,
// forms gz (gradient w.r.t. the H-filter output of the slice, from the tile's
// grad_output), then gY = H^T gz (gradient w.r.t. the W-filter output, in S1),
// and accumulates the three filter gradients (block reductions, then one
// atomicAdd per tap and block) and grad_input (W^T gY, atomicAdd: regions of
// neighbouring tiles overlap).  Every contribution belongs to exactly one
// tile, so the sums are exact (the order of the float additions is not
// fixed: results are not bitwise deterministic).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <climits>
#include <tuple>

#include "ops/depthwise.h"
#include "ops/factorized.h"

namespace leanconv {

namespace {

constexpr int kTH = 8, kTW = 32, kThreads = kTH * kTW;  // a warp = one tile row
constexpr int kMaxTD = 8;                                  // output slices per block

// Geometry of a launch; plain values so that it can be passed by value.
struct Tile {
  int64_t N, C;
  int64_t D, H, W, oD, oH, oW;
  int kD, kH, kW;
  int sz, sy, sx, dz, dy, dx;
  int64_t pz, py, px;  // padding before
  int TD;              // output slices per block
  int RH, RW;          // input region rows / columns of a tile
  int64_t tiles_x, tiles_y, tiles_z, blocks;
};

Tile make_tile(const DepthwiseParams& p) {
  Tile t;
  t.N = p.batch;
  t.C = p.channels;
  t.D = p.in[0], t.H = p.in[1], t.W = p.in[2];
  t.oD = p.out[0], t.oH = p.out[1], t.oW = p.out[2];
  t.kD = static_cast<int>(p.kernel[0]), t.kH = static_cast<int>(p.kernel[1]),
  t.kW = static_cast<int>(p.kernel[2]);
  t.sz = static_cast<int>(p.stride[0]), t.sy = static_cast<int>(p.stride[1]),
  t.sx = static_cast<int>(p.stride[2]);
  t.dz = static_cast<int>(p.dilation[0]), t.dy = static_cast<int>(p.dilation[1]),
  t.dx = static_cast<int>(p.dilation[2]);
  t.pz = p.pad[0], t.py = p.pad[1], t.px = p.pad[2];
  t.TD = static_cast<int>(std::min<int64_t>(kMaxTD, p.out[0]));
  t.RH = (kTH - 1) * t.sy + (t.kH - 1) * t.dy + 1;
  t.RW = (kTW - 1) * t.sx + (t.kW - 1) * t.dx + 1;
  t.tiles_x = (t.oW + kTW - 1) / kTW;
  t.tiles_y = (t.oH + kTH - 1) / kTH;
  t.tiles_z = (t.oD + t.TD - 1) / t.TD;
  t.blocks = t.N * t.C * t.tiles_z * t.tiles_y * t.tiles_x;
  return t;
}

// Shared memory layout (elements of T): S0 | S1 | S2 | filters | reduction.
struct Smem {
  int s0, s1, s2, filt, red, total;
};

Smem smem_layout(const Tile& t, bool backward) {
  Smem m;
  int off = 0;
  m.s0 = off;
  off += t.RH * t.RW;
  m.s1 = off;
  off += t.RH * kTW;
  m.s2 = off;
  off += backward ? kThreads : 0;
  m.filt = off;
  off += t.kD + t.kH + t.kW;
  m.red = off;
  off += backward ? t.kD + t.kH + t.kW : 0;
  m.total = off;
  return m;
}

struct BlockPos {
  int64_t plane, c, oz0, oy0, ox0;
  int nz;
};

__device__ inline BlockPos block_pos(const Tile& t, int64_t b) {
  BlockPos q;
  const int64_t tx = b % t.tiles_x;
  b /= t.tiles_x;
  const int64_t ty = b % t.tiles_y;
  b /= t.tiles_y;
  const int64_t tz = b % t.tiles_z;
  q.plane = b / t.tiles_z;
  q.c = q.plane % t.C;
  q.ox0 = tx * kTW;
  q.oy0 = ty * kTH;
  q.oz0 = tz * t.TD;
  const int64_t left = t.oD - q.oz0;
  q.nz = static_cast<int>(left < t.TD ? left : t.TD);
  return q;
}

// Padded input slices [z_lo, z_hi) that the block's output slices read and
// that lie inside the input.
__device__ inline void slice_range(const Tile& t, const BlockPos& q, int64_t& z_lo, int64_t& z_hi) {
  const int64_t first = q.oz0 * t.sz, last = (q.oz0 + q.nz - 1) * t.sz + (t.kD - 1) * t.dz + 1;
  z_lo = first > t.pz ? first : t.pz;
  z_hi = last < t.pz + t.D ? last : t.pz + t.D;
}

// D tap of output slice oz for padded input slice zp, or -1.
__device__ inline int d_tap(const Tile& t, int64_t zp, int64_t oz) {
  const int64_t q = zp - oz * t.sz;
  if (q < 0 || q % t.dz != 0 || q / t.dz >= t.kD) return -1;
  return static_cast<int>(q / t.dz);
}

// S0 = input region of slice zi (zero outside the input); S1 = W filter of S0.
template <typename T>
__device__ void load_and_filter_w(const Tile& t, const T* xs, int64_t oy0, int64_t ox0, T* S0,
                                  T* S1, const T* fw, bool filter) {
  const int64_t ry0 = oy0 * t.sy - t.py, rx0 = ox0 * t.sx - t.px;  // input index of region (0, 0)
  for (int e = threadIdx.x; e < t.RH * t.RW; e += blockDim.x) {
    const int64_t yi = ry0 + e / t.RW, xi = rx0 + e % t.RW;
    S0[e] = (yi >= 0 && yi < t.H && xi >= 0 && xi < t.W) ? xs[yi * t.W + xi] : T(0);
  }
  __syncthreads();
  if (!filter) return;
  for (int e = threadIdx.x; e < t.RH * kTW; e += blockDim.x) {
    const int r = e / kTW, ox = e % kTW;
    const T* row = S0 + r * t.RW + ox * t.sx;
    T s = 0;
    for (int k = 0; k < t.kW; ++k) s += fw[k] * row[k * t.dx];
    S1[e] = s;
  }
  __syncthreads();
}

template <typename T>
__device__ inline T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

// Adds the block-wide sum of v into *dst (shared).  Every thread must call it.
template <typename T>
__device__ inline void block_add(T v, T* dst) {
  v = warp_sum(v);
  if ((threadIdx.x & 31) == 0) atomicAdd(dst, v);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    one_way_forward_kernel(Tile t, const T* __restrict__ x, const T* __restrict__ fd,
                           const T* __restrict__ fh, const T* __restrict__ fw,
                           const T* __restrict__ scale, T* __restrict__ y, Smem m) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* smem = reinterpret_cast<T*>(smem_raw);
  T *S0 = smem + m.s0, *S1 = smem + m.s1, *F = smem + m.filt;
  T *Fd = F, *Fh = F + t.kD, *Fw = Fh + t.kH;
  const int oy = threadIdx.x / kTW, ox = threadIdx.x % kTW;
  for (int64_t b = blockIdx.x; b < t.blocks; b += gridDim.x) {
    const BlockPos q = block_pos(t, b);
    __syncthreads();  // the previous tile is done with shared memory
    for (int k = threadIdx.x; k < t.kD + t.kH + t.kW; k += blockDim.x) {
      T v;
      if (k < t.kD) v = fd ? fd[q.c * t.kD + k] : T(1);
      else if (k < t.kD + t.kH) v = fh[q.c * t.kH + (k - t.kD)];
      else v = fw[q.c * t.kW + (k - t.kD - t.kH)];
      F[k] = v;
    }
    T acc[kMaxTD];
#pragma unroll
    for (int j = 0; j < kMaxTD; ++j) acc[j] = 0;
    int64_t z_lo, z_hi;
    slice_range(t, q, z_lo, z_hi);
    for (int64_t zp = z_lo; zp < z_hi; ++zp) {
      bool any = false;
      for (int j = 0; j < q.nz; ++j) any |= d_tap(t, zp, q.oz0 + j) >= 0;
      if (!any) continue;  // uniform over the block
      __syncthreads();     // S0/S1 (and F on the first slice) are ready to be (re)written/read
      load_and_filter_w(t, x + (q.plane * t.D + (zp - t.pz)) * t.H * t.W, q.oy0, q.ox0, S0, S1, Fw,
                        true);
      T t2 = 0;
      for (int k = 0; k < t.kH; ++k) t2 += Fh[k] * S1[(oy * t.sy + k * t.dy) * kTW + ox];
#pragma unroll
      for (int j = 0; j < kMaxTD; ++j) {
        if (j < q.nz) {
          const int kz = d_tap(t, zp, q.oz0 + j);
          if (kz >= 0) acc[j] += Fd[kz] * t2;
        }
      }
    }
    const int64_t gy_ = q.oy0 + oy, gx_ = q.ox0 + ox;
    if (gy_ < t.oH && gx_ < t.oW) {
      const T sc = scale ? scale[q.c] : T(1);
#pragma unroll
      for (int j = 0; j < kMaxTD; ++j)
        if (j < q.nz) y[((q.plane * t.oD + q.oz0 + j) * t.oH + gy_) * t.oW + gx_] = sc * acc[j];
    }
  }
}

// gf rows: (C, kD + kH + kW + 1) = D, H, W filter gradients and the scale one.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    one_way_backward_kernel(Tile t, const T* __restrict__ gy, const T* __restrict__ x,
                            const T* __restrict__ fd, const T* __restrict__ fh,
                            const T* __restrict__ fw, const T* __restrict__ scale, T* gx, T* gf,
                            Smem m) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* smem = reinterpret_cast<T*>(smem_raw);
  T *S0 = smem + m.s0, *S1 = smem + m.s1, *S2 = smem + m.s2, *F = smem + m.filt;
  T *Fd = F, *Fh = F + t.kD, *Fw = Fh + t.kH;
  T *Rd = smem + m.red, *Rh = Rd + t.kD, *Rw = Rh + t.kH;
  const int nf = t.kD + t.kH + t.kW;
  const int oy = threadIdx.x / kTW, ox = threadIdx.x % kTW;
  const bool need_gf = gf != nullptr;
  for (int64_t b = blockIdx.x; b < t.blocks; b += gridDim.x) {
    const BlockPos q = block_pos(t, b);
    __syncthreads();
    for (int k = threadIdx.x; k < nf; k += blockDim.x) {
      T v;
      if (k < t.kD) v = fd ? fd[q.c * t.kD + k] : T(1);
      else if (k < t.kD + t.kH) v = fh[q.c * t.kH + (k - t.kD)];
      else v = fw[q.c * t.kW + (k - t.kD - t.kH)];
      F[k] = v;
      Rd[k] = 0;
    }
    const T sc = scale ? scale[q.c] : T(1);
    // this thread's grad_output column (0 outside the output)
    T g[kMaxTD];
    const int64_t gy_ = q.oy0 + oy, gx_ = q.ox0 + ox;
    const bool inside = gy_ < t.oH && gx_ < t.oW;
#pragma unroll
    for (int j = 0; j < kMaxTD; ++j)
      g[j] = (inside && j < q.nz) ? gy[((q.plane * t.oD + q.oz0 + j) * t.oH + gy_) * t.oW + gx_] : T(0);
    int64_t z_lo, z_hi;
    slice_range(t, q, z_lo, z_hi);
    const int64_t ry0 = q.oy0 * t.sy - t.py, rx0 = q.ox0 * t.sx - t.px;
    for (int64_t zp = z_lo; zp < z_hi; ++zp) {
      bool any = false;
      for (int j = 0; j < q.nz; ++j) any |= d_tap(t, zp, q.oz0 + j) >= 0;
      if (!any) continue;
      const int64_t zi = zp - t.pz;
      __syncthreads();
      load_and_filter_w(t, x + (q.plane * t.D + zi) * t.H * t.W, q.oy0, q.ox0, S0, S1, Fw, need_gf);
      // gz = sum over D taps of scale * fd[kz] * g; with gf: Gd[kz] += g * (H o W)(x)
      T gz = 0;
      T t2 = 0;
      if (need_gf)
        for (int k = 0; k < t.kH; ++k) t2 += Fh[k] * S1[(oy * t.sy + k * t.dy) * kTW + ox];
      // unrolled with a guard (not a loop to q.nz) so that g stays in registers;
      // the guards are uniform over the block, so block_add inside is safe
#pragma unroll
      for (int j = 0; j < kMaxTD; ++j) {
        const int kz = j < q.nz ? d_tap(t, zp, q.oz0 + j) : -1;
        if (kz < 0) continue;
        gz += sc * Fd[kz] * g[j];
        if (need_gf) block_add(g[j] * t2, &Rd[kz]);
      }
      S2[threadIdx.x] = gz;
      if (need_gf)  // Gh[ky] += gz * W(x) at the row the tap reads
        for (int k = 0; k < t.kH; ++k) block_add(gz * S1[(oy * t.sy + k * t.dy) * kTW + ox], &Rh[k]);
      __syncthreads();  // S2 complete; S1 (W(x)) no longer needed
      // gY = H^T gz over the region rows (the part this tile's outputs send back)
      for (int e = threadIdx.x; e < t.RH * kTW; e += blockDim.x) {
        const int r = e / kTW, c = e % kTW;
        T s = 0;
        for (int k = 0; k < t.kH; ++k) {
          const int v = r - k * t.dy;
          if (v >= 0 && v % t.sy == 0 && v / t.sy < kTH) s += Fh[k] * S2[(v / t.sy) * kTW + c];
        }
        S1[e] = s;
      }
      __syncthreads();
      if (need_gf) {
        for (int k = 0; k < t.kW; ++k) {
          T s = 0;
          for (int e = threadIdx.x; e < t.RH * kTW; e += blockDim.x)
            s += S1[e] * S0[(e / kTW) * t.RW + (e % kTW) * t.sx + k * t.dx];
          block_add(s, &Rw[k]);
        }
      }
      if (gx) {
        T* gxs = gx + (q.plane * t.D + zi) * t.H * t.W;
        for (int e = threadIdx.x; e < t.RH * t.RW; e += blockDim.x) {
          const int r = e / t.RW, c = e % t.RW;
          const int64_t yi = ry0 + r, xi = rx0 + c;
          if (yi < 0 || yi >= t.H || xi < 0 || xi >= t.W) continue;
          T s = 0;
          for (int k = 0; k < t.kW; ++k) {
            const int v = c - k * t.dx;
            if (v >= 0 && v % t.sx == 0 && v / t.sx < kTW) s += Fw[k] * S1[r * kTW + v / t.sx];
          }
          if (s != T(0)) atomicAdd(gxs + yi * t.W + xi, s);
        }
      }
    }
    if (need_gf) {
      __syncthreads();
      T* row = gf + q.c * (nf + 1);
      for (int k = threadIdx.x; k < nf; k += blockDim.x) {
        // Rd holds G_d = sum g * (H o W)(x): grad fd = scale * G_d; Rh, Rw are final
        const T v = k < t.kD ? sc * Rd[k] : Rd[k];
        if (v != T(0)) atomicAdd(row + k, v);
      }
      if (threadIdx.x == 0) {
        T s = 0;
        for (int k = 0; k < t.kD; ++k) s += Fd[k] * Rd[k];
        if (s != T(0)) atomicAdd(row + nf, s);
      }
    }
  }
}

// Shared memory above 48 KiB needs an opt-in per kernel; beyond the device's
// limit the tile does not fit and the call fails with a clear message.
template <typename Kernel>
void prepare_smem(Kernel kernel, size_t bytes, const Tile& t) {
  const auto* prop = at::cuda::getCurrentDeviceProperties();
  TORCH_CHECK(bytes <= prop->sharedMemPerBlockOptin,
              "one_way_conv (cuda): the dilated filters are too long for the fused kernel: a tile "
              "needs ", bytes, " bytes of shared memory (input region ", t.RH, " x ", t.RW,
              "), the device allows ", prop->sharedMemPerBlockOptin,
              "; use shorter filters/dilations or run this layer on the CPU");
  if (bytes > 48 * 1024) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(bytes)));
  }
}

int grid_for(const Tile& t) {
  return static_cast<int>(std::min<int64_t>(t.blocks, INT_MAX));
}

void check_cuda(const at::Tensor& input) {
  TORCH_CHECK(input.is_cuda(), "input must be a CUDA tensor here, got device ", input.device());
}

at::Tensor one_way_conv_cuda(const at::Tensor& input, const std::optional<at::Tensor>& filter_d,
                             const at::Tensor& filter_h, const at::Tensor& filter_w,
                             const std::optional<at::Tensor>& scale, c10::IntArrayRef stride,
                             c10::IntArrayRef padding, c10::IntArrayRef dilation) {
  const DepthwiseParams p =
      one_way_forward_params(input, filter_d, filter_h, filter_w, scale, stride, padding, dilation);
  check_cuda(input);
  c10::cuda::CUDAGuard guard(input.device());
  if (p.batch * p.channels * p.out_plane() == 0)
    return one_way_finish(at::empty(depthwise_output_shape(p), input.options()), input);
  const at::Tensor x = one_way_compute(input), fd = one_way_compute(filter_d),
                   fh = one_way_compute(filter_h), fw = one_way_compute(filter_w),
                   sc = one_way_compute(scale);
  at::Tensor y = at::empty(depthwise_output_shape(p), x.options());
  const Tile t = make_tile(p);
  const Smem m = smem_layout(t, false);
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "leanconv::one_way_conv (cuda)", [&] {
    const size_t bytes = static_cast<size_t>(m.total) * sizeof(scalar_t);
    prepare_smem(one_way_forward_kernel<scalar_t>, bytes, t);
    one_way_forward_kernel<scalar_t><<<grid_for(t), kThreads, bytes, stream>>>(
        t, x.const_data_ptr<scalar_t>(), one_way_ptr<scalar_t>(fd), fh.const_data_ptr<scalar_t>(),
        fw.const_data_ptr<scalar_t>(), one_way_ptr<scalar_t>(sc), y.mutable_data_ptr<scalar_t>(), m);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return one_way_finish(y, input);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> one_way_conv_backward_cuda(
    const at::Tensor& grad_output, const at::Tensor& input,
    const std::optional<at::Tensor>& filter_d, const at::Tensor& filter_h,
    const at::Tensor& filter_w, const std::optional<at::Tensor>& scale, c10::IntArrayRef stride,
    c10::IntArrayRef padding, c10::IntArrayRef dilation, std::array<bool, 2> output_mask) {
  const DepthwiseParams p = one_way_backward_params(grad_output, input, filter_d, filter_h,
                                                    filter_w, scale, stride, padding, dilation);
  check_cuda(input);
  c10::cuda::CUDAGuard guard(input.device());
  const bool need_gx = output_mask[0], need_gf = output_mask[1];
  const bool has_d = filter_d.has_value() && filter_d->defined();
  const bool has_scale = scale.has_value() && scale->defined();
  const int64_t C = p.channels, row = p.kernel[0] + p.kernel[1] + p.kernel[2] + 1;
  const at::Tensor fd = one_way_compute(filter_d), fh = one_way_compute(filter_h),
                   fw = one_way_compute(filter_w), sc = one_way_compute(scale);
  const at::Tensor x = one_way_compute(input), gy = one_way_compute(grad_output);
  // both accumulated with atomics: start from zero
  at::Tensor gx = need_gx ? at::zeros(input.sizes(), x.options()) : at::Tensor();
  at::Tensor gf = need_gf ? at::zeros({C, row}, x.options()) : at::Tensor();
  if ((need_gx || need_gf) && p.batch * C * p.out_plane() > 0) {
    const Tile t = make_tile(p);
    const Smem m = smem_layout(t, true);
    auto stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "leanconv::one_way_conv_backward (cuda)", [&] {
      const size_t bytes = static_cast<size_t>(m.total) * sizeof(scalar_t);
      prepare_smem(one_way_backward_kernel<scalar_t>, bytes, t);
      one_way_backward_kernel<scalar_t><<<grid_for(t), kThreads, bytes, stream>>>(
          t, gy.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(), one_way_ptr<scalar_t>(fd),
          fh.const_data_ptr<scalar_t>(), fw.const_data_ptr<scalar_t>(), one_way_ptr<scalar_t>(sc),
          need_gx ? gx.mutable_data_ptr<scalar_t>() : nullptr,
          need_gf ? gf.mutable_data_ptr<scalar_t>() : nullptr, m);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return one_way_backward_results(p, input, gx, gf, has_d, has_scale);
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, CUDA, m) {
  m.impl("one_way_conv", &one_way_conv_cuda);
  m.impl("one_way_conv_backward", &one_way_conv_backward_cuda);
}

}  // namespace leanconv
