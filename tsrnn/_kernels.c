/* The C kernels of tsrnn (declared in _kernels.h, called from _cells.pyx).
 *
 * Why C and not Cython: gcc vectorises these loops only in forms Cython does
 * not emit (restrict row pointers, GCC vector types), and Cython cannot attach
 * target_clones. Why one function per element type, written out: float32 is
 * the fast path (inline vectorisable sigmoid/tanh below), float64 the accuracy
 * reference (libm), and the two differ in more than the type.
 *
 * Instruction sets. The default build targets baseline x86-64 (no
 * -march=native: wheels must run anywhere). Two mechanisms pick wider code at
 * run time:
 *  - TSRNN_CLONES (gcc's target_clones): the activations and the gate loops
 *    are compiled three times, for x86-64-v4 (AVX-512), x86-64-v3 (AVX2 +
 *    FMA) and the baseline (SSE2); the dynamic loader picks one per process.
 *  - the recurrent micro-kernel exists in a 512-bit form (target("avx512f"),
 *    8 x 32 float tile) and a 256-bit one, the latter cloned for x86-64-v3 and
 *    the baseline. Its panel width depends on the form, so the form is chosen
 *    once per process (tsrnn_avx512) and packing follows it.
 * Other compilers and architectures get the baseline code of every function.
 *
 * Determinism. Nothing here depends on the thread count or on which rows
 * share a call: the gate loops work one row at a time, and the micro-kernel
 * accumulates every output element as one dot product in k order.
 */
#include "_kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define TSRNN_X86_CLONES 1
#define TSRNN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
/* The 256-bit micro-kernel never runs where AVX-512F exists (the 512-bit one
 * does), so it needs no x86-64-v4 clone. */
#define TSRNN_CLONES_NO_V4 __attribute__((target_clones("arch=x86-64-v3", "default")))
#define TSRNN_AVX512F __attribute__((target("avx512f")))
#else
#define TSRNN_X86_CLONES 0
#define TSRNN_CLONES
#define TSRNN_CLONES_NO_V4
#define TSRNN_AVX512F
#endif

/* Inlined into the caller (and so into each of its clones) before the
 * vectoriser runs: the row functions below only vectorise in that form. */
#define TSRNN_INLINE static inline __attribute__((always_inline))

/* ======================================================================== */
/* Runtime facts                                                             */
/* ======================================================================== */

int tsrnn_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int tsrnn_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int tsrnn_avx512(void)
{
#if TSRNN_X86_CLONES
    static int has = -1;  /* a benign race: every thread stores the same value */
    if (has < 0)
        has = __builtin_cpu_supports("avx512f") ? 1 : 0;
    return has;
#else
    return 0;
#endif
}

/* ======================================================================== */
/* Finiteness scan (for the Python validation)                               */
/* ======================================================================== */

/* 1 when no element is NaN or +-inf: those are exactly the values whose
 * exponent bits are all ones. An integer test, so gcc vectorises it without
 * -ffast-math, and one C call replaces np.isfinite(a).all() (a temporary and
 * two numpy calls, about a microsecond per array, several per batch-1 call). */
TSRNN_CLONES int tsrnn_all_finite_f32(const float *x, ptrdiff_t n)
{
    uint32_t bad = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, sizeof bits);
        bad |= (bits & 0x7f800000u) == 0x7f800000u;
    }
    return !bad;
}

TSRNN_CLONES int tsrnn_all_finite_f64(const double *x, ptrdiff_t n)
{
    uint64_t bad = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        uint64_t bits;
        memcpy(&bits, x + i, sizeof bits);
        bad |= (bits & 0x7ff0000000000000u) == 0x7ff0000000000000u;
    }
    return !bad;
}

/* ======================================================================== */
/* Activations                                                               */
/* ======================================================================== */

/* Vectorisable float32 exp, sigmoid and tanh.
 *
 * libm's expf/tanhf are scalar calls, which keeps the gate loops from
 * vectorising; in the forward pass they cost more than the GEMMs for H <= 128.
 * Here e^x = 2^n e^r with n = round(x / ln 2) (the 1.5 * 2^23 trick rounds
 * without a libm call), r = x - n ln 2 split in two constants (Cody-Waite),
 * and e^r from its Taylor series to r^7: |r| <= ln2/2 bounds the truncation
 * error by 5.3e-9, below float32 resolution. 2^n is built in the exponent
 * bits. tanh(x) = expm1(2x) / (expm1(2x) + 2) with expm1 = s*q + (s - 1) keeps
 * full relative accuracy near 0. Error (tests/test_activations.py): under
 * 2e-7 (sigmoid) and 3e-7 (tanh) absolute; 8.9e-8 and 1.5e-7 measured. */
TSRNN_INLINE float exp_parts_f32(float x, float *scale)
{
    /* Returns q = e^r - 1 and sets *scale = 2^n, so e^x = scale * (1 + q). */
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = (x - n * 0.693145751953125f) - n * 1.42860682030941723212e-6f;
    float q = 1.0f / 5040.0f;
    q = q * r + 1.0f / 720.0f;
    q = q * r + 1.0f / 120.0f;
    q = q * r + 1.0f / 24.0f;
    q = q * r + 1.0f / 6.0f;
    q = q * r + 0.5f;
    q = q * r + 1.0f;
    q = q * r;
    int32_t bits = ((int32_t) n + 127) << 23;
    memcpy(scale, &bits, sizeof(float));
    return q;
}

TSRNN_INLINE float sigmoid_f32(float x)
{
    /* e^87 is near FLT_MAX; the clamps are selects once vectorised
     * (-fno-trapping-math), and NaN passes through them. */
    float v = -x, s;
    v = v < -87.0f ? -87.0f : v;
    v = v > 87.0f ? 87.0f : v;
    const float q = exp_parts_f32(v, &s);
    return 1.0f / (1.0f + (s + s * q));
}

TSRNN_INLINE float tanh_f32(float x)
{
    /* |x| >= 9 rounds to +-1 in float32. */
    float v = x, s;
    v = v < -9.0f ? -9.0f : v;
    v = v > 9.0f ? 9.0f : v;
    const float q = exp_parts_f32(2.0f * v, &s);
    const float em = s * q + (s - 1.0f);
    return em / (em + 2.0f);
}

/* float64 is the accuracy reference: libm. */
TSRNN_INLINE double sigmoid_f64(double x) { return 1.0 / (1.0 + exp(-x)); }
TSRNN_INLINE double tanh_f64(double x) { return tanh(x); }

TSRNN_CLONES void tsrnn_sigmoid_f32(float *x, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        x[i] = sigmoid_f32(x[i]);
}

TSRNN_CLONES void tsrnn_tanh_f32(const float *x, float *out, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = tanh_f32(x[i]);
}

