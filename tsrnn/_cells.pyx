# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Recurrent-cell kernels: forward and backward through time for one layer.

Design
------
Dimension letters: B batch, T time steps, D inputs, H hidden units, G gates
(G=4 for the LSTM cells, gate order i, f, g, o; G=3 for the GRU, order r, z, n,
exactly as torch.nn.LSTM / torch.nn.GRU, so weights move to and from PyTorch
unchanged). Weights are row-major ``weight_ih`` (G*H, D) and ``weight_hh``
(G*H, H).

Layout. Every activation buffer is time-major, (T, B, width), C-contiguous, so
the rows of one time step are one contiguous block and the rows of a batch chunk
at step t are contiguous too. ``functional.py`` copies the user's batch-first
(B, T, D) to time-major once on the way in and hands results back as
batch-first views. The per-step gate buffer holds the pre-activations (input
plus recurrent projection) on entry and the post-activation gates on exit, so
the forward pass needs no second (T, B, G*H) array:
    lstm, peephole: (T, B, 5H) = [i, f, g, o, tanh(c)]
    gru:            (T, B, 4H) = [r, z, n, W_hn h + b_hn]
Backward derives every derivative from these cached activations
(sigmoid' = s(1-s), tanh' = 1-t^2) and never recomputes a transcendental.

GEMMs. The input projection of all T*B rows is one GEMM before the sweep,
writing into the gate buffer (by the packed micro-kernel below: BLAS would
first zero the buffer for beta = 0, a second pass over it for a product with
only D-deep sums), and each step's recurrent product accumulates onto it
there. Inference does the same while the (T, B, S) gate buffer is small
(functional._ALL_STEPS_BYTES); beyond that it keeps one step and projects
each step's input on its own, so its memory does not grow with T. The backward sweep writes the gate gradients da over the stored
activations, which are dead once their step is done, so training holds one
gate-sized buffer (T, B, S), S = 5H or 4H, not two. After the sweep, one GEMM
over all T*B rows, da^T @ [x | 1 | h(t-1)], gives dW_ih, the bias gradient
and dW_hh in a single pass over da (instead of two GEMMs and a column sum).
BLAS comes from scipy.linalg.cython_blas (Fortran, column-major): a row-major
C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T, see
``gemm_rm``. The recurrent projection, one small GEMM per step and chunk, does
not use BLAS: BLAS would repack W_hh on every call, so W_hh is packed once per
layer call and multiplied by our own register-blocked micro-kernel
(``packed_gemm``), which sends a batch of one (and up to two rows left over
by its tiles) through a one-row path. The forward pass therefore calls no
BLAS at all; only backward does.

Threading. The batch is cut into chunks of ``chunk`` rows (``functional``
chooses about one chunk per thread). Batch rows never interact in a recurrent
net, so each chunk runs its whole time sweep independently inside one
``prange`` iteration: one parallel region per layer, no barrier per step,
and none at all when one thread runs (entering a region costs microseconds,
a large share of a batch-1 call).
The post-sweep GEMMs and reductions are cut into fixed blocks of output rows or
columns; the weight-gradient GEMM is also cut along its summed dimension into
fixed blocks whose partial products are added in block order, so that both
threads have work when dW is small (H = 64). Every output element has exactly
one writer, and no atomics or reductions cross threads. The thread count is
read from the OpenMP runtime at call time (``omp_get_max_threads``) so
OMP_NUM_THREADS and threadpoolctl govern it; the caller limits BLAS to one
thread around these calls, because a threaded BLAS called from inside a
parallel region oversubscribes the cores badly.

C kernels. This file holds the sweeps (time loop, chunks, OpenMP, BLAS
calls, shape checks); the loops that need C are plain C functions in
``_kernels.c``, declared in ``_kernels.h`` and below through
``cdef extern from "_kernels.h"``: the float32 sigmoid/tanh, the forward and
backward gate loops of one step, the peephole weight-gradient sums and the
packed micro-kernel, one function per element type. The default build targets
baseline x86-64 (no -march=native). The activations, gate loops and peephole
sums are compiled three times by gcc's ``target_clones`` (x86-64-v4 =
AVX-512, x86-64-v3 = AVX2 + FMA, baseline SSE2), and the loader picks one per
process. The micro-kernel has a 512-bit form (``target("avx512f")``, used
where the CPU has AVX-512F) and a 256-bit form cloned for x86-64-v3 and the
baseline; its panel width follows the form, so the choice is made once per
process and packing follows it. ``_kernels.c`` says why each loop has its
shape (one row per call through restrict pointers is the form gcc
vectorises).

Determinism. A row's arithmetic never depends on which chunk holds it: the
gate loops are per row, and the micro-kernel accumulates every output element
in k order whatever rows surround it. The blocks of the weight-gradient and
dx GEMMs (BLAS) and of the peephole sums have sizes fixed by the shapes
alone, and their partial sums are added in block order. So results are
bitwise identical for any OMP_NUM_THREADS and any chunk size.

Validation. ``functional.py`` validates user input; the ``def`` entry points
here re-check every buffer shape they rely on, before any ``nogil`` code runs,
so a wrong call is a ValueError and never an out-of-bounds write.
``forward_layer`` takes plain ndarrays and checks dtype, C-contiguity,
writability and shapes through numpy's C API: typed-memoryview arguments cost
about 0.3 us each, most of the Cython overhead of a batch-1 call.
``backward_layer`` keeps typed memoryviews, whose cost is noise next to a
training step.
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport sgemm, dgemm

import numpy as np

cnp.import_array()

