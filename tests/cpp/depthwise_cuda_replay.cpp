// CPU replay of the CUDA depthwise kernels' tiling (tests/test_depthwise_cuda.py
// compiles and runs this; no GPU needed).
//
// The kernels in csrc/cuda/depthwise_cuda_kernels.cuh are thin shells around
// the functions of csrc/cuda/depthwise_cuda_plan.h and depthwise_cuda_generic.h:
// block decomposition,
// shared-memory fills, per-thread compute with register ring buffers, stores,
// partial-sum indexing.  This program runs those same functions on the CPU,
// block by block and thread by thread, with the phases of each kernel in the
// order its __syncthreads impose (all fills, then all computes, then stores),
// and compares the results with a naive convolution in double.  Shared memory
// is emulated by separate, exactly sized heap buffers filled with NaN before
// every fill phase, so an out-of-tile read either trips AddressSanitizer or
// turns an output into NaN; every output / partial entry must be written
// exactly once.
//
// Input (stdin), one case per line:
//   dims N C D H W KD KH KW sd sh sw dd dh dw pd0 pd1 ph0 ph1 pw0 pw1 smem_limit target_blocks
// (2-D cases give D = KD = sd = dd = 1 and pd0 = pd1 = 0).  Output: one line per
// case, "OK ..." or "FAIL ..."; the exit status is 1 when any case failed.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cuda/depthwise_cuda_generic.h"
#include "cuda/depthwise_cuda_plan.h"

using namespace leanconv::cuda_dw;
using leanconv::ConvGeometry;

namespace {

struct Failure {
  std::string what;
};

struct Case {
  ConvGeometry g;
  size_t smem_limit;
  int64_t target_blocks;
};

// A read-only array whose loader checks every index.
struct Checked {
  const std::vector<float>* v;
  const char* name;
  float operator()(int64_t i) const {
    if (i < 0 || i >= static_cast<int64_t>(v->size()))
      throw Failure{std::string("load out of range from ") + name + " at " + std::to_string(i)};
    return (*v)[i];
  }
};

// Compares got with want; scale[i] = sum of |terms| of output i.
void compare(const char* what, const std::vector<float>& got, const std::vector<double>& want,
             const std::vector<double>& scale) {
  for (size_t i = 0; i < want.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(err <= 2e-6 * scale[i] + 1e-6)) {  // also catches NaN
      std::ostringstream os;
      os << what << ": element " << i << " got " << got[i] << " want " << want[i];
      throw Failure{os.str()};
    }
  }
}

void check_counts(const char* what, const std::vector<int>& count) {
  for (size_t i = 0; i < count.size(); ++i)
    if (count[i] != 1) {
      std::ostringstream os;
      os << what << ": element " << i << " written " << count[i] << " times";
      throw Failure{os.str()};
    }
}

void require(bool ok, const std::string& what) {
  if (!ok) throw Failure{what};
}

// ------------------------------------------------------------ references

struct Ref {
  std::vector<double> y, y_scale, gx, gx_scale, gw, gw_scale;
};

Ref reference(const ConvGeometry& g, const std::vector<float>& x, const std::vector<float>& w,
              const std::vector<float>& b, const std::vector<float>& gy) {
  Ref r;
  const int64_t ny = g.batch * g.channels * g.out_plane();
  r.y.assign(ny, 0), r.y_scale.assign(ny, 0);
  r.gx.assign(x.size(), 0), r.gx_scale.assign(x.size(), 0);
  r.gw.assign(w.size(), 0), r.gw_scale.assign(w.size(), 0);
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t c = 0; c < g.channels; ++c)
      for (int64_t od = 0; od < g.out[0]; ++od)
        for (int64_t oy = 0; oy < g.out[1]; ++oy)
          for (int64_t ox = 0; ox < g.out[2]; ++ox) {
            const int64_t yi = (((n * g.channels + c) * g.out[0] + od) * g.out[1] + oy) * g.out[2] + ox;
            r.y[yi] = b[c], r.y_scale[yi] = std::fabs(b[c]);
            for (int64_t kd = 0; kd < g.kernel[0]; ++kd)
              for (int64_t ky = 0; ky < g.kernel[1]; ++ky)
                for (int64_t kx = 0; kx < g.kernel[2]; ++kx) {
                  const int64_t id = od * g.stride[0] + kd * g.dilation[0] - g.pad[0];
                  const int64_t iy = oy * g.stride[1] + ky * g.dilation[1] - g.pad[1];
                  const int64_t ix = ox * g.stride[2] + kx * g.dilation[2] - g.pad[2];
                  if (id < 0 || id >= g.in[0] || iy < 0 || iy >= g.in[1] || ix < 0 || ix >= g.in[2]) continue;
                  const int64_t xi = (((n * g.channels + c) * g.in[0] + id) * g.in[1] + iy) * g.in[2] + ix;
                  const int64_t wi = ((c * g.kernel[0] + kd) * g.kernel[1] + ky) * g.kernel[2] + kx;
                  r.y[yi] += double(w[wi]) * x[xi];
                  r.y_scale[yi] += std::fabs(double(w[wi]) * x[xi]);
                  r.gx[xi] += double(w[wi]) * gy[yi];
                  r.gx_scale[xi] += std::fabs(double(w[wi]) * gy[yi]);
                  r.gw[wi] += double(gy[yi]) * x[xi];
                  r.gw_scale[wi] += std::fabs(double(gy[yi]) * x[xi]);
                }
          }
  return r;
}

