/* The C kernels of tsrnn: what tsrnn/_cells.pyx calls inside its nogil loops.
 *
 * _cells.pyx owns the sweep (time loop, chunks, OpenMP, BLAS); this file owns
 * the inner loops that need C: the vectorised float32 activations, the per-row
 * gate loops of one time step, and the register-blocked recurrent GEMM on
 * pre-packed weights. Everything is a plain function, one per element type.
 * The design (layouts, gate order, why each loop has the shape it has) is in
 * the comment at the top of _cells.pyx and in _kernels.c.
 *
 * Shapes use the letters of _cells.pyx: B batch, H hidden, S the row stride of
 * the gate buffer (5H for the LSTM cells, 4H for the GRU). Every buffer is
 * row-major; nb is the number of batch rows of one chunk.
 */
#ifndef TSRNN_KERNELS_H
#define TSRNN_KERNELS_H

#include <stddef.h>

/* Hidden: _cells.c calls these directly, not through the PLT, and they are
 * not part of any exported interface of the extension module. */
#if defined(__GNUC__)
#define TSRNN_API __attribute__((visibility("hidden")))
#else
#define TSRNN_API
#endif

/* ---- runtime facts ---- */
TSRNN_API int tsrnn_openmp(void);       /* 1 when compiled with OpenMP */
TSRNN_API int tsrnn_max_threads(void);  /* omp_get_max_threads(), or 1 */
TSRNN_API int tsrnn_avx512(void);       /* the CPU has AVX-512F (x86-64 gcc >= 11) */
/* Which code each dispatched kernel runs, as the loader bound it: for i in
 * [0, tsrnn_n_dispatched()), the kernel's name, and in *isa "x86-64-v4",
 * "x86-64-v3" or "x86-64" (the clone), "avx512f" (the 512-bit micro-kernel)
 * or "unknown". n is 0 where gcc >= 12 built no x86 clones. */
TSRNN_API int tsrnn_n_dispatched(void);
TSRNN_API const char *tsrnn_dispatched(int i, const char **isa);

/* ---- 1 when x[0:n] holds no NaN or inf ---- */
TSRNN_API int tsrnn_all_finite_f32(const float *x, ptrdiff_t n);
TSRNN_API int tsrnn_all_finite_f64(const double *x, ptrdiff_t n);

/* ---- element-wise activations (arrays) ---- */
TSRNN_API void tsrnn_sigmoid_f32(float *x, ptrdiff_t n);                   /* in place */
TSRNN_API void tsrnn_tanh_f32(const float *x, float *out, ptrdiff_t n);    /* out may alias x */
TSRNN_API void tsrnn_sigmoid_f64(double *x, ptrdiff_t n);
TSRNN_API void tsrnn_tanh_f64(const double *x, double *out, ptrdiff_t n);

/* ---- recurrent GEMM on packed weights ----
 * pack:        bp = Bop in panels of nr columns, Bop = b^T (b is n x k) when
 *              trans, else b (k x n); bp holds ceil(n / nr) * nr * k elements.
 * packed_gemm: C (m x n) = A (m x k) @ Bop, or C += ... when accumulate.
 * nr is tsrnn_nr_f32/_f64(): the panel width of the micro-kernel this CPU runs. */
TSRNN_API int tsrnn_nr_f32(void);
TSRNN_API int tsrnn_nr_f64(void);
TSRNN_API void tsrnn_pack_f32(int n, int k, const float *b, int ldb, int trans, int nr,
                              float *bp);
TSRNN_API void tsrnn_pack_f64(int n, int k, const double *b, int ldb, int trans, int nr,
                              double *bp);
TSRNN_API void tsrnn_packed_gemm_f32(int m, int n, int k, const float *a, int lda,
                                     const float *bp, float *c, int ldc, int accumulate,
                                     int backwards);
TSRNN_API void tsrnn_packed_gemm_f64(int m, int n, int k, const double *a, int lda,
                                     const double *bp, double *c, int ldc, int accumulate,
                                     int backwards);