cdef extern from "_kernels.h":
    # The C kernels (tsrnn/_kernels.c); the header documents every argument.
    int tsrnn_openmp() noexcept nogil
    int tsrnn_max_threads() noexcept nogil
    int tsrnn_avx512() noexcept nogil
    int tsrnn_n_dispatched() noexcept nogil
    const char* tsrnn_dispatched(int i, const char** isa) noexcept nogil
    int tsrnn_all_finite_f32(const float* x, Py_ssize_t n) noexcept nogil
    int tsrnn_all_finite_f64(const double* x, Py_ssize_t n) noexcept nogil

    void tsrnn_sigmoid_f32(float* x, Py_ssize_t n) noexcept nogil
    void tsrnn_tanh_f32(const float* x, float* out, Py_ssize_t n) noexcept nogil
    void tsrnn_sigmoid_f64(double* x, Py_ssize_t n) noexcept nogil
    void tsrnn_tanh_f64(const double* x, double* out, Py_ssize_t n) noexcept nogil

    int tsrnn_nr_f32() noexcept nogil
    int tsrnn_nr_f64() noexcept nogil
    void tsrnn_pack_f32(int n, int k, const float* b, int ldb, int trans, int nr,
                        float* bp) noexcept nogil
    void tsrnn_pack_f64(int n, int k, const double* b, int ldb, int trans, int nr,
                        double* bp) noexcept nogil
    void tsrnn_packed_gemm_f32(int m, int n, int k, const float* a, int lda,
                               const float* bp, float* c, int ldc, int accumulate) noexcept nogil
    void tsrnn_packed_gemm_f64(int m, int n, int k, const double* a, int lda,
                               const double* bp, double* c, int ldc, int accumulate) noexcept nogil

    void tsrnn_lstm_step_forward_f32(Py_ssize_t nb, Py_ssize_t H, Py_ssize_t S, int peephole,
        float* gates, const float* bias, const float* peep, const float* c_prev,
        float* c_new, float* h_new) noexcept nogil
    void tsrnn_lstm_step_forward_f64(Py_ssize_t nb, Py_ssize_t H, Py_ssize_t S, int peephole,
        double* gates, const double* bias, const double* peep, const double* c_prev,
        double* c_new, double* h_new) noexcept nogil
    void tsrnn_gru_step_forward_f32(Py_ssize_t nb, Py_ssize_t H, Py_ssize_t S,
        float* gates, const float* bias, const float* bias_hn, const float* h_prev,
        float* h_new) noexcept nogil
    void tsrnn_gru_step_forward_f64(Py_ssize_t nb, Py_ssize_t H, Py_ssize_t S,
        double* gates, const double* bias, const double* bias_hn, const double* h_prev,
        double* h_new) noexcept nogil

    void tsrnn_lstm_step_backward_f32(Py_ssize_t nb, Py_ssize_t H, Py_ssize_t S, int peephole,
        float* gates, const float* peep, const float* c_prev, const float* dh_out,
        const float* dh_next, float* dc_next) noexcept nogil
    void tsrnn_lstm_step_backward_f64(Py_ssize_t nb, Py_ssize_t H, Py_ssize_t S, int peephole,
        double* gates, const double* peep, const double* c_prev, const double* dh_out,
        const double* dh_next, double* dc_next) noexcept nogil
    void tsrnn_gru_step_backward_f32(Py_ssize_t nb, Py_ssize_t H, Py_ssize_t S,
        float* gates, const float* h_prev, const float* dh_out, float* dh_next) noexcept nogil
    void tsrnn_gru_step_backward_f64(Py_ssize_t nb, Py_ssize_t H, Py_ssize_t S,
        double* gates, const double* h_prev, const double* dh_out, double* dh_next) noexcept nogil

    void tsrnn_peep_grads_f32(Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t B, Py_ssize_t H,
        Py_ssize_t S, const float* da, const float* cs, const float* c0, float* acc) noexcept nogil
    void tsrnn_peep_grads_f64(Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t B, Py_ssize_t H,
        Py_ssize_t S, const double* da, const double* cs, const double* c0, double* acc) noexcept nogil


cdef enum:
    # Output columns per block in the post-sweep reductions.
    BLOCK = 64
    # Weight-gradient GEMM tasks: WBLOCK rows of dW by KBLOCK of the T*B
    # summed rows. Every task repacks its slice of the right operand, so
    # tasks are large; KBLOCK still splits H=64 (T*B = 4096) in two.
    WBLOCK = 256
    KBLOCK = 2048

cdef enum:
    # Cell codes, as C constants for the nogil code and exported below.
    LSTM = 0
    GRU = 1
    PEEPHOLE = 2

CELL_LSTM = LSTM
CELL_GRU = GRU
CELL_PEEPHOLE = PEEPHOLE


def openmp_enabled():
    """True when the kernels were compiled with OpenMP.

    Without OpenMP (a source build whose compiler lacks it, or
    ``TSRNN_NO_OPENMP=1``) every kernel runs on one thread. The wheels are
    built with OpenMP.

    Returns
    -------
    enabled : bool

    Examples
    --------
    >>> import tsrnn
    >>> tsrnn.openmp_enabled() in (True, False)
    True
    """
    return bool(tsrnn_openmp())


def max_threads():
    """Threads the next kernel call may use (``omp_get_max_threads``).

    Read at call time, so ``OMP_NUM_THREADS`` and threadpoolctl's
    ``threadpool_limits(n, user_api="openmp")`` govern it; 1 without OpenMP.

    Returns
    -------
    n_threads : int

    Examples
    --------
    >>> import tsrnn
    >>> from threadpoolctl import threadpool_limits
    >>> with threadpool_limits(1, user_api="openmp"):
    ...     print(tsrnn.max_threads())
    1
    """
    return tsrnn_max_threads()


# --------------------------------------------------------------------------
# BLAS, the packed micro-kernel and the activations
# --------------------------------------------------------------------------