void tsrnn_sigmoid_f64(double *x, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        x[i] = sigmoid_f64(x[i]);
}

void tsrnn_tanh_f64(const double *x, double *out, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = tanh_f64(x[i]);
}

/* ======================================================================== */
/* Recurrent GEMM on pre-packed weights                                      */
/* ======================================================================== */

/* Each step multiplies a chunk of nb <= 64 rows by W_hh. BLAS repacks the
 * whole of W_hh on every such call; with one call per step and chunk that
 * packing cost as much as the arithmetic (perf, LSTM H=256: 30% of the time in
 * sgemm_itcopy/incopy against 38% in the kernel). Here W_hh is packed once per
 * layer call into panels of NR columns, and a register-blocked MR x NR
 * micro-kernel streams the panels from cache. NR is two vectors: 16 floats
 * (256-bit) or 32 (512-bit, where 32 registers hold an 8 x 32 float tile).
 *
 * Packed layout: panel p holds columns [p*NR, p*NR+NR) of the product's right
 * operand for every k, zero-padded past n:
 *     packed[(p*k + kk)*NR + c] = Bop[kk, p*NR + c].
 *
 * The four micro-kernels below are the same loop at two vector widths and two
 * element types, written out because a GCC vector type's size must be a
 * constant: only the vector type, MR and the target differ. Rows past m
 * repeat the last row, so the inner loop always runs MR rows with no
 * remainder branch, and only the valid rows are stored. */

typedef float v8sf __attribute__((vector_size(32), aligned(4)));
typedef double v4df __attribute__((vector_size(32), aligned(8)));
typedef float v16sf __attribute__((vector_size(64), aligned(4)));
typedef double v8df __attribute__((vector_size(64), aligned(8)));

/* Store (or add) the first nc of the nr values of one row of a tile. */
TSRNN_INLINE void store_tail_f32(float *restrict cr, const float *restrict tile, int nc,
                                 int accumulate)
{
    if (accumulate)
        for (int q = 0; q < nc; q++) cr[q] += tile[q];
    else
        for (int q = 0; q < nc; q++) cr[q] = tile[q];
}

TSRNN_INLINE void store_tail_f64(double *restrict cr, const double *restrict tile, int nc,
                                 int accumulate)
{
    if (accumulate)
        for (int q = 0; q < nc; q++) cr[q] += tile[q];
    else
        for (int q = 0; q < nc; q++) cr[q] = tile[q];
}

enum { MR256 = 6, MR512 = 8, ROW_PATH_MAX = 2 };
/* Panel widths (two vectors) of the 256-bit kernels; the 512-bit ones are twice. */
enum { TSRNN_NR_F32_256 = 16, TSRNN_NR_F64_256 = 8 };

/* Store (or add) one row of a float32 tile, two vectors wide: whole-vector
 * stores for a full panel, the first nc values of a partial one. */
TSRNN_INLINE void store_v8sf(float *cr, const v8sf acc[2], int nc, int accumulate)
{
    /* acc by pointer: a vector passed by value would change the ABI of
       the baseline clone (-Wpsabi); inlined, it costs nothing. */
    enum { VL = 8 };
    if (nc == 2 * VL && accumulate) {
        *(v8sf *) cr += acc[0];
        *(v8sf *) (cr + VL) += acc[1];
    } else if (nc == 2 * VL) {
        *(v8sf *) cr = acc[0];
        *(v8sf *) (cr + VL) = acc[1];
    } else {
        float tile[2 * VL];
        memcpy(tile, &acc[0], sizeof(v8sf));
        memcpy(tile + VL, &acc[1], sizeof(v8sf));
        store_tail_f32(cr, tile, nc, accumulate);
    }
}

/* One row of A against every panel: the rows an MR-row tile would waste work
 * on (a batch of one, the last rows of a chunk), since the tile computes MR
 * rows to store one. Four panels at a time give eight independent accumulator
 * chains, enough to hide the FMA latency. But each row streams all of the
 * packed weights, where a tile streams them once for MR rows: for 3 or more
 * leftover rows a partial tile wins once W_hh outgrows the caches (H = 256,
 * four leftover rows of a 64-row chunk: one-row path 28% slower), hence
 * ROW_PATH_MAX. Each output element is still the tile's FMA chain in k order,
 * so a row gets the same bits whichever path computes it
 * (tests/test_functional.py checks every chunk size bitwise).
 * Only float32 has it: float64 is the accuracy reference, not a fast path. */
TSRNN_INLINE void row256_f32(int n, int k, const float *a, const float *bp, float *c,
                             int accumulate, int backwards)
{
    enum { VL = 8, NR = 2 * VL, NP = 4 };
    const int panels = (n + NR - 1) / NR;
    const size_t ps = (size_t) k * NR;  /* panel stride */
    const int groups = (panels + NP - 1) / NP;
    for (int gi = 0; gi < groups; gi++) {
        const int p = (backwards ? groups - 1 - gi : gi) * NP;
        const int np = panels - p < NP ? panels - p : NP;
        const float *pan = bp + (size_t) p * ps;
        v8sf acc[NP][2];
        for (int q = 0; q < NP; q++)
            acc[q][0] = acc[q][1] = (v8sf) {0};
        if (np == NP) {  /* constant trip count: the chains stay in registers */
            for (int kk = 0; kk < k; kk++) {
                const float av = a[kk];
                for (int q = 0; q < NP; q++) {
                    const float *b = pan + q * ps + (size_t) kk * NR;
                    acc[q][0] += av * *(const v8sf *) b;
                    acc[q][1] += av * *(const v8sf *) (b + VL);
                }
            }
        } else {
            for (int kk = 0; kk < k; kk++) {
                const float av = a[kk];
                for (int q = 0; q < np; q++) {
                    const float *b = pan + q * ps + (size_t) kk * NR;
                    acc[q][0] += av * *(const v8sf *) b;
                    acc[q][1] += av * *(const v8sf *) (b + VL);
                }
            }
        }
        for (int q = 0; q < np; q++) {
            const int col = (p + q) * NR;
            store_v8sf(c + col, acc[q], n - col < NR ? n - col : NR, accumulate);
        }
    }
}

