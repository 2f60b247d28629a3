// CPU implementation of wave_step_: threading and dtype dispatch; the
// arithmetic is in wave_kernel.cpp (one variant per ISA).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <utility>

#include "cpu/wave_kernel.h"
#include "ops/glue.h"
#include "ops/wave.h"

namespace leanconv {

namespace {

// fields smaller than this are never split over threads (~362 x 362 nodes)
constexpr int64_t kRowSplitMinNodes = 131072;

void wave_step_cpu(const at::Tensor& prev, const at::Tensor& now, const at::Tensor& a_k,
                   const std::optional<at::Tensor>& b, const std::optional<at::Tensor>& negd,
                   const std::optional<at::Tensor>& force, const std::optional<at::Tensor>& a_f, double k0,
                   double k1, double k2, int64_t steps) {
  const WaveStepParams p = wave_step_params(prev, now, a_k, b, negd, force, a_f, k0, k1, k2, steps);
  check_device(prev, "prev", at::kCPU);
  if (steps == 0 || p.batch == 0) return;
  AT_DISPATCH_FLOATING_TYPES(prev.scalar_type(), "leanconv::wave_step_ (cpu)", [&] {
    const WaveStepData<scalar_t> d = wave_step_data<scalar_t>(prev, now, a_k, b, negd, force, a_f);
    // Splitting the rows of one field costs a thread barrier per step, which is
    // worth it only for large fields (and hurts a lot on a busy machine).
    const int64_t threads = at::get_num_threads();
    if (p.batch >= threads || p.plane() < kRowSplitMinNodes) {
      // Every step of an item on one thread, one parallel region for the whole
      // call; the threads take items from a shared counter, so a thread that
      // the OS runs less (a busy machine) just does fewer items.
      // (the dispatch macro returns from the enclosing function: keep it in its own lambda)
      auto one_item = [&](int64_t item) { LEANCONV_CPU_DISPATCH(wave_steps_items, p, d, steps, item, item + 1); };
      std::atomic<int64_t> next{0};
      at::parallel_for(0, std::min(threads, p.batch), 1, [&](int64_t, int64_t) {
        for (int64_t item = next.fetch_add(1); item < p.batch; item = next.fetch_add(1)) one_item(item);
      });
      return;
    }
    // few large fields: split the rows of each step over the threads
    scalar_t* cur = d.now;
    scalar_t* old = d.prev;
    const int64_t grain = std::max<int64_t>(1, 16384 / p.width);
    for (int64_t s = 0; s < steps; ++s) {
      at::parallel_for(0, p.batch * p.height, grain, [&](int64_t begin, int64_t end) {
        LEANCONV_CPU_DISPATCH(wave_step_rows, p, d, cur, old, begin, end);
      });
      std::swap(cur, old);
    }
  });
}

void wave_fd4_step_cpu(const at::Tensor& prev, const at::Tensor& now, const at::Tensor& cc,
                       c10::ArrayRef<double> constants, c10::ArrayRef<double> signs, int64_t steps,
                       const std::optional<at::Tensor>& force, const std::optional<at::Tensor>& a_f,
                       const std::optional<at::Tensor>& b, const std::optional<at::Tensor>& negd) {
  const WaveFd4Params p = wave_fd4_params(prev, now, cc, constants, signs, steps, force, a_f, b, negd);
  check_device(prev, "prev", at::kCPU);
  if (steps == 0 || p.batch == 0) return;
  AT_DISPATCH_FLOATING_TYPES(prev.scalar_type(), "leanconv::wave_fd4_step_ (cpu)", [&] {
    const WaveFd4Data<scalar_t> d = wave_fd4_data<scalar_t>(prev, now, cc, force, a_f, b, negd);
    // every step of an item on one thread, the threads taking items from a shared counter
    auto one_item = [&](int64_t item) { LEANCONV_CPU_DISPATCH(wave_fd4_items, p, d, steps, item, item + 1); };
    std::atomic<int64_t> next{0};
    at::parallel_for(0, std::min<int64_t>(at::get_num_threads(), p.batch), 1, [&](int64_t, int64_t) {
      for (int64_t item = next.fetch_add(1); item < p.batch; item = next.fetch_add(1)) one_item(item);
    });
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, CPU, m) {
  m.impl("wave_step_", &wave_step_cpu);
  m.impl("wave_fd4_step_", &wave_fd4_step_cpu);
}

}  // namespace leanconv