cdef inline void gemm_rm(bint trans_a, bint trans_b, int m, int n, int k,
                         floating alpha, const floating* a, int lda,
                         const floating* b, int ldb, floating beta,
                         floating* c, int ldc) noexcept nogil:
    """Row-major C (m, n) = alpha * op(A) @ op(B) + beta * C."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if m == 0 or n == 0:
        return
    # Column-major BLAS sees each row-major matrix as its transpose, so swap
    # the operands: C^T = op(B)^T @ op(A)^T.
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> b, &ldb, <float*> a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> b, &ldb, <double*> a, &lda,
              &beta, c, &ldc)


def first_nonfinite(arrays):
    """Index of the first array in ``arrays`` holding a NaN or an inf, else -1.

    A scan for functional.py's validation (which decides what to do and says
    so to the user): one C call per array instead of np.isfinite(a).all().
    Every array must be a C-contiguous float32 or float64 ndarray.
    """
    cdef Py_ssize_t i = 0
    cdef cnp.ndarray a
    cdef int ok
    for obj in arrays:
        if not isinstance(obj, cnp.ndarray):
            raise TypeError("first_nonfinite takes ndarrays")
        a = <cnp.ndarray> obj
        if not cnp.PyArray_IS_C_CONTIGUOUS(a):
            raise ValueError("first_nonfinite takes C-contiguous arrays")
        if cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32:
            ok = tsrnn_all_finite_f32(<const float*> cnp.PyArray_DATA(a), cnp.PyArray_SIZE(a))
        elif cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT64:
            ok = tsrnn_all_finite_f64(<const double*> cnp.PyArray_DATA(a), cnp.PyArray_SIZE(a))
        else:
            raise ValueError("first_nonfinite takes float32 or float64 arrays")
        if not ok:
            return i
        i += 1
    return -1


def simd_width_bits():
    """Vector width of the recurrent micro-kernel on this CPU (256 or 512)."""
    return 512 if tsrnn_avx512() else 256


def dispatched_isa():
    """Instruction set each runtime-dispatched C kernel runs in this process.

    A dict from the C function's name to ``"x86-64-v4"`` (AVX-512),
    ``"x86-64-v3"`` (AVX2 + FMA), ``"x86-64"`` (the SSE2 baseline) or, for the
    packed micro-kernel, ``"avx512f"``: the clone the dynamic loader bound,
    read from the resolved function pointers (see the end of _kernels.c).
    Empty where the build has no clones (not x86-64, or not gcc >= 12).
    """
    cdef const char* isa = NULL
    cdef const char* name
    report = {}
    for i in range(tsrnn_n_dispatched()):
        name = tsrnn_dispatched(i, &isa)
        report[name.decode()] = isa.decode()
    return report


cdef inline Py_ssize_t packed_size(floating dummy, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """Elements of the packed form of an operand with n output columns, depth k."""
    cdef Py_ssize_t nr = tsrnn_nr_f32() if floating is float else tsrnn_nr_f64()
    return ((n + nr - 1) // nr) * nr * k


cdef inline void pack(int n, int k, const floating* b, int ldb, bint trans,
                      floating* bp) noexcept nogil:
    if floating is float:
        tsrnn_pack_f32(n, k, b, ldb, trans, tsrnn_nr_f32(), bp)
    else:
        tsrnn_pack_f64(n, k, b, ldb, trans, tsrnn_nr_f64(), bp)


cdef inline void packed_gemm(int m, int n, int k, const floating* a, int lda,
                             const floating* bp, floating* c, int ldc,
                             bint accumulate) noexcept nogil:
    """Row-major C (m, n) (+)= A (m, k) @ Bop, Bop packed by ``pack``."""
    if floating is float:
        tsrnn_packed_gemm_f32(m, n, k, a, lda, bp, c, ldc, accumulate)
    else:
        tsrnn_packed_gemm_f64(m, n, k, a, lda, bp, c, ldc, accumulate)


cdef floating[::1] packed_weights(const floating[:, ::1] w, bint trans):
    """Pack w^T (trans) or w for ``packed_gemm``; w is row-major (rows, cols)."""
    cdef int n = <int> (w.shape[0] if trans else w.shape[1])
    cdef int k = <int> (w.shape[1] if trans else w.shape[0])
    cdef floating[::1] bp = np.empty(
        packed_size(<floating> 0, n, k), np.float32 if floating is float else np.float64)
    pack(n, k, &w[0, 0], <int> w.shape[1], trans, &bp[0])
    return bp


cdef inline void sigmoid_inplace(floating* x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        tsrnn_sigmoid_f32(x, n)
    else:
        tsrnn_sigmoid_f64(x, n)


cdef inline void tanh_into(const floating* x, floating* out, Py_ssize_t n) noexcept nogil:
    if floating is float:
        tsrnn_tanh_f32(x, out, n)
    else:
        tsrnn_tanh_f64(x, out, n)


def _activations(floating[::1] x):
    """Return (sigmoid(x), tanh(x)) computed by the kernels' own code (for tests)."""
    import numpy as np
    sig = np.array(x, copy=True)
    th = np.empty_like(sig)
    cdef floating[::1] s = sig, t = th
    if x.shape[0] > 0:
        sigmoid_inplace(&s[0], x.shape[0])
        tanh_into(&x[0], &t[0], x.shape[0])
    return sig, th


# --------------------------------------------------------------------------
# One time step of one chunk: gate loops
# --------------------------------------------------------------------------

cdef inline void lstm_step_forward(
        Py_ssize_t nb, Py_ssize_t H, Py_ssize_t S, bint peephole,
        floating* gates,           # (nb, S): in x W_ih^T + h_prev W_hh^T, out [i f g o tanh(c)]
        const floating* bias,      # (4H,): b_ih + b_hh
        const floating* peep,      # (3, H): w_ci, w_cf, w_co (peephole only)
        const floating* c_prev,    # (nb, H)
        floating* c_new,           # (nb, H)
        floating* h_new,           # (nb, H)
) noexcept nogil:
    if floating is float:
        tsrnn_lstm_step_forward_f32(nb, H, S, peephole, gates, bias, peep, c_prev, c_new, h_new)
    else:
        tsrnn_lstm_step_forward_f64(nb, H, S, peephole, gates, bias, peep, c_prev, c_new, h_new)


cdef inline void gru_step_forward(
        Py_ssize_t nb, Py_ssize_t H, Py_ssize_t S,
        floating* gates,           # (nb, S): in [x W_i{r,z,n}^T + h W_h{r,z}^T | h W_hn^T], out [r z n hn]
        const floating* bias,      # (3H,): b_ih + [b_hr, b_hz, 0]
        const floating* bias_hn,   # (H,): b_hn, which sits inside r * (...)
        const floating* h_prev,    # (nb, H)
        floating* h_new,           # (nb, H)
) noexcept nogil:
    if floating is float:
        tsrnn_gru_step_forward_f32(nb, H, S, gates, bias, bias_hn, h_prev, h_new)
    else:
        tsrnn_gru_step_forward_f64(nb, H, S, gates, bias, bias_hn, h_prev, h_new)


cdef inline void lstm_step_backward(
        Py_ssize_t nb, Py_ssize_t H, Py_ssize_t S, bint peephole,
        floating* gates,           # (nb, S): in [i f g o tanh(c)], out [dai daf dag dao .]
        const floating* peep,      # (3, H) (peephole only)
        const floating* c_prev,    # (nb, H): c(t-1)
        const floating* dh_out,    # (nb, H): dL/dh(t) from the layer above
        const floating* dh_next,   # (nb, H): dL/dh(t) through h(t+1)
        floating* dc_next,         # (nb, H): in dL/dc(t) via c(t+1), out dL/dc(t-1)
) noexcept nogil:
    if floating is float:
        tsrnn_lstm_step_backward_f32(nb, H, S, peephole, gates, peep, c_prev,
                                     dh_out, dh_next, dc_next)
    else:
        tsrnn_lstm_step_backward_f64(nb, H, S, peephole, gates, peep, c_prev,
                                     dh_out, dh_next, dc_next)


cdef inline void gru_step_backward(
        Py_ssize_t nb, Py_ssize_t H, Py_ssize_t S,
        floating* gates,           # (nb, S): in [r z n hn], out [dar daz dan dahn]
        const floating* h_prev,    # (nb, H): h(t-1)
        const floating* dh_out,    # (nb, H): dL/dh(t) from the layer above
        floating* dh_next,         # (nb, H): in dL/dh(t) via h(t+1), out the direct part of dL/dh(t-1)
) noexcept nogil:
    if floating is float:
        tsrnn_gru_step_backward_f32(nb, H, S, gates, h_prev, dh_out, dh_next)
    else:
        tsrnn_gru_step_backward_f64(nb, H, S, gates, h_prev, dh_out, dh_next)


# --------------------------------------------------------------------------
# Blocked, thread-count-independent GEMMs and reductions
# --------------------------------------------------------------------------

cdef void rows_gemm(Py_ssize_t n_rows, int n, int k,
                    const floating* a, int lda, const floating* b, int ldb,
                    floating* c, int ldc, int n_threads) noexcept nogil:
    """C[rows] = A[rows] @ B, cut into fixed blocks of rows of A and C."""
    cdef Py_ssize_t n_blocks = (n_rows + 4 * BLOCK - 1) // (4 * BLOCK)
    cdef Py_ssize_t blk, r0
    cdef int nr
    for blk in prange(n_blocks, schedule='static', num_threads=n_threads):
        r0 = blk * 4 * BLOCK
        nr = <int> min(4 * BLOCK, n_rows - r0)
        gemm_rm(False, False, nr, n, k, <floating> 1, a + r0 * lda, lda,
                b, ldb, <floating> 0, c + r0 * ldc, ldc)