TSRNN_CLONES_NO_V4 static void gemm256_f32(int m, int n, int k, const float *a, int lda,
                                           const float *bp, float *c, int ldc, int accumulate, int backwards)
{
    enum { VL = 8, NR = 2 * VL, MR = MR256 };
    /* Rows in tiles (the last one partial, rows past m repeating the last
     * row); the last m % MR rows go one by one when there are at most two
     * (see row256_f32). */
    const int m_tiles = m % MR <= ROW_PATH_MAX ? m - m % MR : m;
    const int panels = (n + NR - 1) / NR;
    for (int pi = 0; pi < panels; pi++) {
        const int p = backwards ? panels - 1 - pi : pi;
        const float *panel = bp + (size_t) p * k * NR;
        const int nc = n - p * NR < NR ? n - p * NR : NR;
        for (int i = 0; i < m_tiles; i += MR) {
            v8sf acc[MR][2];
            const float *ar[MR];
            for (int r = 0; r < MR; r++) {
                acc[r][0] = (v8sf) {0};
                acc[r][1] = (v8sf) {0};
                ar[r] = a + (size_t) (i + r < m ? i + r : m - 1) * lda;
            }
            for (int kk = 0; kk < k; kk++) {
                const v8sf b0 = *(const v8sf *) (panel + (size_t) kk * NR);
                const v8sf b1 = *(const v8sf *) (panel + (size_t) kk * NR + VL);
                for (int r = 0; r < MR; r++) {
                    const float av = ar[r][kk];
                    acc[r][0] += av * b0;
                    acc[r][1] += av * b1;
                }
            }
            for (int r = 0; r < MR && i + r < m; r++)
                store_v8sf(c + (size_t) (i + r) * ldc + p * NR, acc[r], nc,
                           accumulate);
        }
    }
    for (int i = m_tiles; i < m; i++)
        row256_f32(n, k, a + (size_t) i * lda, bp, c + (size_t) i * ldc, accumulate, backwards);
}

TSRNN_CLONES_NO_V4 static void gemm256_f64(int m, int n, int k, const double *a, int lda,
                                           const double *bp, double *c, int ldc, int accumulate, int backwards)
{
    enum { VL = 4, NR = 2 * VL, MR = MR256 };
    const int panels = (n + NR - 1) / NR;
    for (int pi = 0; pi < panels; pi++) {
        const int p = backwards ? panels - 1 - pi : pi;
        const double *panel = bp + (size_t) p * k * NR;
        const int nc = n - p * NR < NR ? n - p * NR : NR;
        for (int i = 0; i < m; i += MR) {
            const int mr = m - i < MR ? m - i : MR;
            v4df acc[MR][2];
            const double *ar[MR];
            for (int r = 0; r < MR; r++) {
                acc[r][0] = (v4df) {0};
                acc[r][1] = (v4df) {0};
                ar[r] = a + (size_t) (i + r < m ? i + r : m - 1) * lda;
            }
            for (int kk = 0; kk < k; kk++) {
                const v4df b0 = *(const v4df *) (panel + (size_t) kk * NR);
                const v4df b1 = *(const v4df *) (panel + (size_t) kk * NR + VL);
                for (int r = 0; r < MR; r++) {
                    const double av = ar[r][kk];
                    acc[r][0] += av * b0;
                    acc[r][1] += av * b1;
                }
            }
            for (int r = 0; r < mr; r++) {
                double *cr = c + (size_t) (i + r) * ldc + p * NR;
                if (nc == NR && accumulate) {
                    *(v4df *) cr += acc[r][0];
                    *(v4df *) (cr + VL) += acc[r][1];
                } else if (nc == NR) {
                    *(v4df *) cr = acc[r][0];
                    *(v4df *) (cr + VL) = acc[r][1];
                } else {
                    double tile[NR];
                    memcpy(tile, &acc[r][0], sizeof(v4df));
                    memcpy(tile + VL, &acc[r][1], sizeof(v4df));
                    store_tail_f64(cr, tile, nc, accumulate);
                }
            }
        }
    }
}

#if TSRNN_X86_CLONES
TSRNN_INLINE void store_v16sf(float *cr, const v16sf acc[2], int nc, int accumulate)
{
    /* acc by pointer: a vector passed by value would change the ABI of
       the baseline clone (-Wpsabi); inlined, it costs nothing. */
    enum { VL = 16 };
    if (nc == 2 * VL && accumulate) {
        *(v16sf *) cr += acc[0];
        *(v16sf *) (cr + VL) += acc[1];
    } else if (nc == 2 * VL) {
        *(v16sf *) cr = acc[0];
        *(v16sf *) (cr + VL) = acc[1];
    } else {
        float tile[2 * VL];
        memcpy(tile, &acc[0], sizeof(v16sf));
        memcpy(tile + VL, &acc[1], sizeof(v16sf));
        store_tail_f32(cr, tile, nc, accumulate);
    }
}

/* row256_f32 at 512 bits. */
TSRNN_INLINE void row512_f32(int n, int k, const float *a, const float *bp, float *c,
                             int accumulate, int backwards)
{
    enum { VL = 16, NR = 2 * VL, NP = 4 };
    const int panels = (n + NR - 1) / NR;
    const size_t ps = (size_t) k * NR;
    const int groups = (panels + NP - 1) / NP;
    for (int gi = 0; gi < groups; gi++) {
        const int p = (backwards ? groups - 1 - gi : gi) * NP;
        const int np = panels - p < NP ? panels - p : NP;
        const float *pan = bp + (size_t) p * ps;
        v16sf acc[NP][2];
        for (int q = 0; q < NP; q++)
            acc[q][0] = acc[q][1] = (v16sf) {0};
        if (np == NP) {
            for (int kk = 0; kk < k; kk++) {
                const float av = a[kk];
                for (int q = 0; q < NP; q++) {
                    const float *b = pan + q * ps + (size_t) kk * NR;
                    acc[q][0] += av * *(const v16sf *) b;
                    acc[q][1] += av * *(const v16sf *) (b + VL);
                }
            }
        } else {
            for (int kk = 0; kk < k; kk++) {
                const float av = a[kk];
                for (int q = 0; q < np; q++) {
                    const float *b = pan + q * ps + (size_t) kk * NR;
                    acc[q][0] += av * *(const v16sf *) b;
                    acc[q][1] += av * *(const v16sf *) (b + VL);
                }
            }
        }
        for (int q = 0; q < np; q++) {
            const int col = (p + q) * NR;
            store_v16sf(c + col, acc[q], n - col < NR ? n - col : NR, accumulate);
        }
    }
}