// ------------------------------------------------------- forward replays

template <int TW>
struct Acc {
  float v[TW];
};

// Replays dw_forward_fast_kernel<float, TW, KWF> over every block.
template <int TW, int KWF>
std::vector<float> replay_forward_fast(const FwdFast& a, const std::vector<float>& x,
                                       const std::vector<float>& w, const std::vector<float>* b) {
  const int64_t ny = a.g.batch * a.g.channels * a.g.out[0] * a.g.out[1] * a.g.out[2];
  std::vector<float> y(ny, NAN);
  std::vector<int> count(ny, 0);
  std::vector<float> xs(static_cast<size_t>(a.rows) * a.pitch), ws(static_cast<size_t>(a.KH) * a.KW);
  std::vector<Acc<TW>> acc(a.nthreads);
  const Checked lx{&x, "x"}, lw{&w, "w"};
  for (int64_t blk = 0; blk < a.nblocks; ++blk) {
    const FwdBlock k = fwd_block(a, blk);
    for (auto& t : acc)
      for (float& v : t.v) v = 0.f;
    for (int64_t kd = 0; kd < a.g.kernel[0]; ++kd) {
      const int64_t id = input_depth(a.g, k.od, kd);
      if (id < 0 || id >= a.g.in[0]) continue;
      std::fill(xs.begin(), xs.end(), NAN);
      std::fill(ws.begin(), ws.end(), NAN);
      for (int tid = 0; tid < a.nthreads; ++tid) fwd_fill(a, k, id, kd, tid, xs.data(), ws.data(), lx, lw);
      // __syncthreads
      for (int tid = 0; tid < a.nthreads; ++tid) fwd_compute<TW, KWF>(a, xs.data(), ws.data(), tid, acc[tid].v);
      // __syncthreads
    }
    const float bv = b != nullptr ? (*b)[k.c] : 0.f;
    for (int tid = 0; tid < a.nthreads; ++tid)
      fwd_store<TW>(a, k, tid, acc[tid].v, bv, [&](int64_t i, float v) {
        require(i >= 0 && i < ny, "forward store out of range");
        y[i] = v;
        ++count[i];
      });
  }
  check_counts("forward (fast) coverage", count);
  return y;
}

// The launcher's choice of compiled kernel width (forward_fast_kernel_for).
template <int TW>
std::vector<float> replay_forward_fast_dispatch(const FwdFast& a, bool generic_width,
                                                const std::vector<float>& x, const std::vector<float>& w,
                                                const std::vector<float>* b) {
  if (!generic_width) switch (a.KW) {
      case 3: return replay_forward_fast<TW, 3>(a, x, w, b);
      case 5: return replay_forward_fast<TW, 5>(a, x, w, b);
      case 7: return replay_forward_fast<TW, 7>(a, x, w, b);
      case 13: return replay_forward_fast<TW, 13>(a, x, w, b);
      case 31: return replay_forward_fast<TW, 31>(a, x, w, b);
      default: break;
    }
  return replay_forward_fast<TW, 0>(a, x, w, b);
}

std::vector<float> replay_forward_direct(const ConvGeometry& g, const std::vector<float>& x,
                                         const std::vector<float>& w, const std::vector<float>* b) {
  const int64_t ny = g.batch * g.channels * g.out_plane();
  std::vector<float> y(ny);
  const Checked lx{&x, "x"}, lw{&w, "w"};
  for (int64_t i = 0; i < ny; ++i) {
    int64_t c = -1;
    float s = direct_forward_one<float>(g, i, lx, lw, c);
    require(c >= 0 && c < g.channels, "direct forward: channel out of range");
    if (b != nullptr) s += (*b)[c];
    y[i] = s;
  }
  return y;
}

