// CUDA kernels of the one-way filter chain (forward and all gradients) and
// their launchers; the glue (checks, allocation, dtype) is one_way_cuda.cpp.
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
#include <c10/cuda/CUDAException.h>

#include "cuda/one_way_cuda_launch.h"

namespace leanconv::cuda_one_way {

namespace {

struct BlockPos {
  int64_t plane, c, oz0, oy0, ox0;
  int nz;
};

__device__ inline BlockPos block_pos(const OneWayCudaTiling& t, int64_t b) {
  BlockPos q;
  const int64_t tx = b % t.tiles_x;
  b /= t.tiles_x;
  const int64_t ty = b % t.tiles_y;
  b /= t.tiles_y;
  const int64_t tz = b % t.tiles_z;
  q.plane = b / t.tiles_z;
  q.c = q.plane % t.g.channels;
  q.ox0 = tx * kTW;
  q.oy0 = ty * kTH;
  q.oz0 = tz * t.TD;
  const int64_t left = t.g.out[0] - q.oz0;
  q.nz = static_cast<int>(left < t.TD ? left : t.TD);
  return q;
}

// Padded input slices [z_lo, z_hi) that the block's output slices read and
// that lie inside the input.
__device__ inline void slice_range(const OneWayCudaTiling& t, const BlockPos& q, int64_t& z_lo,
                                   int64_t& z_hi) {
  const int64_t first = q.oz0 * t.sz, last = (q.oz0 + q.nz - 1) * t.sz + (t.kD - 1) * t.dz + 1;
  z_lo = first > t.g.pad[0] ? first : t.g.pad[0];
  z_hi = last < t.g.pad[0] + t.g.in[0] ? last : t.g.pad[0] + t.g.in[0];
}

// D tap of output slice oz for padded input slice zp, or -1.
__device__ inline int d_tap(const OneWayCudaTiling& t, int64_t zp, int64_t oz) {
  const int64_t q = zp - oz * t.sz;
  if (q < 0 || q % t.dz != 0 || q / t.dz >= t.kD) return -1;
  return static_cast<int>(q / t.dz);
}

// S0 = input region of slice zi (zero outside the input); S1 = W filter of S0.
template <typename T>
__device__ void load_and_filter_w(const OneWayCudaTiling& t, const T* xs, int64_t oy0,
                                  int64_t ox0, T* S0, T* S1, const T* fw, bool filter) {
  const int64_t ry0 = oy0 * t.sy - t.g.pad[1], rx0 = ox0 * t.sx - t.g.pad[2];  // input index of region (0, 0)
  for (int e = threadIdx.x; e < t.RH * t.RW; e += blockDim.x) {
    const int64_t yi = ry0 + e / t.RW, xi = rx0 + e % t.RW;
    S0[e] = (yi >= 0 && yi < t.g.in[1] && xi >= 0 && xi < t.g.in[2]) ? xs[yi * t.g.in[2] + xi] : T(0);
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
    one_way_forward_kernel(OneWayCudaTiling t, const T* __restrict__ x, const T* __restrict__ fd,
                           const T* __restrict__ fh, const T* __restrict__ fw,
                           const T* __restrict__ scale, T* __restrict__ y, OneWayCudaSmem m) {
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
      load_and_filter_w(t, x + (q.plane * t.g.in[0] + (zp - t.g.pad[0])) * t.g.in[1] * t.g.in[2],
                        q.oy0, q.ox0, S0, S1, Fw, true);
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
    if (gy_ < t.g.out[1] && gx_ < t.g.out[2]) {
      const T sc = scale ? scale[q.c] : T(1);
#pragma unroll
      for (int j = 0; j < kMaxTD; ++j)
        if (j < q.nz)
          y[((q.plane * t.g.out[0] + q.oz0 + j) * t.g.out[1] + gy_) * t.g.out[2] + gx_] = sc * acc[j];
    }
  }
}

// gf rows: (C, kD + kH + kW + 1) = D, H, W filter gradients and the scale one.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    one_way_backward_kernel(OneWayCudaTiling t, const T* __restrict__ gy, const T* __restrict__ x,
                            const T* __restrict__ fd, const T* __restrict__ fh,
                            const T* __restrict__ fw, const T* __restrict__ scale, T* gx, T* gf,
                            OneWayCudaSmem m) {
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
    const bool inside = gy_ < t.g.out[1] && gx_ < t.g.out[2];
#pragma unroll
    for (int j = 0; j < kMaxTD; ++j)
      g[j] = (inside && j < q.nz)
                 ? gy[((q.plane * t.g.out[0] + q.oz0 + j) * t.g.out[1] + gy_) * t.g.out[2] + gx_]
                 : T(0);
    int64_t z_lo, z_hi;
    slice_range(t, q, z_lo, z_hi);
    const int64_t ry0 = q.oy0 * t.sy - t.g.pad[1], rx0 = q.ox0 * t.sx - t.g.pad[2];
    for (int64_t zp = z_lo; zp < z_hi; ++zp) {
      bool any = false;
      for (int j = 0; j < q.nz; ++j) any |= d_tap(t, zp, q.oz0 + j) >= 0;
      if (!any) continue;
      const int64_t zi = zp - t.g.pad[0];
      __syncthreads();
      load_and_filter_w(t, x + (q.plane * t.g.in[0] + zi) * t.g.in[1] * t.g.in[2], q.oy0, q.ox0, S0,
                        S1, Fw, need_gf);
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
        T* gxs = gx + (q.plane * t.g.in[0] + zi) * t.g.in[1] * t.g.in[2];
        for (int e = threadIdx.x; e < t.RH * t.RW; e += blockDim.x) {
          const int r = e / t.RW, c = e % t.RW;
          const int64_t yi = ry0 + r, xi = rx0 + c;
          if (yi < 0 || yi >= t.g.in[1] || xi < 0 || xi >= t.g.in[2]) continue;
          T s = 0;
          for (int k = 0; k < t.kW; ++k) {
            const int v = c - k * t.dx;
            if (v >= 0 && v % t.sx == 0 && v / t.sx < kTW) s += Fw[k] * S1[r * kTW + v / t.sx];
          }
          if (s != T(0)) atomicAdd(gxs + yi * t.g.in[2] + xi, s);
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

// Shared memory above 48 KiB needs an opt-in per kernel (the glue has checked
// the device's limit).
template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(bytes)));
  }
}

}  // namespace