cdef void packed_rows_gemm(Py_ssize_t n_rows, int n, int k,
                           const floating* a, int lda, const floating* bp,
                           floating* c, int ldc, int n_threads) noexcept nogil:
    """C[rows] = A[rows] @ Bop (packed), in fixed blocks of rows across threads.

    The training forward's input projection. Through BLAS, a GEMM this thin
    (k = D, often under 16) first zeroes all of C for beta = 0 and then
    writes it again: two passes over the (T*B, G*H) gate buffer instead of one.
    """
    cdef Py_ssize_t n_blocks = (n_rows + 4 * BLOCK - 1) // (4 * BLOCK)
    cdef Py_ssize_t blk, r0
    if n_threads == 1:  # no parallel region for one thread (see _forward)
        packed_gemm(<int> n_rows, n, k, a, lda, bp, c, ldc, False)
        return
    for blk in prange(n_blocks, schedule='static', num_threads=n_threads):
        r0 = blk * 4 * BLOCK
        packed_gemm(<int> min(4 * BLOCK, n_rows - r0), n, k, a + r0 * lda, lda,
                    bp, c + r0 * ldc, ldc, False)


cdef void grad_operand(Py_ssize_t T, Py_ssize_t B, Py_ssize_t D, Py_ssize_t H,
                       const floating* x, const floating* h0, const floating* hs,
                       floating* z, int n_threads) noexcept nogil:
    """z[t*B + b] = [x(t)[b], 1, h(t-1)[b]], with h(-1) = h0.

    The right operand shared by every weight and bias gradient of a layer, so
    that one GEMM over all T*B rows gives [dW_ih | db | dW_hh] at once. The
    ones column sits between x and h so that [x | 1] and [1 | h] are both
    contiguous column ranges (the GRU's n rows use one each).
    """
    cdef Py_ssize_t NZ = D + H + 1
    cdef Py_ssize_t t, b
    cdef floating* row
    cdef const floating* hp
    for t in prange(T, schedule='static', num_threads=n_threads):
        for b in range(B):
            row = z + (t * B + b) * NZ
            hp = h0 + b * H if t == 0 else hs + ((t - 1) * B + b) * H
            memcpy(row, x + (t * B + b) * D, D * sizeof(floating))
            row[D] = 1
            memcpy(row + D + 1, hp, H * sizeof(floating))


cdef void grad_gemm(int n_out, int nz, Py_ssize_t k,
                    const floating* da, int ldda,
                    const floating* z, int ldz,
                    floating* out,           # (n_out, nz)
                    floating* partial,       # (n_kblocks, n_out, nz) scratch
                    int n_threads) noexcept nogil:
    """out = da^T @ z over k rows (da is (k, n_out) with leading dim ldda).

    The product is cut into fixed tasks of WBLOCK output rows by KBLOCK rows of
    k, so both threads have work even when n_out fits one block (H = 64:
    n_out = 256). Each k block writes its own partial product; the partials are
    then summed in k-block order. The blocks depend on the shapes only, never
    on the thread count, so the result is bitwise the same for any thread count.
    """
    cdef Py_ssize_t n_rb = (n_out + WBLOCK - 1) // WBLOCK
    cdef Py_ssize_t n_kb = (k + KBLOCK - 1) // KBLOCK
    cdef Py_ssize_t task, rb, kb, r0, k0, r, j
    cdef int nr, kr
    cdef floating* dst
    cdef floating acc
    for task in prange(n_rb * n_kb, schedule='static', num_threads=n_threads):
        rb = task % n_rb
        kb = task // n_rb
        r0 = rb * WBLOCK
        k0 = kb * KBLOCK
        nr = <int> min(WBLOCK, n_out - r0)
        kr = <int> min(KBLOCK, k - k0)
        dst = out if n_kb == 1 else partial + kb * n_out * nz
        gemm_rm(True, False, nr, nz, kr, <floating> 1, da + k0 * ldda + r0, ldda,
                z + k0 * ldz, ldz, <floating> 0, dst + r0 * nz, nz)
    if n_kb == 1:
        return
    for r in prange(n_out, schedule='static', num_threads=n_threads):
        for j in range(nz):
            acc = partial[r * nz + j]
            for kb in range(1, n_kb):
                acc = acc + partial[(kb * n_out + r) * nz + j]
            out[r * nz + j] = acc


cdef void peephole_grads(Py_ssize_t T, Py_ssize_t B, Py_ssize_t H,
                         const floating* da,     # (T, B, S): gate gradients, row stride S
                         Py_ssize_t S,
                         const floating* cs,     # (T, B, H)
                         const floating* c0,     # (B, H)
                         floating* dpeep,        # (3, H) out
                         floating* partial,      # (n_kblocks, 3H) scratch
                         int n_threads) noexcept nogil:
    """dw_ci = sum da_i * c(t-1), dw_cf = sum da_f * c(t-1), dw_co = sum da_o * c(t).

    Sums over all T*B rows, cut into the same fixed KBLOCK-row blocks as the
    weight gradients (partials added in block order), so that both threads
    work even when 3H is small, and the result does not depend on them.
    """
    cdef Py_ssize_t K = T * B
    cdef Py_ssize_t n_kb = (K + KBLOCK - 1) // KBLOCK
    cdef Py_ssize_t kb, j
    cdef floating acc
    for kb in prange(n_kb, schedule='static', num_threads=n_threads):
        if floating is float:
            tsrnn_peep_grads_f32(kb * KBLOCK, min(K, (kb + 1) * KBLOCK), B, H, S,
                                 da, cs, c0, partial + kb * 3 * H)
        else:
            tsrnn_peep_grads_f64(kb * KBLOCK, min(K, (kb + 1) * KBLOCK), B, H, S,
                                 da, cs, c0, partial + kb * 3 * H)
    for j in range(3 * H):
        acc = partial[j]
        for kb in range(1, n_kb):
            acc = acc + partial[kb * 3 * H + j]
        dpeep[j] = acc


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------

cdef int _threads_for(Py_ssize_t n_items, int max_threads) noexcept nogil:
    cdef int n = max_threads
    if n > n_items:
        n = <int> n_items
    return n if n > 0 else 1


cdef inline int _check(bint ok, str what) except -1:
    if not ok:
        raise ValueError(f"tsrnn._cells: inconsistent buffer shapes: {what}")
    return 0


cdef inline int _check_int32(Py_ssize_t n, str what) except -1:
    # BLAS takes 32-bit ints for sizes and leading dimensions.
    if n >= 2 ** 31:
        raise ValueError(f"{what} = {n} is too large for 32-bit BLAS indexing")
    return 0


