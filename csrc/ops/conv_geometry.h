// The geometry of one convolution call: sizes of input, kernel and output,
// padding, stride and dilation, all int64.  Filled by csrc/ops (the argument
// checks of every op family) and read by every kernel, CPU and CUDA; what a
// kernel adds (tiles, blocking, scratch) lives in a struct named for that
// (`...Tiling`, `...Plan`) next to the kernel.  Plain C++ (no torch header)
// so that kernel files compile quickly.
//
// 2-D problems are stored as 3-D ones with a depth of 1 (in[0] = out[0] =
// kernel[0] = 1), so every kernel is written once for (D, H, W).
#pragma once

#include <cstdint>

namespace leanconv {

struct ConvGeometry {
  int64_t batch = 0;      // N
  int64_t channels = 0;   // C (groups = in_channels = out_channels)
  int64_t in[3] = {1, 1, 1};        // D, H, W of the input
  int64_t out[3] = {1, 1, 1};       // D, H, W of the output
  int64_t kernel[3] = {1, 1, 1};    // kD, kH, kW
  int64_t stride[3] = {1, 1, 1};
  int64_t pad[3] = {0, 0, 0};       // padding before (front/top/left); may be
                                    // negative inside kernels (a crop)
  int64_t pad_after[3] = {0, 0, 0}; // padding after (back/bottom/right)
  int64_t dilation[3] = {1, 1, 1};
  int spatial_dims = 2;             // 2 or 3

  int64_t in_plane() const { return in[0] * in[1] * in[2]; }
  int64_t out_plane() const { return out[0] * out[1] * out[2]; }
  int64_t kernel_volume() const { return kernel[0] * kernel[1] * kernel[2]; }
};

// Output extent of one axis: floor((in + lo + hi - dil*(k-1) - 1) / stride) + 1.
inline int64_t conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad_lo,
                             int64_t pad_hi, int64_t dil) {
  return (in + pad_lo + pad_hi - dil * (k - 1) - 1) / stride + 1;
}

}  // namespace leanconv