// Forward of geometry g on every path the glue may take.  Returns the names
// of the paths that ran.
std::string check_forward_paths(const char* what, const Case& cs, const ConvGeometry& g, const std::vector<float>& x,
                                const std::vector<float>& w, const std::vector<float>* b,
                                const std::vector<double>& want, const std::vector<double>& scale) {
  std::string paths;
  FwdFast a;
  if (plan_forward_fast(g, cs.smem_limit, sizeof(float), a)) {
    require(a.nthreads % kWarp == 0 && a.nthreads > 0 && a.nthreads <= kMaxThreads, "bad thread count");
    require(a.bh * a.cgs == a.nthreads && a.bw == a.cgs * a.tw, "inconsistent tile");
    require(static_cast<size_t>(fwd_smem_floats(a)) * sizeof(float) == a.smem_bytes, "smem size mismatch");
    require(a.smem_bytes <= cs.smem_limit, "smem over the limit");
    require(a.pitch >= a.cols, "pitch < cols");
    for (int generic_width = 0; generic_width < 2; ++generic_width) {
      const auto y = a.tw == 16 ? replay_forward_fast_dispatch<16>(a, generic_width, x, w, b)
                                : replay_forward_fast_dispatch<8>(a, generic_width, x, w, b);
      compare((std::string(what) + " fast tw=" + std::to_string(a.tw)).c_str(), y, want, scale);
    }
    paths += "fast(tw=" + std::to_string(a.tw) + ",bh=" + std::to_string(a.bh) + ",bw=" +
             std::to_string(a.bw) + ",smem=" + std::to_string(a.smem_bytes) + ")";
  } else {
    paths += "direct";
  }
  compare((std::string(what) + " direct").c_str(), replay_forward_direct(g, x, w, b), want, scale);
  return paths;
}

// ------------------------------------------------------ grad_input replays

std::vector<float> replay_gather(const ConvGeometry& g, const std::vector<float>& gy, const std::vector<float>& w) {
  std::vector<float> gx(g.batch * g.channels * g.in_plane());
  const Checked lg{&gy, "gy"}, lw{&w, "w"};
  for (int64_t i = 0; i < static_cast<int64_t>(gx.size()); ++i) gx[i] = gather_input_one<float>(g, i, lg, lw);
  return gx;
}

std::vector<float> flip_kernel(const ConvGeometry& g, const std::vector<float>& w) {
  std::vector<float> f(w.size());
  for (int64_t c = 0; c < g.channels; ++c)
    for (int64_t kd = 0; kd < g.kernel[0]; ++kd)
      for (int64_t ky = 0; ky < g.kernel[1]; ++ky)
        for (int64_t kx = 0; kx < g.kernel[2]; ++kx)
          f[((c * g.kernel[0] + kd) * g.kernel[1] + ky) * g.kernel[2] + kx] =
              w[((c * g.kernel[0] + (g.kernel[0] - 1 - kd)) * g.kernel[1] + (g.kernel[1] - 1 - ky)) * g.kernel[2] +
                (g.kernel[2] - 1 - kx)];
  return f;
}

// -------------------------------------------------- weight-gradient replays