TSRNN_AVX512F static void gemm512_f32(int m, int n, int k, const float *a, int lda,
                                      const float *bp, float *c, int ldc, int accumulate, int backwards)
{
    enum { VL = 16, NR = 2 * VL, MR = MR512 };
    const int m_tiles = m % MR <= ROW_PATH_MAX ? m - m % MR : m;
    const int panels = (n + NR - 1) / NR;
    for (int pi = 0; pi < panels; pi++) {
        const int p = backwards ? panels - 1 - pi : pi;
        const float *panel = bp + (size_t) p * k * NR;
        const int nc = n - p * NR < NR ? n - p * NR : NR;
        for (int i = 0; i < m_tiles; i += MR) {
            v16sf acc[MR][2];
            const float *ar[MR];
            for (int r = 0; r < MR; r++) {
                acc[r][0] = (v16sf) {0};
                acc[r][1] = (v16sf) {0};
                ar[r] = a + (size_t) (i + r < m ? i + r : m - 1) * lda;
            }
            for (int kk = 0; kk < k; kk++) {
                const v16sf b0 = *(const v16sf *) (panel + (size_t) kk * NR);
                const v16sf b1 = *(const v16sf *) (panel + (size_t) kk * NR + VL);
                for (int r = 0; r < MR; r++) {
                    const float av = ar[r][kk];
                    acc[r][0] += av * b0;
                    acc[r][1] += av * b1;
                }
            }
            for (int r = 0; r < MR && i + r < m; r++)
                store_v16sf(c + (size_t) (i + r) * ldc + p * NR, acc[r], nc,
                            accumulate);
        }
    }
    for (int i = m_tiles; i < m; i++)
        row512_f32(n, k, a + (size_t) i * lda, bp, c + (size_t) i * ldc, accumulate, backwards);
}

TSRNN_AVX512F static void gemm512_f64(int m, int n, int k, const double *a, int lda,
                                      const double *bp, double *c, int ldc, int accumulate, int backwards)
{
    enum { VL = 8, NR = 2 * VL, MR = MR512 };
    const int panels = (n + NR - 1) / NR;
    for (int pi = 0; pi < panels; pi++) {
        const int p = backwards ? panels - 1 - pi : pi;
        const double *panel = bp + (size_t) p * k * NR;
        const int nc = n - p * NR < NR ? n - p * NR : NR;
        for (int i = 0; i < m; i += MR) {
            const int mr = m - i < MR ? m - i : MR;
            v8df acc[MR][2];
            const double *ar[MR];
            for (int r = 0; r < MR; r++) {
                acc[r][0] = (v8df) {0};
                acc[r][1] = (v8df) {0};
                ar[r] = a + (size_t) (i + r < m ? i + r : m - 1) * lda;
            }
            for (int kk = 0; kk < k; kk++) {
                const v8df b0 = *(const v8df *) (panel + (size_t) kk * NR);
                const v8df b1 = *(const v8df *) (panel + (size_t) kk * NR + VL);
                for (int r = 0; r < MR; r++) {
                    const double av = ar[r][kk];
                    acc[r][0] += av * b0;
                    acc[r][1] += av * b1;
                }
            }
            for (int r = 0; r < mr; r++) {
                double *cr = c + (size_t) (i + r) * ldc + p * NR;
                if (nc == NR && accumulate) {
                    *(v8df *) cr += acc[r][0];
                    *(v8df *) (cr + VL) += acc[r][1];
                } else if (nc == NR) {
                    *(v8df *) cr = acc[r][0];
                    *(v8df *) (cr + VL) = acc[r][1];
                } else {
                    double tile[NR];
                    memcpy(tile, &acc[r][0], sizeof(v8df));
                    memcpy(tile + VL, &acc[r][1], sizeof(v8df));
                    store_tail_f64(cr, tile, nc, accumulate);
                }
            }
        }
    }
}
#endif

int tsrnn_nr_f32(void) { return tsrnn_avx512() ? 2 * TSRNN_NR_F32_256 : TSRNN_NR_F32_256; }
int tsrnn_nr_f64(void) { return tsrnn_avx512() ? 2 * TSRNN_NR_F64_256 : TSRNN_NR_F64_256; }

void tsrnn_packed_gemm_f32(int m, int n, int k, const float *a, int lda, const float *bp,
                           float *c, int ldc, int accumulate, int backwards)
{
#if TSRNN_X86_CLONES
    if (tsrnn_avx512()) {
        gemm512_f32(m, n, k, a, lda, bp, c, ldc, accumulate, backwards);
        return;
    }
#endif
    gemm256_f32(m, n, k, a, lda, bp, c, ldc, accumulate, backwards);
}

void tsrnn_packed_gemm_f64(int m, int n, int k, const double *a, int lda, const double *bp,
                           double *c, int ldc, int accumulate, int backwards)
{
#if TSRNN_X86_CLONES
    if (tsrnn_avx512()) {
        gemm512_f64(m, n, k, a, lda, bp, c, ldc, accumulate, backwards);
        return;
    }
#endif
    gemm256_f64(m, n, k, a, lda, bp, c, ldc, accumulate, backwards);
}

TSRNN_INLINE void pack_f32(const int nr, const int trans, int n, int k, const float *b,
                           int ldb, float *bp)
{
    for (int p = 0; p * nr < n; p++)
        for (int kk = 0; kk < k; kk++)
            for (int q = 0; q < nr; q++) {
                const int col = p * nr + q;
                bp[((size_t) p * k + kk) * nr + q] = col >= n ? 0.0f
                    : trans ? b[(size_t) col * ldb + kk] : b[(size_t) kk * ldb + col];
            }
}

typedef float v4sf __attribute__((vector_size(16), aligned(4)));
typedef int v4si __attribute__((vector_size(16)));

/* pack_f32 with trans: the panels of b^T (b is n x k), a transpose. Element by
 * element (above) every read is a new row of b and gcc keeps it scalar, nine
 * instructions a value: packing W_hh (256 x 64) took 8-10 us, as long as ten
 * batch-1 steps of that LSTM. Here 4 x 4 blocks: four rows of b read 4
 * values each, are transposed in registers (SSE shuffles even in the
 * baseline build) and stored as four 4-value pieces of four panel rows.
 * Edges (k % 4 columns, the rows of a partial last panel) go value by value;
 * panel columns past n are zero, as in pack_f32. A copy: no arithmetic, so
 * the packed bits are those of pack_f32. */
TSRNN_INLINE void pack_trans_f32(const int nr, int n, int k, const float *b, int ldb,
                                 float *bp)
{
    const v4si lo = {0, 4, 1, 5}, hi = {2, 6, 3, 7}, lo2 = {0, 1, 4, 5}, hi2 = {2, 3, 6, 7};
    const int k4 = k & ~3;
    for (int p = 0; p * nr < n; p++) {
        float *pan = bp + (size_t) p * k * nr;
        for (int q = 0; q < nr; q += 4) {
            const int col = p * nr + q;
            int kk = 0;
            if (col + 4 <= n) {
                const float *r0 = b + (size_t) col * ldb, *r1 = r0 + ldb;
                const float *r2 = r1 + ldb, *r3 = r2 + ldb;
                for (; kk < k4; kk += 4) {
                    const v4sf a0 = *(const v4sf *) (r0 + kk), a1 = *(const v4sf *) (r1 + kk);
                    const v4sf a2 = *(const v4sf *) (r2 + kk), a3 = *(const v4sf *) (r3 + kk);
                    const v4sf t0 = __builtin_shuffle(a0, a1, lo), t1 = __builtin_shuffle(a0, a1, hi);
                    const v4sf t2 = __builtin_shuffle(a2, a3, lo), t3 = __builtin_shuffle(a2, a3, hi);
                    float *o = pan + (size_t) kk * nr + q;
                    *(v4sf *) o = __builtin_shuffle(t0, t2, lo2);
                    *(v4sf *) (o + nr) = __builtin_shuffle(t0, t2, hi2);
                    *(v4sf *) (o + 2 * nr) = __builtin_shuffle(t1, t3, lo2);
                    *(v4sf *) (o + 3 * nr) = __builtin_shuffle(t1, t3, hi2);
                }
            }
            for (; kk < k; kk++)
                for (int i = 0; i < 4; i++)
                    pan[(size_t) kk * nr + q + i] =
                        col + i < n ? b[(size_t) (col + i) * ldb + kk] : 0.0f;
        }
    }
}

