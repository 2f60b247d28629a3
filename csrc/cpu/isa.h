// Run-time choice among the CPU kernel variants compiled for several
// instruction sets (see LEANCONV_CPU_ISAS in CMakeLists.txt).
#pragma once

namespace leanconv::cpu {

enum class Isa { generic = 0, avx2 = 1, avx512 = 2 };

// The best compiled variant this processor supports.  The environment variable
// LEANCONV_CPU_ISA (generic, avx2, avx512) can lower the choice, never raise it
// above what the processor supports.
Isa selected_isa();
const char* isa_name(Isa isa);

}  // namespace leanconv::cpu

// Declares `decl` in every ISA namespace (definitions exist only for the
// variants that were compiled; LEANCONV_CPU_DISPATCH only calls those).
#define LEANCONV_DECLARE_FOR_ISAS(decl)      \
  namespace leanconv::cpu::generic { decl; } \
  namespace leanconv::cpu::avx2 { decl; }    \
  namespace leanconv::cpu::avx512 { decl; }

#ifdef LEANCONV_HAVE_ISA_avx512
#define LEANCONV_CASE_AVX512(fn, ...) \
  case ::leanconv::cpu::Isa::avx512: return ::leanconv::cpu::avx512::fn(__VA_ARGS__);
#else
#define LEANCONV_CASE_AVX512(fn, ...)
#endif
#ifdef LEANCONV_HAVE_ISA_avx2
#define LEANCONV_CASE_AVX2(fn, ...) \
  case ::leanconv::cpu::Isa::avx2: return ::leanconv::cpu::avx2::fn(__VA_ARGS__);
#else
#define LEANCONV_CASE_AVX2(fn, ...)
#endif
#ifdef LEANCONV_HAVE_ISA_generic
#define LEANCONV_CASE_GENERIC(fn, ...) \
  case ::leanconv::cpu::Isa::generic: return ::leanconv::cpu::generic::fn(__VA_ARGS__);
#else
#define LEANCONV_CASE_GENERIC(fn, ...)
#endif

// Calls leanconv::cpu::<isa>::fn(args...) for the selected ISA.
#define LEANCONV_CPU_DISPATCH(fn, ...)                 \
  switch (::leanconv::cpu::selected_isa()) {           \
    LEANCONV_CASE_AVX512(fn, __VA_ARGS__)              \
    LEANCONV_CASE_AVX2(fn, __VA_ARGS__)                \
    LEANCONV_CASE_GENERIC(fn, __VA_ARGS__)             \
    default: break;                                    \
  }                                                    \
  ::leanconv::cpu::no_isa_variant(#fn)

namespace leanconv::cpu {
[[noreturn]] void no_isa_variant(const char* fn);
}