// dw_wgrad_fast_kernel<float> + dw_reduce_partials_kernel.
std::vector<float> replay_wgrad_fast(const WgFast& a, const std::vector<float>& gy, const std::vector<float>& x) {
  const ConvGeometry& g = a.g;
  std::vector<float> partial(g.channels * a.S * a.taps, NAN);
  std::vector<int> count(partial.size(), 0);
  std::vector<float> xs(static_cast<size_t>(a.rows) * a.px), gs(static_cast<size_t>(kWgRows) * a.pg);
  struct LaneAcc {
    float v[kWgU][kWgT];
  };
  std::vector<LaneAcc> acc(a.nthreads);
  const Checked lx{&x, "x"}, lg{&gy, "gy"};
  for (int64_t blk = 0; blk < a.nblocks; ++blk) {
    const WgBlock k = wg_block(a, blk);
    require(k.c >= 0 && k.c < g.channels && k.s >= 0 && k.s < a.S && k.kd >= 0 && k.kd < g.kernel[0],
            "bad block");
    for (auto& l : acc)
      for (auto& row : l.v)
        for (float& v : row) v = 0.f;
    const int64_t q_end = min64((k.s + 1) * a.chunk, a.tiles);
    for (int64_t q = k.s * a.chunk; q < q_end; ++q) {
      const WgTile tile = wg_tile(a, q);
      const int64_t id = input_depth(g, tile.od, k.kd);
      if (id < 0 || id >= g.in[0]) continue;
      std::fill(xs.begin(), xs.end(), NAN);
      std::fill(gs.begin(), gs.end(), NAN);
      for (int tid = 0; tid < a.nthreads; ++tid) wg_fill(a, k.c, tile, id, tid, xs.data(), gs.data(), lx, lg);
      // __syncthreads
      for (int tid = 0; tid < a.nthreads; ++tid) {
        const int warp = tid / kWarp, lane = tid % kWarp;
        int ky0 = 0, kx0 = 0;
        if (wg_warp_taps(a, k.group, warp, ky0, kx0) && tile.oy0 + lane < g.out[1])
          wg_compute(a, xs.data(), gs.data(), lane, ky0, kx0, wg_tile_width(a, tile), acc[tid].v);
      }
      // __syncthreads
    }
    for (int warp = 0; warp < a.nwarps; ++warp) {
      int ky0 = 0, kx0 = 0;
      if (!wg_warp_taps(a, k.group, warp, ky0, kx0)) continue;
      for (int u = 0; u < kWgU; ++u)
        for (int t = 0; t < kWgT; ++t) {
          float v[kWarp];  // the __shfl_xor_sync butterfly, lane by lane
          for (int l = 0; l < kWarp; ++l) v[l] = acc[warp * kWarp + l].v[u][t];
          for (int off = kWarp / 2; off > 0; off >>= 1) {
            float nv[kWarp];
            for (int l = 0; l < kWarp; ++l) nv[l] = v[l] + v[l ^ off];
            for (int l = 0; l < kWarp; ++l) v[l] = nv[l];
          }
          const int ky = ky0 + u, kx = kx0 + t;
          if (ky < a.KH && kx < a.KW) {
            const int64_t i = wg_partial_index(a, k, ky, kx);
            require(i >= 0 && i < static_cast<int64_t>(partial.size()), "partial index out of range");
            partial[i] = v[0];
            ++count[i];
          }
        }
    }
  }
  check_counts("weight gradient (fast) partial coverage", count);
  std::vector<float> gw(g.channels * a.taps);
  for (int64_t i = 0; i < static_cast<int64_t>(gw.size()); ++i)
    gw[i] = reduce_partials_one(partial.data(), i, a.S, a.taps);
  return gw;
}

// dw_wgrad_generic_kernel<float, float> + dw_reduce_partials_kernel.
std::vector<float> replay_wgrad_generic(const WgGeneric& a, const std::vector<float>& gy,
                                        const std::vector<float>& x) {
  std::vector<float> partial(a.g.channels * a.S * a.taps, NAN);
  std::vector<int> count(partial.size(), 0);
  const Checked lx{&x, "x"}, lg{&gy, "gy"};
  std::vector<float> red(kGenericThreads);
  for (int64_t blk = 0; blk < a.nblocks; ++blk) {
    const WgGenericBlock k = wg_generic_block(a, blk);
    const int64_t begin = k.s * a.chunk, end = min64(begin + a.chunk, a.positions);
    for (int tid = 0; tid < kGenericThreads; ++tid) {
      float s = 0;
      for (int64_t pos = begin + tid; pos < end; pos += kGenericThreads) s += wg_generic_term<float>(a, k, pos, lg, lx);
      red[tid] = s;
    }
    for (int step = kGenericThreads / 2; step > 0; step >>= 1)
      for (int tid = 0; tid < step; ++tid) red[tid] += red[tid + step];
    const int64_t i = wg_generic_partial_index(a, k);
    require(i >= 0 && i < static_cast<int64_t>(partial.size()), "generic partial index out of range");
    partial[i] = red[0];
    ++count[i];
  }
  check_counts("weight gradient (generic) partial coverage", count);
  std::vector<float> gw(a.g.channels * a.taps);
  for (int64_t i = 0; i < static_cast<int64_t>(gw.size()); ++i)
    gw[i] = reduce_partials_one(partial.data(), i, a.S, a.taps);
  return gw;
}

// ------------------------------------------------------------------ driver