void tsrnn_pack_f32(int n, int k, const float *b, int ldb, int trans, int nr, float *bp)
{
    /* With the panel width and trans as constants the copy loops unroll and
     * vectorise: 2-3x faster, which matters at batch 1, where packing W_hh
     * costs as much as a dozen steps. */
    const int wide = nr == 2 * TSRNN_NR_F32_256;
    if (nr == TSRNN_NR_F32_256 && trans)
        pack_trans_f32(TSRNN_NR_F32_256, n, k, b, ldb, bp);
    else if (nr == TSRNN_NR_F32_256)
        pack_f32(TSRNN_NR_F32_256, 0, n, k, b, ldb, bp);
    else if (wide && trans)
        pack_trans_f32(2 * TSRNN_NR_F32_256, n, k, b, ldb, bp);
    else if (wide)
        pack_f32(2 * TSRNN_NR_F32_256, 0, n, k, b, ldb, bp);
    else
        pack_f32(nr, trans, n, k, b, ldb, bp);
}

TSRNN_INLINE void pack_f64(const int nr, const int trans, int n, int k, const double *b,
                           int ldb, double *bp)
{
    for (int p = 0; p * nr < n; p++)
        for (int kk = 0; kk < k; kk++)
            for (int q = 0; q < nr; q++) {
                const int col = p * nr + q;
                bp[((size_t) p * k + kk) * nr + q] = col >= n ? 0.0
                    : trans ? b[(size_t) col * ldb + kk] : b[(size_t) kk * ldb + col];
            }
}

void tsrnn_pack_f64(int n, int k, const double *b, int ldb, int trans, int nr, double *bp)
{
    /* With the panel width and trans as constants the copy loops unroll and
     * vectorise: 2-3x faster, which matters at batch 1, where packing W_hh
     * costs as much as a dozen steps. */
    const int wide = nr == 2 * TSRNN_NR_F64_256;
    if (nr == TSRNN_NR_F64_256 && trans)
        pack_f64(TSRNN_NR_F64_256, 1, n, k, b, ldb, bp);
    else if (nr == TSRNN_NR_F64_256)
        pack_f64(TSRNN_NR_F64_256, 0, n, k, b, ldb, bp);
    else if (wide && trans)
        pack_f64(2 * TSRNN_NR_F64_256, 1, n, k, b, ldb, bp);
    else if (wide)
        pack_f64(2 * TSRNN_NR_F64_256, 0, n, k, b, ldb, bp);
    else
        pack_f64(nr, trans, n, k, b, ldb, bp);
}

/* ======================================================================== */
/* Forward gate loops of one step and chunk                                  */
/* ======================================================================== */

/* On entry the gate buffer holds x W_ih^T + h_prev W_hh^T (the recurrent GEMM
 * accumulates into it); one pass per row adds the biases, applies the
 * activations and writes the state, so each row is read and written once.
 * Rows are separate calls with restrict parameters, the form in which gcc
 * vectorises the loop (with the row pointers computed inside the batch loop
 * it reports "complicated access pattern" and stays scalar); sigmoid and
 * tanh are inline, so they vectorise with it.
 *
 * `peephole` is a literal 0 or 1 at every call of the LSTM rows, so after
 * inlining the plain LSTM carries no dead peephole code. The peephole row
 * adds its c(t-1) terms in a plain pass first and then runs the LSTM loop
 * with one more term for o: fused into one loop (and as a two-pass split at
 * c) gcc 12 made slower code, 1.3x and 1.2x this one's time at 64,64,8,64. */
TSRNN_INLINE void lstm_row_forward_f32(const int peephole, ptrdiff_t H, float *restrict g,
                                       const float *restrict bias, const float *restrict peep,
                                       const float *restrict cp, float *restrict cn,
                                       float *restrict hn)
{
    if (peephole)
        for (ptrdiff_t j = 0; j < H; j++) {
            g[j] += peep[j] * cp[j];
            g[H + j] += peep[H + j] * cp[j];
        }
    for (ptrdiff_t j = 0; j < H; j++) {
        const float ig = sigmoid_f32(g[j] + bias[j]);
        const float fg = sigmoid_f32(g[H + j] + bias[H + j]);
        const float gg = tanh_f32(g[2 * H + j] + bias[2 * H + j]);
        const float c = fg * cp[j] + ig * gg;
        float ao = g[3 * H + j] + bias[3 * H + j];
        if (peephole)
            ao += peep[2 * H + j] * c;
        const float og = sigmoid_f32(ao);
        const float tc = tanh_f32(c);
        g[j] = ig;
        g[H + j] = fg;
        g[2 * H + j] = gg;
        g[3 * H + j] = og;
        g[4 * H + j] = tc;
        cn[j] = c;
        hn[j] = og * tc;
    }
}

TSRNN_INLINE void lstm_row_forward_f64(const int peephole, ptrdiff_t H, double *restrict g,
                                       const double *restrict bias, const double *restrict peep,
                                       const double *restrict cp, double *restrict cn,
                                       double *restrict hn)
{
    if (peephole)
        for (ptrdiff_t j = 0; j < H; j++) {
            g[j] += peep[j] * cp[j];
            g[H + j] += peep[H + j] * cp[j];
        }
    for (ptrdiff_t j = 0; j < H; j++) {
        const double ig = sigmoid_f64(g[j] + bias[j]);
        const double fg = sigmoid_f64(g[H + j] + bias[H + j]);
        const double gg = tanh_f64(g[2 * H + j] + bias[2 * H + j]);
        const double c = fg * cp[j] + ig * gg;
        double ao = g[3 * H + j] + bias[3 * H + j];
        if (peephole)
            ao += peep[2 * H + j] * c;
        const double og = sigmoid_f64(ao);
        const double tc = tanh_f64(c);
        g[j] = ig;
        g[H + j] = fg;
        g[2 * H + j] = gg;
        g[3 * H + j] = og;
        g[4 * H + j] = tc;
        cn[j] = c;
        hn[j] = og * tc;
    }
}