/* ---- forward gate loops of one step and chunk ----
 * lstm/peephole: gates (nb, S) in: x W_ih^T + h_prev W_hh^T, out: [i f g o tanh(c)];
 *   bias (4H) = b_ih + b_hh; peep (3, H) = w_ci, w_cf, w_co (peephole only, else
 *   unused); c_prev, c_new, h_new (nb, H).
 * gru: gates (nb, S) in: [x W_i{r,z,n}^T + h W_h{r,z}^T | h W_hn^T],
 *   out: [r z n | W_hn h + b_hn]; bias (3H) = b_ih + [b_hr, b_hz, 0];
 *   bias_hn (H) = b_hn; h_prev, h_new (nb, H). */
TSRNN_API void tsrnn_lstm_step_forward_f32(ptrdiff_t nb, ptrdiff_t H, ptrdiff_t S, int peephole,
                                           float *gates, const float *bias, const float *peep,
                                           const float *c_prev, float *c_new, float *h_new);
TSRNN_API void tsrnn_lstm_step_forward_f64(ptrdiff_t nb, ptrdiff_t H, ptrdiff_t S, int peephole,
                                           double *gates, const double *bias, const double *peep,
                                           const double *c_prev, double *c_new, double *h_new);
TSRNN_API void tsrnn_gru_step_forward_f32(ptrdiff_t nb, ptrdiff_t H, ptrdiff_t S, float *gates,
                                          const float *bias, const float *bias_hn,
                                          const float *h_prev, float *h_new);
TSRNN_API void tsrnn_gru_step_forward_f64(ptrdiff_t nb, ptrdiff_t H, ptrdiff_t S, double *gates,
                                          const double *bias, const double *bias_hn,
                                          const double *h_prev, double *h_new);

/* ---- backward gate loops of one step and chunk (in place over the gates) ----
 * lstm/peephole: gates in [i f g o tanh(c)], out [dai daf dag dao | tanh(c)];
 *   dh_out = dL/dh(t) from the layer above, dh_next = dL/dh(t) through h(t+1),
 *   dc_next in dL/dc(t) through c(t+1), out dL/dc(t-1).
 * gru: gates in [r z n hn], out [dar daz dan dahn]; dh_next in dL/dh(t)
 *   through h(t+1), out the direct part of dL/dh(t-1) (dh z). */
TSRNN_API void tsrnn_lstm_step_backward_f32(ptrdiff_t nb, ptrdiff_t H, ptrdiff_t S, int peephole,
                                            float *gates, const float *peep, const float *c_prev,
                                            const float *dh_out, const float *dh_next,
                                            float *dc_next);
TSRNN_API void tsrnn_lstm_step_backward_f64(ptrdiff_t nb, ptrdiff_t H, ptrdiff_t S, int peephole,
                                            double *gates, const double *peep,
                                            const double *c_prev, const double *dh_out,
                                            const double *dh_next, double *dc_next);
TSRNN_API void tsrnn_gru_step_backward_f32(ptrdiff_t nb, ptrdiff_t H, ptrdiff_t S, float *gates,
                                           const float *h_prev, const float *dh_out,
                                           float *dh_next);
TSRNN_API void tsrnn_gru_step_backward_f64(ptrdiff_t nb, ptrdiff_t H, ptrdiff_t S, double *gates,
                                           const double *h_prev, const double *dh_out,
                                           double *dh_next);

/* ---- peephole weight gradients over gate-gradient rows [r0, r1) ----
 * acc (3H) = [dw_ci | dw_cf | dw_co] of those rows: sums of dai c(t-1),
 * daf c(t-1), dao c(t). Rows are packed (see _cells.pyx): step t holds rows
 * [offs[t], offs[t] + nsz[t]) of sequences 0 .. nsz[t] - 1, T steps; c(t-1)
 * is the state of the step before in the sweep (t + 1 when reverse) while
 * the sequence ran there, else c0 (B, H). */
TSRNN_API void tsrnn_peep_grads_f32(ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t T,
                                    const ptrdiff_t *offs, const ptrdiff_t *nsz, int reverse,
                                    ptrdiff_t H, ptrdiff_t S, const float *da, const float *cs,
                                    const float *c0, float *acc);
TSRNN_API void tsrnn_peep_grads_f64(ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t T,
                                    const ptrdiff_t *offs, const ptrdiff_t *nsz, int reverse,
                                    ptrdiff_t H, ptrdiff_t S, const double *da,
                                    const double *cs, const double *c0, double *acc);

#endif /* TSRNN_KERNELS_H */
