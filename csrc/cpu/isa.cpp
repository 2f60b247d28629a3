#include "cpu/isa.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace leanconv::cpu {

namespace {

bool compiled(Isa isa) {
  switch (isa) {
#ifdef LEANCONV_HAVE_ISA_avx512
    case Isa::avx512: return true;
#endif
#ifdef LEANCONV_HAVE_ISA_avx2
    case Isa::avx2: return true;
#endif
#ifdef LEANCONV_HAVE_ISA_generic
    case Isa::generic: return true;
#endif
    default: return false;
  }
}

bool supported(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  switch (isa) {
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("fma");
    case Isa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c");
    case Isa::generic: return true;
  }
  return false;
#else
  return isa == Isa::generic;
#endif
}

Isa choose() {
  Isa cap = Isa::avx512;
  if (const char* env = std::getenv("LEANCONV_CPU_ISA")) {
    std::string s(env);
    if (s == "generic") cap = Isa::generic;
    else if (s == "avx2") cap = Isa::avx2;
    else if (s == "avx512" || s.empty()) cap = Isa::avx512;
    else throw std::invalid_argument("LEANCONV_CPU_ISA must be generic, avx2 or avx512, got '" + s + "'");
  }
  for (int i = static_cast<int>(cap); i >= 0; --i) {
    Isa isa = static_cast<Isa>(i);
    if (compiled(isa) && supported(isa)) return isa;
  }
  // Nothing compiled runs here (e.g. an avx2-only build on an older CPU).
  return Isa::generic;
}

}  // namespace

Isa selected_isa() {
  static const Isa isa = choose();
  return isa;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    case Isa::generic: return "generic";
  }
  return "unknown";
}

void no_isa_variant(const char* fn) {
  throw std::runtime_error(std::string("leanconv: no CPU kernel variant of ") + fn +
                           " runs on this processor; rebuild with LEANCONV_CPU_ISAS=generic");
}

}  // namespace leanconv::cpu