TSRNN_CLONES void tsrnn_lstm_step_forward_f32(ptrdiff_t nb, ptrdiff_t H, ptrdiff_t S,
                                              int peephole, float *gates, const float *bias,
                                              const float *peep, const float *c_prev,
                                              float *c_new, float *h_new)
{
    for (ptrdiff_t b = 0; b < nb; b++) {
        if (peephole)
            lstm_row_forward_f32(1, H, gates + b * S, bias, peep, c_prev + b * H,
                                 c_new + b * H, h_new + b * H);
        else
            lstm_row_forward_f32(0, H, gates + b * S, bias, peep, c_prev + b * H,
                                 c_new + b * H, h_new + b * H);
    }
}

TSRNN_CLONES void tsrnn_lstm_step_forward_f64(ptrdiff_t nb, ptrdiff_t H, ptrdiff_t S,
                                              int peephole, double *gates, const double *bias,
                                              const double *peep, const double *c_prev,
                                              double *c_new, double *h_new)
{
    for (ptrdiff_t b = 0; b < nb; b++) {
        if (peephole)
            lstm_row_forward_f64(1, H, gates + b * S, bias, peep, c_prev + b * H,
                                 c_new + b * H, h_new + b * H);
        else
            lstm_row_forward_f64(0, H, gates + b * S, bias, peep, c_prev + b * H,
                                 c_new + b * H, h_new + b * H);
    }
}

/* GRU: the hidden n part W_hn h arrives in the 4th slot, apart from the input
 * part, because the reset gate multiplies it (with its bias) before the add. */
TSRNN_INLINE void gru_row_forward_f32(ptrdiff_t H, float *restrict g, const float *restrict bias,
                                      const float *restrict bias_hn, const float *restrict hq,
                                      float *restrict hn)
{
    for (ptrdiff_t j = 0; j < H; j++) {
        const float r = sigmoid_f32(g[j] + bias[j]);
        const float z = sigmoid_f32(g[H + j] + bias[H + j]);
        const float hh = g[3 * H + j] + bias_hn[j];
        const float n = tanh_f32(g[2 * H + j] + bias[2 * H + j] + r * hh);
        g[j] = r;
        g[H + j] = z;
        g[2 * H + j] = n;
        g[3 * H + j] = hh;
        hn[j] = (1 - z) * n + z * hq[j];
    }
}

TSRNN_INLINE void gru_row_forward_f64(ptrdiff_t H, double *restrict g, const double *restrict bias,
                                      const double *restrict bias_hn, const double *restrict hq,
                                      double *restrict hn)
{
    for (ptrdiff_t j = 0; j < H; j++) {
        const double r = sigmoid_f64(g[j] + bias[j]);
        const double z = sigmoid_f64(g[H + j] + bias[H + j]);
        const double hh = g[3 * H + j] + bias_hn[j];
        const double n = tanh_f64(g[2 * H + j] + bias[2 * H + j] + r * hh);
        g[j] = r;
        g[H + j] = z;
        g[2 * H + j] = n;
        g[3 * H + j] = hh;
        hn[j] = (1 - z) * n + z * hq[j];
    }
}

TSRNN_CLONES void tsrnn_gru_step_forward_f32(ptrdiff_t nb, ptrdiff_t H, ptrdiff_t S, float *gates,
                                             const float *bias, const float *bias_hn,
                                             const float *h_prev, float *h_new)
{
    for (ptrdiff_t b = 0; b < nb; b++)
        gru_row_forward_f32(H, gates + b * S, bias, bias_hn, h_prev + b * H, h_new + b * H);
}

TSRNN_CLONES void tsrnn_gru_step_forward_f64(ptrdiff_t nb, ptrdiff_t H, ptrdiff_t S,
                                             double *gates, const double *bias,
                                             const double *bias_hn, const double *h_prev,
                                             double *h_new)
{
    for (ptrdiff_t b = 0; b < nb; b++)
        gru_row_forward_f64(H, gates + b * S, bias, bias_hn, h_prev + b * H, h_new + b * H);
}

/* ======================================================================== */
/* Backward gate loops of one step and chunk                                 */
/* ======================================================================== */

/* Every line is the chain rule of one forward line; the derivations are
 * spelled out in tests/_reference.py.
 *
 * lstm/peephole, per unit:  g = [i f g o tanh(c)] of step t,
 *   dh  = dh_out + dh_next               h(t) feeds the layer above and t+1
 *   dao = dh tanh(c) o(1-o)              h = o tanh(c)
 *   dc  = dc_next + dh o (1-tanh^2 c) (+ dao w_co)
 *   dai = dc g i(1-i), daf = dc c_prev f(1-f), dag = dc i (1-g^2)
 *   dc_prev = dc f (+ dai w_ci + daf w_cf)
 * gru, per unit:  g = [r z n hn],
 *   dn = dh (1-z), dz = dh (h_prev - n), dan = dn (1-n^2)
 *   dar = dan hn r(1-r), daz = dz z(1-z)
 *   dax = [dar daz dan], and the hidden side differs only in the n block:
 *   dahn = dan*r (the gradient of W_hn h + b_hn); direct dh_prev = dh z
 *
 * In place: each row's gate gradients overwrite its stored activations (the
 * forward values of step t are dead once step t is done), so backward needs
 * no (T, B, G*H) gradient buffer. Iteration j reads all the gates of unit j
 * before writing them, so one pointer serves both. Same restrict-row form and
 * literal `peephole` as the forward rows, for the same reasons. */
TSRNN_INLINE void lstm_row_backward_f32(const int peephole, ptrdiff_t H, float *restrict g,
                                        const float *restrict peep, const float *restrict cp,
                                        const float *restrict dho, const float *restrict dhn,
                                        float *restrict dcn)
{
    for (ptrdiff_t j = 0; j < H; j++) {
        const float ig = g[j], fg = g[H + j], gg = g[2 * H + j];
        const float og = g[3 * H + j], tc = g[4 * H + j];
        const float dh = dho[j] + dhn[j];
        const float dao = dh * tc * og * (1 - og);
        float dc = dcn[j] + dh * og * (1 - tc * tc);
        if (peephole)
            dc += dao * peep[2 * H + j];
        const float dai = dc * gg * ig * (1 - ig);
        const float daf = dc * cp[j] * fg * (1 - fg);
        const float dag = dc * ig * (1 - gg * gg);
        float dcp = dc * fg;
        if (peephole)
            dcp += dai * peep[j] + daf * peep[H + j];
        dcn[j] = dcp;
        g[j] = dai;
        g[H + j] = daf;
        g[2 * H + j] = dag;
        g[3 * H + j] = dao;
    }
}