cdef inline int _require(cnp.ndarray a, str name, int ndim, int typenum,
                         bint writable) except -1:
    # The checks a typed memoryview would make, at a tenth of the cost
    # (memoryview arguments cost ~0.3 us each, most of a batch-1 call's
    # Cython overhead).
    if (cnp.PyArray_NDIM(a) != ndim or cnp.PyArray_TYPE(a) != typenum
            or not cnp.PyArray_IS_C_CONTIGUOUS(a)
            or (writable and not cnp.PyArray_ISWRITEABLE(a))):
        raise ValueError(f"tsrnn._cells: {name} must be a C-contiguous {ndim}-D "
                         f"{'writable ' if writable else ''}array of the weights' dtype")
    return 0


cdef inline bint _dims(cnp.ndarray a, Py_ssize_t d0, Py_ssize_t d1, Py_ssize_t d2=-1):
    """a.shape == (d0, d1) or (d0, d1, d2); a's ndim is already checked."""
    return (cnp.PyArray_DIM(a, 0) == d0 and cnp.PyArray_DIM(a, 1) == d1
            and (d2 < 0 or cnp.PyArray_DIM(a, 2) == d2))


def forward_layer(int cell,
                  cnp.ndarray x not None,        # (T, B, D)
                  cnp.ndarray w_ih not None,     # (G*H, D)
                  cnp.ndarray w_hh not None,     # (G*H, H)
                  cnp.ndarray b_ih not None,     # (G*H,)
                  cnp.ndarray b_hh not None,     # (G*H,)
                  tuple peep,                    # (w_ci, w_cf, w_co), each (H,): peephole only
                  cnp.ndarray h0,                # (B, H), None: zeros
                  cnp.ndarray c0,                # (B, H) lstm cells (None: zeros), else ignored
                  cnp.ndarray hs not None,       # (T, B, H) out: h(t)
                  cnp.ndarray cs,                # (T | 2, B, H) out: c(t), lstm cells, else ignored
                  cnp.ndarray gates not None,    # (T | 1, B, S) out: activations
                  cnp.ndarray h_n not None,      # (B, H) out: h(T-1)
                  cnp.ndarray c_n,               # (B, H) out: c(T-1), lstm cells, else ignored
                  Py_ssize_t chunk,              # batch rows per sweep
                  bint keep,                     # keep c(t) of every step for backward
                  int n_threads_max):            # cap on omp_get_max_threads()
    """Run one layer over all time steps. See the module docstring for layouts.

    Every array is C-contiguous and of one dtype (float32 or float64); the
    inputs may be read-only. The arguments a cell does not use are ignored and
    may be None; so may the initial state, meaning zeros (inference from a
    zero state then allocates none). The biases arrive as torch has them and
    are folded here.

    ``gates`` holds every step (T, B, S) or one (1, B, S). With every step,
    the input projection of all T*B rows is one GEMM before the sweep (one
    pass, MR-row tiles even at batch 1); with one step, it is computed per
    step from a packed W_ih, so memory no longer grows with T (inference on
    large batches). ``keep`` (training) needs every step of gates and c(t)
    in cs (T, B, H); without it cs alternates two slots (c(t) is in
    cs[t % 2]). Either way the arithmetic of every element is the same, so
    training and inference outputs are bitwise equal.

    Calls no BLAS: the callers need not limit BLAS threads around it.
    """
    cdef Py_ssize_t T = 0, B = 0, D = 0, H = 0
    cdef bint is_gru = cell == GRU
    cdef bint is_lstm = not is_gru
    cdef bint peephole = cell == PEEPHOLE
    cdef Py_ssize_t G = 3 if is_gru else 4
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef int i
    if cell != LSTM and cell != GRU and cell != PEEPHOLE:
        raise ValueError(f"tsrnn._cells: unknown cell code {cell}")
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise ValueError("tsrnn._cells: arrays must be float32 or float64")
    _require(x, "x", 3, typenum, False)
    _require(w_ih, "w_ih", 2, typenum, False)
    _require(w_hh, "w_hh", 2, typenum, False)
    _require(b_ih, "b_ih", 1, typenum, False)
    _require(b_hh, "b_hh", 1, typenum, False)
    _require(hs, "hs", 3, typenum, True)
    _require(gates, "gates", 3, typenum, True)
    _require(h_n, "h_n", 2, typenum, True)
    T, B, D = x.shape[0], x.shape[1], x.shape[2]
    H = w_hh.shape[1]
    cdef Py_ssize_t S = 4 * H if is_gru else 5 * H
    cdef bint all_steps = gates.shape[0] == T
    _check(T > 0 and B > 0 and D > 0 and H > 0, "empty dimension")
    _check(_dims(w_ih, G * H, D), "weight_ih")
    _check(_dims(w_hh, G * H, H), "weight_hh")
    _check(b_ih.shape[0] == G * H and b_hh.shape[0] == G * H, "bias")
    if h0 is not None:
        _require(h0, "h0", 2, typenum, False)
        _check(_dims(h0, B, H), "h0")
    _check(_dims(hs, T, B, H), "hs")
    _check(_dims(h_n, B, H), "h_n")
    _check(_dims(gates, T if keep else gates.shape[0], B, S)
           and (all_steps or gates.shape[0] == 1), "gates")
    if is_lstm:
        _require(cs, "cs", 3, typenum, True)
        _require(c_n, "c_n", 2, typenum, True)
        if c0 is not None:
            _require(c0, "c0", 2, typenum, False)
            _check(_dims(c0, B, H), "c0")
        _check(_dims(cs, T if keep else 2, B, H), "cs")
        _check(_dims(c_n, B, H), "c_n")
    cdef const void* pw[3]
    pw[0] = pw[1] = pw[2] = NULL
    if peephole:
        _check(peep is not None and len(peep) == 3, "peephole")
        for i in range(3):
            _check(isinstance(peep[i], cnp.ndarray), "peephole")
            _require(peep[i], "peephole", 1, typenum, False)
            _check(cnp.PyArray_DIM(peep[i], 0) == H, "peephole")
            pw[i] = cnp.PyArray_DATA(peep[i])
    _check_int32(T * B * S, "T * B * gate width")
    _check(chunk > 0 and n_threads_max > 0, "chunk or n_threads_max")

    if typenum == cnp.NPY_FLOAT32:
        _forward[float](
            cell, T, B, D, H, <const float*> cnp.PyArray_DATA(x),
            <const float*> cnp.PyArray_DATA(w_ih), <const float*> cnp.PyArray_DATA(w_hh),
            <const float*> cnp.PyArray_DATA(b_ih), <const float*> cnp.PyArray_DATA(b_hh),
            <const float*> pw[0], <const float*> pw[1], <const float*> pw[2],
            <const float*> cnp.PyArray_DATA(h0) if h0 is not None else NULL,
            <const float*> cnp.PyArray_DATA(c0) if is_lstm and c0 is not None else NULL,
            <float*> cnp.PyArray_DATA(hs), <float*> cnp.PyArray_DATA(cs) if is_lstm else NULL,
            <float*> cnp.PyArray_DATA(gates), <float*> cnp.PyArray_DATA(h_n),
            <float*> cnp.PyArray_DATA(c_n) if is_lstm else NULL,
            chunk, keep, all_steps, n_threads_max)
    else:
        _forward[double](
            cell, T, B, D, H, <const double*> cnp.PyArray_DATA(x),
            <const double*> cnp.PyArray_DATA(w_ih), <const double*> cnp.PyArray_DATA(w_hh),
            <const double*> cnp.PyArray_DATA(b_ih), <const double*> cnp.PyArray_DATA(b_hh),
            <const double*> pw[0], <const double*> pw[1], <const double*> pw[2],
            <const double*> cnp.PyArray_DATA(h0) if h0 is not None else NULL,
            <const double*> cnp.PyArray_DATA(c0) if is_lstm and c0 is not None else NULL,
            <double*> cnp.PyArray_DATA(hs), <double*> cnp.PyArray_DATA(cs) if is_lstm else NULL,
            <double*> cnp.PyArray_DATA(gates), <double*> cnp.PyArray_DATA(h_n),
            <double*> cnp.PyArray_DATA(c_n) if is_lstm else NULL,
            chunk, keep, all_steps, n_threads_max)


