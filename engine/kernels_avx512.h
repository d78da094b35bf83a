/*
 * kernels_avx512.h — the AVX-512 kernel tables (kernels_avx512.c) and how
 * kernels.c gets them.
 *
 * kernels_avx512.c is one source compiled up to four times (Makefile.am),
 * each build exporting one fill function:
 *   avx512               -mavx512f/bw/vl/dq: maddubs + madd for int8 dots;
 *   avx512vnni           the same plus -mavx512vnni: vpdpbusd;
 *   avx512-emulated      compiled for AVX2 only, the AVX-512 intrinsics
 *   avx512vnni-emulated  supplied by SIMDe (tests only; see kernels.c).
 * A fill function copies lb_kernels_avx2 (every AVX-512 CPU has AVX2) into
 * *k and replaces the entries kernels_avx512.c has AVX-512 versions of. The
 * native ones are compiled for AVX-512 themselves (the compiler may copy the
 * table with AVX-512 moves), so kernels.c calls them, and uses their tables,
 * only where cpuid says the CPU has the ISA.
 */
#ifndef LB_KERNELS_AVX512_H
#define LB_KERNELS_AVX512_H

#include "types.h"

void lb_kernels_fill_avx512(struct lb_kernels *k);
void lb_kernels_fill_avx512vnni(struct lb_kernels *k);
void lb_kernels_fill_avx512_emulated(struct lb_kernels *k);
void lb_kernels_fill_avx512vnni_emulated(struct lb_kernels *k);

#endif