TSRNN_INLINE void lstm_row_backward_f64(const int peephole, ptrdiff_t H, double *restrict g,
                                        const double *restrict peep, const double *restrict cp,
                                        const double *restrict dho, const double *restrict dhn,
                                        double *restrict dcn)
{
    for (ptrdiff_t j = 0; j < H; j++) {
        const double ig = g[j], fg = g[H + j], gg = g[2 * H + j];
        const double og = g[3 * H + j], tc = g[4 * H + j];
        const double dh = dho[j] + dhn[j];
        const double dao = dh * tc * og * (1 - og);
        double dc = dcn[j] + dh * og * (1 - tc * tc);
        if (peephole)
            dc += dao * peep[2 * H + j];
        const double dai = dc * gg * ig * (1 - ig);
        const double daf = dc * cp[j] * fg * (1 - fg);
        const double dag = dc * ig * (1 - gg * gg);
        double dcp = dc * fg;
        if (peephole)
            dcp += dai * peep[j] + daf * peep[H + j];
        dcn[j] = dcp;
        g[j] = dai;
        g[H + j] = daf;
        g[2 * H + j] = dag;
        g[3 * H + j] = dao;
    }
}

TSRNN_CLONES void tsrnn_lstm_step_backward_f32(ptrdiff_t nb, ptrdiff_t H, ptrdiff_t S,
                                               int peephole, float *gates, const float *peep,
                                               const float *c_prev, const float *dh_out,
                                               const float *dh_next, float *dc_next)
{
    for (ptrdiff_t b = 0; b < nb; b++) {
        if (peephole)
            lstm_row_backward_f32(1, H, gates + b * S, peep, c_prev + b * H, dh_out + b * H,
                                  dh_next + b * H, dc_next + b * H);
        else
            lstm_row_backward_f32(0, H, gates + b * S, peep, c_prev + b * H, dh_out + b * H,
                                  dh_next + b * H, dc_next + b * H);
    }
}

TSRNN_CLONES void tsrnn_lstm_step_backward_f64(ptrdiff_t nb, ptrdiff_t H, ptrdiff_t S,
                                               int peephole, double *gates, const double *peep,
                                               const double *c_prev, const double *dh_out,
                                               const double *dh_next, double *dc_next)
{
    for (ptrdiff_t b = 0; b < nb; b++) {
        if (peephole)
            lstm_row_backward_f64(1, H, gates + b * S, peep, c_prev + b * H, dh_out + b * H,
                                  dh_next + b * H, dc_next + b * H);
        else
            lstm_row_backward_f64(0, H, gates + b * S, peep, c_prev + b * H, dh_out + b * H,
                                  dh_next + b * H, dc_next + b * H);
    }
}

TSRNN_INLINE void gru_row_backward_f32(ptrdiff_t H, float *restrict g, const float *restrict hq,
                                       const float *restrict dho, float *restrict dhn)
{
    for (ptrdiff_t j = 0; j < H; j++) {
        const float r = g[j], z = g[H + j], n = g[2 * H + j], hn = g[3 * H + j];
        const float dh = dho[j] + dhn[j];
        const float dn = dh * (1 - z), dz = dh * (hq[j] - n);
        const float dan = dn * (1 - n * n);
        const float dar = dan * hn * r * (1 - r), daz = dz * z * (1 - z);
        g[j] = dar;
        g[H + j] = daz;
        g[2 * H + j] = dan;
        g[3 * H + j] = dan * r;
        dhn[j] = dh * z;
    }
}

TSRNN_INLINE void gru_row_backward_f64(ptrdiff_t H, double *restrict g, const double *restrict hq,
                                       const double *restrict dho, double *restrict dhn)
{
    for (ptrdiff_t j = 0; j < H; j++) {
        const double r = g[j], z = g[H + j], n = g[2 * H + j], hn = g[3 * H + j];
        const double dh = dho[j] + dhn[j];
        const double dn = dh * (1 - z), dz = dh * (hq[j] - n);
        const double dan = dn * (1 - n * n);
        const double dar = dan * hn * r * (1 - r), daz = dz * z * (1 - z);
        g[j] = dar;
        g[H + j] = daz;
        g[2 * H + j] = dan;
        g[3 * H + j] = dan * r;
        dhn[j] = dh * z;
    }
}

TSRNN_CLONES void tsrnn_gru_step_backward_f32(ptrdiff_t nb, ptrdiff_t H, ptrdiff_t S,
                                              float *gates, const float *h_prev,
                                              const float *dh_out, float *dh_next)
{
    for (ptrdiff_t b = 0; b < nb; b++)
        gru_row_backward_f32(H, gates + b * S, h_prev + b * H, dh_out + b * H, dh_next + b * H);
}

TSRNN_CLONES void tsrnn_gru_step_backward_f64(ptrdiff_t nb, ptrdiff_t H, ptrdiff_t S,
                                              double *gates, const double *h_prev,
                                              const double *dh_out, double *dh_next)
{
    for (ptrdiff_t b = 0; b < nb; b++)
        gru_row_backward_f64(H, gates + b * S, h_prev + b * H, dh_out + b * H, dh_next + b * H);
}

/* ======================================================================== */
/* Peephole weight gradients                                                 */
/* ======================================================================== */

/* dw_ci += dai c(t-1), dw_cf += daf c(t-1), dw_co += dao c(t), row by row in
 * row order (the caller adds the blocks' partial sums in block order).
 *
 * Rows are those of the packed layout (see _cells.pyx): step t holds rows
 * [offs[t], offs[t] + nsz[t]), and row i of a step is sequence i. c(t-1) is
 * the cell state the step started from: the row of the step before in the
 * sweep (t - 1, or t + 1 for a reverse layer) while the sequence was running
 * there, else c0. For fixed-length input this is row r - B, or c0 at step 0. */
TSRNN_INLINE const float *peep_prev_f32(ptrdiff_t t, ptrdiff_t i, ptrdiff_t T,
                                        const ptrdiff_t *offs, const ptrdiff_t *nsz,
                                        int reverse, ptrdiff_t H, const float *cs,
                                        const float *c0)
{
    const ptrdiff_t tp = reverse ? t + 1 : t - 1;
    if (tp >= 0 && tp < T && i < nsz[tp])
        return cs + (offs[tp] + i) * H;
    return c0 + i * H;
}

TSRNN_INLINE const double *peep_prev_f64(ptrdiff_t t, ptrdiff_t i, ptrdiff_t T,
                                         const ptrdiff_t *offs, const ptrdiff_t *nsz,
                                         int reverse, ptrdiff_t H, const double *cs,
                                         const double *c0)
{
    const ptrdiff_t tp = reverse ? t + 1 : t - 1;
    if (tp >= 0 && tp < T && i < nsz[tp])
        return cs + (offs[tp] + i) * H;
    return c0 + i * H;
}