cdef int _forward(int cell, Py_ssize_t T, Py_ssize_t B, Py_ssize_t D, Py_ssize_t H,
                  const floating* x, const floating* w_ih, const floating* w_hh,
                  const floating* b_ih, const floating* b_hh, const floating* w_ci,
                  const floating* w_cf, const floating* w_co, const floating* h0,
                  const floating* c0, floating* hs, floating* cs, floating* gates,
                  floating* h_n, floating* c_n, Py_ssize_t chunk, bint keep,
                  bint all_steps, int n_threads_max) except -1:
    """forward_layer once the shapes are checked: fold, pack, sweep."""
    cdef bint is_gru = cell == GRU
    cdef bint peephole = cell == PEEPHOLE
    cdef Py_ssize_t G = 3 if is_gru else 4
    cdef Py_ssize_t S = 4 * H if is_gru else 5 * H
    # gates += h_prev @ w_hh.T at every step: pack w_hh.T once. The GRU's
    # hidden n part stays apart from its input part, r * (h W_hn + b_hn), so
    # its columns are packed separately and land in the gate buffer's 4th slot.
    cdef Py_ssize_t n_acc = 2 * H if is_gru else 4 * H
    cdef Py_ssize_t size_hh = packed_size(<floating> 0, n_acc, H)
    cdef Py_ssize_t size_hn = packed_size(<floating> 0, H, H) if is_gru else 0
    cdef Py_ssize_t size_ih = packed_size(<floating> 0, G * H, D)
    # One malloc for the packed weights, the folded biases and the peepholes
    # as one (3, H) block: a numpy array costs ~1 us at batch 1.
    cdef Py_ssize_t size_zero = B * H if h0 == NULL or (c0 == NULL and not is_gru) else 0
    cdef floating* wpack = <floating*> malloc(
        (size_hh + size_hn + size_ih + G * H + H + 3 * H + size_zero) * sizeof(floating))
    if wpack == NULL:
        raise MemoryError()
    cdef floating* whh_pack = wpack
    cdef floating* whn_pack = wpack + size_hh
    cdef floating* wih_pack = wpack + size_hh + size_hn
    cdef floating* bias = wih_pack + size_ih    # (G*H,) b_ih + b_hh, but b_hn
    cdef floating* bias_hn = bias + G * H       # (H,) b_hn (gru)
    cdef floating* peep = bias_hn + H           # (3, H) w_ci, w_cf, w_co (peephole)
    cdef floating* zeros = peep + 3 * H         # (B, H) zero h0 and/or c0, when asked
    cdef int max_thr = min(n_threads_max, tsrnn_max_threads())
    cdef Py_ssize_t n_chunks = (B + chunk - 1) // chunk
    cdef Py_ssize_t ci, j
    cdef Py_ssize_t last_c = T - 1 if keep else (T - 1) % 2
    cdef int n_threads
    try:
        with nogil:
            # Both biases of a gate enter the same pre-activation, except the
            # GRU's b_hn, which the reset gate multiplies with W_hn h.
            for j in range(G * H):
                bias[j] = b_ih[j] + b_hh[j]
            if is_gru:
                for j in range(H):
                    bias[2 * H + j] = b_ih[2 * H + j]
                    bias_hn[j] = b_hh[2 * H + j]
            if size_zero:
                # Zeros, not a skipped product: h0 @ W_hh of zeros adds +0 to
                # the gates, which is what an explicit zero state gives.
                memset(zeros, 0, size_zero * sizeof(floating))
                if h0 == NULL:
                    h0 = zeros
                if c0 == NULL and not is_gru:
                    c0 = zeros
            if peephole:
                memcpy(peep, w_ci, H * sizeof(floating))
                memcpy(peep + H, w_cf, H * sizeof(floating))
                memcpy(peep + 2 * H, w_co, H * sizeof(floating))
            pack(<int> n_acc, <int> H, w_hh, <int> H, True, whh_pack)
            if is_gru:
                pack(<int> H, <int> H, w_hh + n_acc * H, <int> H, True, whn_pack)
            pack(<int> (G * H), <int> D, w_ih, <int> D, True, wih_pack)
            if all_steps:
                # gates[:, :, :G*H] = x @ w_ih.T, all time steps at once (biases
                # are added inside the gate loop, where they cost nothing extra).
                packed_rows_gemm(T * B, <int> (G * H), <int> D, x, <int> D, wih_pack,
                                 gates, <int> S,
                                 _threads_for((T * B + 4 * BLOCK - 1) // (4 * BLOCK), max_thr))
            n_threads = _threads_for(n_chunks, max_thr)
            if n_threads == 1:
                # No parallel region: entering one costs microseconds, a
                # large share of a batch-1 call.
                for ci in range(n_chunks):
                    _forward_chunk(cell, T, B, D, H, ci * chunk, min(chunk, B - ci * chunk),
                                   x, whh_pack, whn_pack, wih_pack, bias, bias_hn, peep,
                                   h0, c0, hs, cs, gates, keep, all_steps)
            else:
                for ci in prange(n_chunks, schedule='static', num_threads=n_threads):
                    _forward_chunk(cell, T, B, D, H, ci * chunk, min(chunk, B - ci * chunk),
                                   x, whh_pack, whn_pack, wih_pack, bias, bias_hn, peep,
                                   h0, c0, hs, cs, gates, keep, all_steps)
            # The final state: h(T-1) and c(T-1) (slot (T-1) % 2 at inference).
            memcpy(h_n, hs + (T - 1) * B * H, B * H * sizeof(floating))
            if not is_gru:
                memcpy(c_n, cs + last_c * B * H, B * H * sizeof(floating))
    finally:
        free(wpack)
    return 0


cdef void _forward_chunk(int cell, Py_ssize_t T, Py_ssize_t B, Py_ssize_t D, Py_ssize_t H,
                         Py_ssize_t b0, Py_ssize_t nb_,
                         const floating* x, const floating* whh_pack,
                         const floating* whn_pack, const floating* wih_pack,
                         const floating* bias, const floating* bias_hn,
                         const floating* peep, const floating* h0, const floating* c0,
                         floating* hs, floating* cs, floating* gates,
                         bint keep, bint all_steps) noexcept nogil:
    """The time sweep of batch rows [b0, b0 + nb_): every step of one chunk.

    Pointers are to whole (T | 1 | 2, B, width) buffers; row b of step t of
    a (steps, B, width) buffer starts at (t * B + b) * width.
    """
    cdef bint is_gru = cell == GRU
    cdef bint peephole = cell == PEEPHOLE
    cdef Py_ssize_t G = 3 if is_gru else 4
    cdef Py_ssize_t S = 4 * H if is_gru else 5 * H
    cdef Py_ssize_t n_acc = 2 * H if is_gru else 4 * H
    cdef int nb = <int> nb_
    cdef Py_ssize_t t, gt, ct, cp
    cdef const floating* h_prev
    cdef const floating* c_prev
    cdef floating* g
    for t in range(T):
        gt = t if all_steps else 0
        ct = t if keep else t % 2
        cp = t - 1 if keep else (t - 1) % 2
        g = gates + (gt * B + b0) * S
        if not all_steps:
            # gates[0, chunk, :G*H] = x[t, chunk] @ w_ih.T
            packed_gemm(nb, <int> (G * H), <int> D, x + (t * B + b0) * D, <int> D,
                        wih_pack, g, <int> S, False)
        if t == 0:
            h_prev = h0 + b0 * H
        else:
            h_prev = hs + ((t - 1) * B + b0) * H
        # gates[chunk, :n_acc] += h_prev @ w_hh[:n_acc].T
        packed_gemm(nb, <int> n_acc, <int> H, h_prev, <int> H, whh_pack, g, <int> S, True)
        if is_gru:
            # gates[chunk, 3H:] = h_prev @ w_hn.T
            packed_gemm(nb, <int> H, <int> H, h_prev, <int> H, whn_pack, g + 3 * H,
                        <int> S, False)
            gru_step_forward(nb, H, S, g, bias, bias_hn, h_prev, hs + (t * B + b0) * H)
        else:
            if t == 0:
                c_prev = c0 + b0 * H
            else:
                c_prev = cs + (cp * B + b0) * H
            lstm_step_forward(nb, H, S, peephole, g, bias, peep, c_prev,
                              cs + (ct * B + b0) * H, hs + (t * B + b0) * H)


def backward_layer(int cell,
                   const floating[:, :, ::1] x,      # (T, B, D) layer input
                   const floating[:, ::1] w_ih,      # (G*H, D)
                   const floating[:, ::1] w_hh,      # (G*H, H)
                   const floating[:, ::1] peep,      # (3, H) peephole, else (0, H)
                   const floating[:, ::1] h0,        # (B, H)
                   const floating[:, ::1] c0,        # (B, H) lstm cells, else (0, H)
                   const floating[:, :, ::1] hs,     # (T, B, H) forward h(t)
                   const floating[:, :, ::1] cs,     # (T, B, H) forward c(t), lstm cells
                   floating[:, :, ::1] gates,        # (T, B, S) in: forward activations;
                                                     # out: gate gradients (see below)
                   const floating[:, :, ::1] dhs,    # (T | 1, B, H) dL/dh(t) from above;
                                                     # one step is read at every step
                   floating[:, ::1] dh0,             # (B, H) in dL/dh(T-1), out dL/dh0
                   floating[:, ::1] dc0,             # (B, H) in dL/dc(T-1), out dL/dc0
                   floating[:, :, ::1] dx,           # (T, B, D) out, or (0,0,0): not wanted
                   floating[:, ::1] dw_ih,           # (G*H, D) out
                   floating[:, ::1] dw_hh,           # (G*H, H) out
                   floating[::1] db_ih,              # (G*H,) out
                   floating[::1] db_hh,              # (G*H,) out
                   floating[:, ::1] dpeep,           # (3, H) out, peephole (else (0, H))
                   Py_ssize_t chunk,                 # batch rows per sweep
                   int n_threads_max):               # cap on omp_get_max_threads()
    """Backpropagate one layer through all time steps.

    dh0/dc0 carry the gradient w.r.t. the final state in and leave holding the
    gradient w.r.t. the initial state: each chunk owns its rows, so they double
    as the running dL/dh(t), dL/dc(t) buffers of the sweep.

    The gate gradients overwrite the activations in ``gates`` step by step
    (da = dL/d(pre-activation), row stride S):
        lstm, peephole: [dai daf dag dao | tanh(c) left as it was]
        gru:            [dar daz dan | dahn], where dahn = dan * r is the n
                        block of the hidden-side gradient (its r, z blocks
                        equal the input side's).
    The caller's cache is consumed; functional.py copies it first when asked
    to keep it.
    """
    cdef Py_ssize_t T = x.shape[0], B = x.shape[1], D = x.shape[2]
    cdef Py_ssize_t H = w_hh.shape[1]
    cdef bint is_gru = cell == CELL_GRU
    cdef bint peephole = cell == CELL_PEEPHOLE
    cdef Py_ssize_t G = 3 if is_gru else 4
    cdef Py_ssize_t S = 4 * H if is_gru else 5 * H
    cdef Py_ssize_t GH = G * H
    cdef Py_ssize_t NZ = D + H + 1
    cdef bint want_dx = dx.shape[0] != 0
    cdef Py_ssize_t dhs_step = 1 if dhs.shape[0] == T else 0
    cdef Py_ssize_t n_chunks, ci, b0, t, r
    cdef int nb, n_threads
    cdef const floating* c_prev

    _check(cell in (CELL_LSTM, CELL_GRU, CELL_PEEPHOLE), f"unknown cell code {cell}")
    _check(T > 0 and B > 0 and D > 0 and H > 0, "empty dimension")
    _check(w_ih.shape[0] == GH and w_ih.shape[1] == D, "weight_ih")
    _check(w_hh.shape[0] == GH, "weight_hh")
    _check(peep.shape[0] == (3 if peephole else 0) and peep.shape[1] == H, "peephole")
    _check(h0.shape[0] == B and h0.shape[1] == H, "h0")
    _check(is_gru or (c0.shape[0] == B and c0.shape[1] == H), "c0")
    _check((hs.shape[0], hs.shape[1], hs.shape[2]) == (T, B, H), "hs")
    _check(is_gru or (cs.shape[0], cs.shape[1], cs.shape[2]) == (T, B, H), "cs")
    _check((gates.shape[0], gates.shape[1], gates.shape[2]) == (T, B, S), "gates")
    _check(dhs.shape[0] in (T, 1) and (dhs.shape[1], dhs.shape[2]) == (B, H), "dhs")
    _check(dh0.shape[0] == B and dh0.shape[1] == H, "dh0")
    _check(is_gru or (dc0.shape[0] == B and dc0.shape[1] == H), "dc0")
    _check(not want_dx or (dx.shape[0], dx.shape[1], dx.shape[2]) == (T, B, D), "dx")
    _check(dw_ih.shape[0] == GH and dw_ih.shape[1] == D, "dw_ih")
    _check(dw_hh.shape[0] == GH and dw_hh.shape[1] == H, "dw_hh")
    _check(db_ih.shape[0] == GH and db_hh.shape[0] == GH, "db")
    _check(dpeep.shape[0] == (3 if peephole else 0) and dpeep.shape[1] == H, "dpeep")
    _check_int32(T * B * S, "T * B * gate width")
    _check_int32(T * B * NZ, "T * B * (input + hidden + 1)")
    _check(chunk > 0, "chunk")
    cdef int max_thr = min(n_threads_max, tsrnn_max_threads())
    n_chunks = (B + chunk - 1) // chunk
    dt = np.float32 if floating is float else np.float64

    # dh(t-1) = da(t) @ w_hh at every step: pack w_hh once. The GRU's product
    # is [dar daz] @ w_hh[:2H] + dahn @ w_hh[2H:], so it packs the two parts.
    cdef floating[::1] wpack_mv, wpack_n_mv
    if is_gru:
        wpack_mv = packed_weights(w_hh[:2 * H], False)
        wpack_n_mv = packed_weights(w_hh[2 * H:], False)
    else:
        wpack_mv = packed_weights(w_hh, False)
        wpack_n_mv = wpack_mv
    cdef const floating* wpack = &wpack_mv[0]
    cdef const floating* wpack_n = &wpack_n_mv[0]
    # Weight-gradient operands: z = [x | 1 | h(t-1)] and the GEMM scratch.
    cdef Py_ssize_t n_kb = (T * B + KBLOCK - 1) // KBLOCK
    cdef floating[:, ::1] z = np.empty((T * B, NZ), dt)
    # Rows with one pre-activation gradient for both sides: all of the LSTM's,
    # the GRU's r and z.
    cdef Py_ssize_t n_rz = 2 * H if is_gru else GH
    cdef floating[:, ::1] wcat = np.empty((n_rz, NZ), dt)
    cdef floating[:, ::1] wcat_nx = np.empty((H if is_gru else 1, D + 1), dt)
    cdef floating[:, ::1] wcat_nh = np.empty((H if is_gru else 1, H + 1), dt)
    cdef floating[::1] partial = np.empty(n_kb * GH * NZ if n_kb > 1 else 1, dt)
    cdef floating[::1] peep_partial = np.empty(n_kb * 3 * H if peephole else 1, dt)

    with nogil:
        n_threads = _threads_for(n_chunks, max_thr)
        for ci in prange(n_chunks, schedule='static', num_threads=n_threads):
            b0 = ci * chunk
            nb = <int> min(chunk, B - b0)
            t = T - 1
            while t >= 0:
                if is_gru:
                    gru_step_backward(nb, H, S, &gates[t, b0, 0],
                                      &h0[b0, 0] if t == 0 else &hs[t - 1, b0, 0],
                                      &dhs[t * dhs_step, b0, 0], &dh0[b0, 0])
                    # dh0[chunk] += [dar daz] @ w_hh[:2H] + dahn @ w_hh[2H:]
                    packed_gemm(nb, <int> H, <int> (2 * H), &gates[t, b0, 0], <int> S,
                                wpack, &dh0[b0, 0], <int> H, True)
                    packed_gemm(nb, <int> H, <int> H, &gates[t, b0, 3 * H], <int> S,
                                wpack_n, &dh0[b0, 0], <int> H, True)
                else:
                    if t == 0:
                        c_prev = &c0[b0, 0]
                    else:
                        c_prev = &cs[t - 1, b0, 0]
                    lstm_step_backward(nb, H, S, peephole, &gates[t, b0, 0],
                                       &peep[0, 0] if peephole else NULL,
                                       c_prev, &dhs[t * dhs_step, b0, 0],
                                       &dh0[b0, 0], &dc0[b0, 0])
                    # dh0[chunk] = da[t, chunk] @ w_hh
                    packed_gemm(nb, <int> H, <int> GH, &gates[t, b0, 0], <int> S,
                                wpack, &dh0[b0, 0], <int> H, False)
                t = t - 1

        if want_dx:
            # dx = da @ w_ih over all T*B rows.
            rows_gemm(T * B, <int> D, <int> GH, &gates[0, 0, 0], <int> S,
                      &w_ih[0, 0], <int> D, &dx[0, 0, 0], <int> D,
                      _threads_for((T * B + 4 * BLOCK - 1) // (4 * BLOCK), max_thr))
        grad_operand(T, B, D, H, &x[0, 0, 0], &h0[0, 0], &hs[0, 0, 0], &z[0, 0],
                     _threads_for(T, max_thr))
        # [dw_ih | db | dw_hh] = da^T @ [x | 1 | h(t-1)]: one pass over da.
        # The GRU's n rows differ: their hidden side has its own gradient
        # dahn (in the 4th slot), so they take [x | 1] from da_n and [1 | h]
        # from dahn, and no product is computed twice.
        n_threads = _threads_for(((n_rz + WBLOCK - 1) // WBLOCK) * n_kb, max_thr)
        grad_gemm(<int> n_rz, <int> NZ, T * B, &gates[0, 0, 0], <int> S, &z[0, 0],
                  <int> NZ, &wcat[0, 0], &partial[0], n_threads)
        if is_gru:
            n_threads = _threads_for(((H + WBLOCK - 1) // WBLOCK) * n_kb, max_thr)
            grad_gemm(<int> H, <int> (D + 1), T * B, &gates[0, 0, 2 * H], <int> S,
                      &z[0, 0], <int> NZ, &wcat_nx[0, 0], &partial[0], n_threads)
            grad_gemm(<int> H, <int> (H + 1), T * B, &gates[0, 0, 3 * H], <int> S,
                      &z[0, D], <int> NZ, &wcat_nh[0, 0], &partial[0], n_threads)
        for r in range(GH):
            if r < n_rz:
                # Both biases of a gate enter the same pre-activation.
                memcpy(&dw_ih[r, 0], &wcat[r, 0], D * sizeof(floating))
                db_ih[r] = wcat[r, D]
                db_hh[r] = wcat[r, D]
                memcpy(&dw_hh[r, 0], &wcat[r, D + 1], H * sizeof(floating))
            else:
                memcpy(&dw_ih[r, 0], &wcat_nx[r - n_rz, 0], D * sizeof(floating))
                db_ih[r] = wcat_nx[r - n_rz, D]
                db_hh[r] = wcat_nh[r - n_rz, 0]
                memcpy(&dw_hh[r, 0], &wcat_nh[r - n_rz, 1], H * sizeof(floating))
        if peephole:
            peephole_grads(T, B, H, &gates[0, 0, 0], S, &cs[0, 0, 0], &c0[0, 0],
                           &dpeep[0, 0], &peep_partial[0], _threads_for(n_kb, max_thr))