template <typename T>
void launch_forward(const OneWayCudaTiling& t, const OneWayCudaSmem& m, size_t smem_bytes,
                    const T* x, const T* fd, const T* fh, const T* fw, const T* scale, T* y,
                    cudaStream_t stream) {
  allow_smem(one_way_forward_kernel<T>, smem_bytes);
  one_way_forward_kernel<T><<<grid_for(t), kThreads, smem_bytes, stream>>>(t, x, fd, fh, fw, scale, y, m);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T>
void launch_backward(const OneWayCudaTiling& t, const OneWayCudaSmem& m, size_t smem_bytes,
                     const T* gy, const T* x, const T* fd, const T* fh, const T* fw,
                     const T* scale, T* gx, T* gf, cudaStream_t stream) {
  allow_smem(one_way_backward_kernel<T>, smem_bytes);
  one_way_backward_kernel<T><<<grid_for(t), kThreads, smem_bytes, stream>>>(t, gy, x, fd, fh, fw, scale,
                                                                            gx, gf, m);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

#define LEANCONV_ONE_WAY_INSTANTIATE(T)                                                            \
  template void launch_forward<T>(const OneWayCudaTiling&, const OneWayCudaSmem&, size_t, const T*, \
                                  const T*, const T*, const T*, const T*, T*, cudaStream_t);       \
  template void launch_backward<T>(const OneWayCudaTiling&, const OneWayCudaSmem&, size_t,        \
                                   const T*, const T*, const T*, const T*, const T*, const T*, T*, \
                                   T*, cudaStream_t);
LEANCONV_ONE_WAY_INSTANTIATE(float)
LEANCONV_ONE_WAY_INSTANTIATE(double)
#undef LEANCONV_ONE_WAY_INSTANTIATE

}  // namespace leanconv::cuda_one_way