TSRNN_INLINE void peep_row_f32(ptrdiff_t H, const float *restrict d, const float *restrict cp,
                               const float *restrict cc, float *restrict acc)
{
    for (ptrdiff_t j = 0; j < H; j++) {
        acc[j] += d[j] * cp[j];
        acc[H + j] += d[H + j] * cp[j];
        acc[2 * H + j] += d[3 * H + j] * cc[j];
    }
}

TSRNN_INLINE void peep_row_f64(ptrdiff_t H, const double *restrict d, const double *restrict cp,
                               const double *restrict cc, double *restrict acc)
{
    for (ptrdiff_t j = 0; j < H; j++) {
        acc[j] += d[j] * cp[j];
        acc[H + j] += d[H + j] * cp[j];
        acc[2 * H + j] += d[3 * H + j] * cc[j];
    }
}

TSRNN_CLONES void tsrnn_peep_grads_f32(ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t T,
                                       const ptrdiff_t *offs, const ptrdiff_t *nsz, int reverse,
                                       ptrdiff_t H, ptrdiff_t S, const float *da, const float *cs,
                                       const float *c0, float *acc)
{
    ptrdiff_t t = 0;
    for (ptrdiff_t j = 0; j < 3 * H; j++)
        acc[j] = 0;
    for (ptrdiff_t r = r0; r < r1; r++) {
        while (r >= offs[t] + nsz[t])  /* the step that holds row r */
            t++;
        peep_row_f32(H, da + r * S,
                     peep_prev_f32(t, r - offs[t], T, offs, nsz, reverse, H, cs, c0),
                     cs + r * H, acc);
    }
}

TSRNN_CLONES void tsrnn_peep_grads_f64(ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t T,
                                       const ptrdiff_t *offs, const ptrdiff_t *nsz, int reverse,
                                       ptrdiff_t H, ptrdiff_t S, const double *da,
                                       const double *cs, const double *c0, double *acc)
{
    ptrdiff_t t = 0;
    for (ptrdiff_t j = 0; j < 3 * H; j++)
        acc[j] = 0;
    for (ptrdiff_t r = r0; r < r1; r++) {
        while (r >= offs[t] + nsz[t])
            t++;
        peep_row_f64(H, da + r * S,
                     peep_prev_f64(t, r - offs[t], T, offs, nsz, reverse, H, cs, c0),
                     cs + r * H, acc);
    }
}

/* ======================================================================== */
/* Which clone runs (for tests and bug reports)                              */
/* ======================================================================== */

/* The dynamic loader resolves every target_clones function once per process
 * (an IRELATIVE relocation, the same one behind each call). A function pointer
 * stored in data gets that same resolved address, so comparing it with the
 * addresses of the clones tells which clone the calls run: this reports what
 * the loader chose, it does not repeat the choice. The clones are local
 * symbols named "<function>.arch_x86_64_v4", ".arch_x86_64_v3" and ".default"
 * by gcc >= 12 (older gcc numbers them, so they report nothing), reachable
 * through asm labels. The table is volatile so that gcc cannot fold the
 * comparison of two distinct symbols to "unequal" at compile time. */
#if TSRNN_X86_CLONES && __GNUC__ >= 12
#define TSRNN_REPORT_CLONES 1
/* X(function, highest clone) for every cloned function. */
#define TSRNN_CLONED(X)                                                                   \
    X(tsrnn_all_finite_f32, v4) X(tsrnn_all_finite_f64, v4) X(tsrnn_sigmoid_f32, v4)      \
    X(tsrnn_tanh_f32, v4) X(tsrnn_lstm_step_forward_f32, v4)                              \
    X(tsrnn_lstm_step_forward_f64, v4) X(tsrnn_gru_step_forward_f32, v4)                  \
    X(tsrnn_gru_step_forward_f64, v4) X(tsrnn_lstm_step_backward_f32, v4)                 \
    X(tsrnn_lstm_step_backward_f64, v4) X(tsrnn_gru_step_backward_f32, v4)                \
    X(tsrnn_gru_step_backward_f64, v4) X(tsrnn_peep_grads_f32, v4)                        \
    X(tsrnn_peep_grads_f64, v4) X(gemm256_f32, v3) X(gemm256_f64, v3)

#define CLONE(fn, target) extern __typeof__(fn) fn##_##target __asm__(#fn "." #target);
#define DECLARE_v4(fn) CLONE(fn, arch_x86_64_v4) DECLARE_v3(fn)
#define DECLARE_v3(fn) CLONE(fn, arch_x86_64_v3) CLONE(fn, default)
#define DECLARE(fn, top) DECLARE_##top(fn)
TSRNN_CLONED(DECLARE)

typedef void (*tsrnn_any_fn)(void);
#define AS_FN(f) ((tsrnn_any_fn) (f))
#define ENTRY_v4(fn) {#fn, AS_FN(fn), AS_FN(fn##_arch_x86_64_v4), AS_FN(fn##_arch_x86_64_v3), \
                      AS_FN(fn##_default)},
#define ENTRY_v3(fn) {#fn, AS_FN(fn), NULL, AS_FN(fn##_arch_x86_64_v3), AS_FN(fn##_default)},
#define ENTRY(fn, top) ENTRY_##top(fn)
static const volatile struct {
    const char *name;
    tsrnn_any_fn resolved, v4, v3, baseline;
} clones[] = {TSRNN_CLONED(ENTRY)};
enum { N_CLONED = sizeof clones / sizeof clones[0] };

static const char *clone_isa(int i)
{
    const tsrnn_any_fn f = clones[i].resolved;
    return f == clones[i].v4 ? "x86-64-v4" : f == clones[i].v3 ? "x86-64-v3"
         : f == clones[i].baseline ? "x86-64" : "unknown";
}
#else
#define TSRNN_REPORT_CLONES 0
enum { N_CLONED = 0 };
#endif

/* The cloned functions, then tsrnn_packed_gemm_f32/_f64, which call the
 * 512-bit micro-kernel where tsrnn_avx512() says so and gemm256 otherwise. */
int tsrnn_n_dispatched(void) { return TSRNN_REPORT_CLONES ? N_CLONED + 2 : 0; }

const char *tsrnn_dispatched(int i, const char **isa)
{
#if TSRNN_REPORT_CLONES
    if (i >= 0 && i < N_CLONED) {
        *isa = clone_isa(i);
        return clones[i].name;
    }
    if (i == N_CLONED || i == N_CLONED + 1) {
        const int f64 = i == N_CLONED + 1;
        *isa = tsrnn_avx512() ? "avx512f" : clone_isa(N_CLONED - 2 + f64);  /* gemm256 */
        return f64 ? "tsrnn_packed_gemm_f64" : "tsrnn_packed_gemm_f32";
    }
#else
    (void) i;
#endif
    *isa = NULL;
    return NULL;
}