bool parse(const std::string& line, Case& cs, std::string& desc) {
  std::istringstream in(line);
  int64_t dims, v[22];
  if (!(in >> dims)) return false;
  for (int64_t& t : v)
    if (!(in >> t)) throw Failure{"malformed case: " + line};
  desc = line;
  // the geometry as conv_geometry() fills it for the ops (csrc/ops)
  ConvGeometry& g = cs.g;
  g.spatial_dims = static_cast<int>(dims);
  g.batch = v[0], g.channels = v[1];
  for (int a = 0; a < 3; ++a) {
    g.in[a] = v[2 + a];
    g.kernel[a] = v[5 + a];
    g.stride[a] = v[8 + a];
    g.dilation[a] = v[11 + a];
    g.pad[a] = v[14 + 2 * a];
    g.pad_after[a] = v[15 + 2 * a];
    g.out[a] = leanconv::conv_out_size(g.in[a], g.kernel[a], g.stride[a], g.pad[a], g.pad_after[a],
                                       g.dilation[a]);
  }
  cs.smem_limit = static_cast<size_t>(v[20]);
  cs.target_blocks = v[21];
  if (g.out[0] < 1 || g.out[1] < 1 || g.out[2] < 1)
    throw Failure{"kernel larger than the padded input: " + line};
  return true;
}

std::string run_case(const Case& cs, uint32_t seed) {
  const ConvGeometry& g = cs.g;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> U(-1.f, 1.f);
  auto rnd = [&](int64_t n) {
    std::vector<float> v(n);
    for (float& t : v) t = U(rng);
    return v;
  };
  const auto x = rnd(g.batch * g.channels * g.in_plane()), w = rnd(g.channels * g.kernel_volume()),
             b = rnd(g.channels), gy = rnd(g.batch * g.channels * g.out_plane());
  const Ref ref = reference(g, x, w, b, gy);
  std::string out = "fwd=" + check_forward_paths("forward", cs, g, x, w, &b, ref.y, ref.y_scale);

  compare("grad_input gather", replay_gather(g, gy, w), ref.gx, ref.gx_scale);
  out += " gi=gather";
  if (unit_stride(g)) {
    const ConvGeometry q = grad_input_as_forward(g);
    out += "+flipped:" + check_forward_paths("grad_input (flipped forward)", cs, q, gy, flip_kernel(g, w),
                                             nullptr, ref.gx, ref.gx_scale);
  }

  WgFast wf;
  if (plan_wgrad_fast(g, cs.smem_limit, cs.target_blocks, wf)) {
    require(wf.nthreads == wf.nwarps * kWarp && wf.nthreads <= kMaxThreads, "bad wgrad thread count");
    require(static_cast<size_t>(wg_smem_floats(wf)) * sizeof(float) == wf.smem_bytes, "wgrad smem mismatch");
    require(wf.smem_bytes <= cs.smem_limit, "wgrad smem over the limit");
    require(int64_t(wf.groups) * wf.nwarps >= int64_t(wf.nby) * wf.nbx, "tap blocks not covered");
    compare("grad_weight fast", replay_wgrad_fast(wf, gy, x), ref.gw, ref.gw_scale);
    out += " gw=fast(S=" + std::to_string(wf.S) + ",chunk=" + std::to_string(wf.chunk) +
           ",twg=" + std::to_string(wf.twg) + ",warps=" + std::to_string(wf.nwarps) + ")";
  } else {
    out += " gw=generic";
  }
  const WgGeneric wgen = plan_wgrad_generic(g, cs.target_blocks);
  compare("grad_weight generic", replay_wgrad_generic(wgen, gy, x), ref.gw, ref.gw_scale);
  out += "+generic(S=" + std::to_string(wgen.S) + ")";
  return out;
}

}  // namespace

int main() {
  std::string line;
  int failed = 0, ran = 0;
  uint32_t seed = 1;
  while (std::getline(std::cin, line)) {
    if (line.empty() || line[0] == '#') continue;
    Case cs;
    std::string desc;
    try {
      if (!parse(line, cs, desc)) continue;
      const std::string paths = run_case(cs, seed++);
      std::printf("OK   [%s] %s\n", desc.c_str(), paths.c_str());
    } catch (const Failure& f) {
      std::printf("FAIL [%s] %s\n", line.c_str(), f.what.c_str());
      ++failed;
    }
    ++ran;
  }
  std::printf("%d cases, %d failed\n", ran, failed);
  return failed == 0 && ran > 0 ? 0 : 1;
}
