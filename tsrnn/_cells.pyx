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

Packed rows (variable lengths). Every row buffer is really a list of rows:
step t occupies rows [offs[t], offs[t] + nsz[t]), and row i of a step is
sequence i. Without lengths nsz[t] = B and offs[t] = t*B, which is the
time-major (T, B, width) layout above. With lengths (``batch_sizes``,
torch's PackedSequence), ``functional`` sorts the sequences by decreasing
length, so the sequences still running at step t are the first nsz[t], and
N = sum of the lengths rows hold only valid steps: the input projection, the
per-step products, the gate loops and the weight-gradient GEMMs never touch a
padded step. A sequence's final state is its state after its last step in
the sweep.

Direction. ``reverse`` runs the sweep from t = T-1 down to 0 (the reverse
half of a bidirectional layer); each sequence starts from its initial state at
its own last valid step, as torch's packed reverse direction does. At each
step the running rows split in two groups: those that continue from the step
before in the sweep, and those that start here from h0/c0 (a forward sweep
only at t = 0, a reverse one at each sequence's last step). Each group is one
call per kernel, so the fixed-length forward sweep makes exactly the calls on
exactly the rows it made before lengths and directions existed.

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
BLAS at all; only backward does. Where the packed W_hh outgrows L1 (over
ZIGZAG_BYTES: the LSTM from H = 40, float32), the forward sweep visits its
panels first to last on even steps and last to first on odd ones, so each
step starts on what the previous one left cached (issue 24: LSTM H = 64 at
batch 1, 7% faster); every element's sum is the same in either order.
Packing W^T transposes 4 x 4 blocks in registers (``_kernels.c``), a tenth of
a batch-1 call's fixed cost at H = 64 where it was most of it. The packed
weights start on a 64-byte boundary (``align_up``): from malloc's 16 bytes,
every 512-bit load of the micro-kernel spanned two cache lines.

Threading. The batch is cut into chunks of ``chunk`` rows (``functional``
chooses about one chunk per thread, and the thread count from the size of the
work and from the cores other processes leave free, ``tsrnn/_load.py``). Batch rows never interact in a recurrent
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
``forward_layer`` and ``backward_layer`` take plain ndarrays and check
dtype, C-contiguity, writability and shapes through numpy's C API:
typed-memoryview arguments cost about 0.3 us each, most of the Cython
overhead of a batch-1 call (backward has eighteen).
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport uintptr_t
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
                               const float* bp, float* c, int ldc, int accumulate,
                               int backwards) noexcept nogil
    void tsrnn_packed_gemm_f64(int m, int n, int k, const double* a, int lda,
                               const double* bp, double* c, int ldc, int accumulate,
                               int backwards) noexcept nogil

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

    void tsrnn_peep_grads_f32(Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t T,
        const Py_ssize_t* offs, const Py_ssize_t* nsz, int reverse, Py_ssize_t H,
        Py_ssize_t S, const float* da, const float* cs, const float* c0,
        float* acc) noexcept nogil
    void tsrnn_peep_grads_f64(Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t T,
        const Py_ssize_t* offs, const Py_ssize_t* nsz, int reverse, Py_ssize_t H,
        Py_ssize_t S, const double* da, const double* cs, const double* c0,
        double* acc) noexcept nogil


cdef enum:
    # Output columns per block in the post-sweep reductions.
    BLOCK = 64
    # Weight-gradient GEMM tasks: WBLOCK rows of dW by KBLOCK of the T*B
    # summed rows. Every task repacks its slice of the right operand, so
    # tasks are large; KBLOCK still splits H=64 (T*B = 4096) in two.
    WBLOCK = 256
    KBLOCK = 2048

cdef enum:
    # Packed W_hh larger than this (bytes): the forward sweep alternates the
    # panel order of its recurrent product from step to step (_forward_chunk).
    ZIGZAG_BYTES = 24576
    # Alignment (bytes) of the packed weights: a cache line, the 512-bit
    # micro-kernel's load width (align_up).
    ALIGN = 64

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


def plain_weights(list arrays, tuple shapes, bint values):
    """True when the weights need neither conversion nor a closer look.

    That is: every item of ``arrays`` is an ndarray (the exact type) of one
    native-order float32 or float64 dtype, C-contiguous, of the shape at the
    same index of ``shapes`` and, with ``values``, free of NaN and inf.
    functional.py's fast path: on False it runs its full checks, which
    convert what they can and say what is wrong. One C loop instead of three
    attribute checks per array in Python (about 0.5 us each, most of a
    batch-1 rnn_forward's validation).
    """
    cdef Py_ssize_t i, j, n = len(arrays)
    cdef cnp.ndarray a
    cdef int typenum = -1, nd
    cdef tuple shape
    if n != len(shapes):
        return False
    for i in range(n):
        obj = arrays[i]
        if type(obj) is not np.ndarray:
            return False
        a = <cnp.ndarray> obj
        if typenum < 0:
            typenum = cnp.PyArray_TYPE(a)
            if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
                return False
        if (cnp.PyArray_TYPE(a) != typenum or not cnp.PyArray_ISNOTSWAPPED(a)
                or not cnp.PyArray_IS_C_CONTIGUOUS(a)):
            return False
        shape = <tuple> shapes[i]
        nd = cnp.PyArray_NDIM(a)
        if nd != len(shape):
            return False
        for j in range(nd):
            if cnp.PyArray_DIM(a, j) != <Py_ssize_t> shape[j]:
                return False
        if values:
            if typenum == cnp.NPY_FLOAT32:
                if not tsrnn_all_finite_f32(<const float*> cnp.PyArray_DATA(a),
                                            cnp.PyArray_SIZE(a)):
                    return False
            elif not tsrnn_all_finite_f64(<const double*> cnp.PyArray_DATA(a),
                                          cnp.PyArray_SIZE(a)):
                return False
    return True


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


cdef inline void* align_up(void* p) noexcept nogil:
    """p rounded up to the next multiple of ALIGN bytes (p from a malloc of
    ALIGN more bytes than needed; free p, not this).

    The packed panels must start on a cache line: malloc gives 16 bytes, so
    three 64-byte loads of the 512-bit micro-kernel in four span two lines,
    and the batch-1 LSTM sweep at H = 64 took 40% longer (119 against 84 us
    for 168 steps; benchmarks/README.md). Each panel's size is a multiple of
    its width, so the panels after the first stay aligned."""
    return <void*> ((<uintptr_t> p + ALIGN - 1) & ~(<uintptr_t> (ALIGN - 1)))


cdef inline void pack(int n, int k, const floating* b, int ldb, bint trans,
                      floating* bp) noexcept nogil:
    if floating is float:
        tsrnn_pack_f32(n, k, b, ldb, trans, tsrnn_nr_f32(), bp)
    else:
        tsrnn_pack_f64(n, k, b, ldb, trans, tsrnn_nr_f64(), bp)


cdef inline void packed_gemm(int m, int n, int k, const floating* a, int lda,
                             const floating* bp, floating* c, int ldc,
                             bint accumulate, bint backwards=False) noexcept nogil:
    """Row-major C (m, n) (+)= A (m, k) @ Bop, Bop packed by ``pack``.

    ``backwards`` visits the panels (column blocks) last to first: the same
    arithmetic for every element, in another order over the weights (see
    ``_forward_chunk``)."""
    if floating is float:
        tsrnn_packed_gemm_f32(m, n, k, a, lda, bp, c, ldc, accumulate, backwards)
    else:
        tsrnn_packed_gemm_f64(m, n, k, a, lda, bp, c, ldc, accumulate, backwards)


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


cdef inline const floating* prev_row(const floating* run, const floating* start,
                                     Py_ssize_t T, const Py_ssize_t* offs,
                                     const Py_ssize_t* nsz, bint reverse, Py_ssize_t t,
                                     Py_ssize_t i, Py_ssize_t width) noexcept nogil:
    """Row of sequence i's state before step t: in ``run`` (packed rows) at the
    step before in the sweep (t - 1, or t + 1 when reverse) while the sequence
    was running there, else its initial state, row i of ``start`` (B, width)."""
    cdef Py_ssize_t tp = t + 1 if reverse else t - 1
    if tp >= 0 and tp < T and i < nsz[tp]:
        return run + (offs[tp] + i) * width
    return start + i * width


cdef void grad_operand(Py_ssize_t T, Py_ssize_t D, Py_ssize_t H,
                       const Py_ssize_t* offs, const Py_ssize_t* nsz, bint reverse,
                       const floating* x, const floating* h0, const floating* hs,
                       floating* z, int n_threads) noexcept nogil:
    """z[r] = [x[r], 1, h_prev[r]] for every packed row r (h_prev: see prev_row).

    The right operand shared by every weight and bias gradient of a layer, so
    that one GEMM over all N rows gives [dW_ih | db | dW_hh] at once. The
    ones column sits between x and h so that [x | 1] and [1 | h] are both
    contiguous column ranges (the GRU's n rows use one each).
    """
    cdef Py_ssize_t NZ = D + H + 1
    cdef Py_ssize_t t, i
    cdef floating* row
    for t in prange(T, schedule='static', num_threads=n_threads):
        for i in range(nsz[t]):
            row = z + (offs[t] + i) * NZ
            memcpy(row, x + (offs[t] + i) * D, D * sizeof(floating))
            row[D] = 1
            memcpy(row + D + 1, prev_row(hs, h0, T, offs, nsz, reverse, t, i, H),
                   H * sizeof(floating))


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


cdef void peephole_grads(Py_ssize_t T, const Py_ssize_t* offs, const Py_ssize_t* nsz,
                         bint reverse, Py_ssize_t H,
                         const floating* da,     # (N, S): gate gradients, row stride S
                         Py_ssize_t S,
                         const floating* cs,     # (N, H)
                         const floating* c0,     # (B, H)
                         floating* dpeep,        # (3, H) out
                         floating* partial,      # (n_kblocks, 3H) scratch
                         int n_threads) noexcept nogil:
    """dw_ci = sum da_i * c(t-1), dw_cf = sum da_f * c(t-1), dw_co = sum da_o * c(t).

    Sums over all N rows, cut into the same fixed KBLOCK-row blocks as the
    weight gradients (partials added in block order), so that both threads
    work even when 3H is small, and the result does not depend on them.
    """
    cdef Py_ssize_t K = offs[T]
    cdef Py_ssize_t n_kb = (K + KBLOCK - 1) // KBLOCK
    cdef Py_ssize_t kb, j
    cdef floating acc
    for kb in prange(n_kb, schedule='static', num_threads=n_threads):
        if floating is float:
            tsrnn_peep_grads_f32(kb * KBLOCK, min(K, (kb + 1) * KBLOCK), T, offs, nsz,
                                 reverse, H, S, da, cs, c0, partial + kb * 3 * H)
        else:
            tsrnn_peep_grads_f64(kb * KBLOCK, min(K, (kb + 1) * KBLOCK), T, offs, nsz,
                                 reverse, H, S, da, cs, c0, partial + kb * 3 * H)
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
    # Cython overhead). ndim 0 is a buffer of rows: 2-D (rows, width) or
    # 3-D (steps, batch, width), see _rows.
    cdef int nd = cnp.PyArray_NDIM(a)
    if ((nd != ndim if ndim else (nd != 2 and nd != 3))
            or cnp.PyArray_TYPE(a) != typenum
            or not cnp.PyArray_IS_C_CONTIGUOUS(a)
            or (writable and not cnp.PyArray_ISWRITEABLE(a))):
        raise ValueError(f"tsrnn._cells: {name} must be a C-contiguous "
                         f"{f'{ndim}-D' if ndim else '2-D or 3-D'} "
                         f"{'writable ' if writable else ''}array of the weights' dtype")
    return 0


cdef inline bint _dims(cnp.ndarray a, Py_ssize_t d0, Py_ssize_t d1, Py_ssize_t d2=-1):
    """a.shape == (d0, d1) or (d0, d1, d2); a's ndim is already checked."""
    return (cnp.PyArray_DIM(a, 0) == d0 and cnp.PyArray_DIM(a, 1) == d1
            and (d2 < 0 or cnp.PyArray_DIM(a, 2) == d2))


cdef inline bint _rows(cnp.ndarray a, Py_ssize_t rows, Py_ssize_t width):
    """A row buffer (2-D or 3-D, already checked) holds rows x width values."""
    cdef int nd = cnp.PyArray_NDIM(a)
    cdef Py_ssize_t n = cnp.PyArray_DIM(a, 0)
    if nd == 3:
        n *= cnp.PyArray_DIM(a, 1)
    return n == rows and cnp.PyArray_DIM(a, nd - 1) == width


cdef Py_ssize_t _packed_rows(object batch_sizes) except -1:
    """Check the rows per step of a packed batch; return their sum N.

    ``batch_sizes`` (T,) intp: step t holds the sequences still running,
    0 .. batch_sizes[t] - 1, so the counts must not increase, and every step
    holds at least one (torch's PackedSequence.batch_sizes).
    """
    if not isinstance(batch_sizes, cnp.ndarray):
        raise ValueError("tsrnn._cells: batch_sizes must be an ndarray")
    cdef cnp.ndarray a = <cnp.ndarray> batch_sizes
    if (cnp.PyArray_NDIM(a) != 1 or cnp.PyArray_TYPE(a) != cnp.NPY_INTP
            or not cnp.PyArray_IS_C_CONTIGUOUS(a) or cnp.PyArray_DIM(a, 0) < 1):
        raise ValueError("tsrnn._cells: batch_sizes must be a non-empty contiguous 1-D "
                         "intp array")
    cdef const Py_ssize_t* bs = <const Py_ssize_t*> cnp.PyArray_DATA(a)
    cdef Py_ssize_t T = cnp.PyArray_DIM(a, 0), t, n = 0
    for t in range(T):
        if bs[t] < 1 or (t > 0 and bs[t] > bs[t - 1]):
            raise ValueError("tsrnn._cells: batch_sizes must be positive and non-increasing")
        n += bs[t]
    return n


cdef void _fill_steps(const Py_ssize_t* bs, Py_ssize_t T, Py_ssize_t B,
                      Py_ssize_t* nsz, Py_ssize_t* offs) noexcept nogil:
    """nsz[t] = rows of step t (bs[t], or B when bs is NULL); offs = their
    running sum, offs[T] = N (see the module docstring: packed rows)."""
    cdef Py_ssize_t t
    offs[0] = 0
    for t in range(T):
        nsz[t] = bs[t] if bs != NULL else B
        offs[t + 1] = offs[t] + nsz[t]


def forward_layer(int cell,
                  cnp.ndarray x not None,        # (T, B, D), or packed (N, D)
                  cnp.ndarray w_ih not None,     # (G*H, D)
                  cnp.ndarray w_hh not None,     # (G*H, H)
                  cnp.ndarray b_ih not None,     # (G*H,)
                  cnp.ndarray b_hh not None,     # (G*H,)
                  tuple peep,                    # (w_ci, w_cf, w_co), each (H,): peephole only
                  cnp.ndarray h0,                # (B, H), None: zeros
                  cnp.ndarray c0,                # (B, H) lstm cells (None: zeros), else ignored
                  cnp.ndarray hs not None,       # N rows of H, out: h(t)
                  cnp.ndarray cs,                # N | 2B rows of H, out: c(t), lstm cells
                  cnp.ndarray gates not None,    # N | B rows of S, out: activations
                  cnp.ndarray h_n not None,      # (B, H) out: final h
                  cnp.ndarray c_n,               # (B, H) out: final c, lstm cells, else ignored
                  Py_ssize_t chunk,              # batch rows per sweep
                  bint keep,                     # keep c(t) of every step for backward
                  int n_threads_max,             # cap on omp_get_max_threads()
                  object batch_sizes=None,       # None, or (T,) intp: packed rows per step
                  bint reverse=False):           # sweep from the last step to the first
    """Run one layer over all time steps. See the module docstring for layouts.

    Every array is C-contiguous and of one dtype (float32 or float64); the
    inputs may be read-only. The arguments a cell does not use are ignored and
    may be None; so may the initial state, meaning zeros (inference from a
    zero state then allocates none). The biases arrive as torch has them and
    are folded here.

    Without ``batch_sizes`` every sequence runs all T steps, x is (T, B, D)
    and the buffers of N = T*B rows may be 3-D (T, B, width). With it, the
    batch is packed (variable lengths): x and the row buffers are 2-D, N
    rows. ``reverse`` runs the sweep backwards in time: each sequence starts
    from its initial state at its own last step.

    ``gates`` holds every step (N rows) or one (B rows). With every step,
    the input projection of all N rows is one GEMM before the sweep (one
    pass, MR-row tiles even at batch 1); with one step, it is computed per
    step from a packed W_ih, so memory no longer grows with T (inference on
    large batches). ``keep`` (training) needs every step of gates and c(t)
    in cs (N rows); without it cs alternates two slots of B rows. Either
    way the arithmetic of every element is the same, so training and
    inference outputs are bitwise equal. h_n and c_n get each sequence's
    state after its last step in the sweep.

    Calls no BLAS: the callers need not limit BLAS threads around it.
    """
    cdef Py_ssize_t T = 0, B = 0, D = 0, H = 0, N = 0
    cdef bint is_gru = cell == GRU
    cdef bint is_lstm = not is_gru
    cdef bint peephole = cell == PEEPHOLE
    cdef Py_ssize_t G = 3 if is_gru else 4
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef int i
    cdef const Py_ssize_t* bs = NULL
    if cell != LSTM and cell != GRU and cell != PEEPHOLE:
        raise ValueError(f"tsrnn._cells: unknown cell code {cell}")
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise ValueError("tsrnn._cells: arrays must be float32 or float64")
    if batch_sizes is None:
        _require(x, "x", 3, typenum, False)
        T, B, D = x.shape[0], x.shape[1], x.shape[2]
        N = T * B
    else:
        N = _packed_rows(batch_sizes)
        bs = <const Py_ssize_t*> cnp.PyArray_DATA(<cnp.ndarray> batch_sizes)
        T, B = (<cnp.ndarray> batch_sizes).shape[0], bs[0]
        _require(x, "x", 2, typenum, False)
        D = x.shape[1]
        _check(x.shape[0] == N, "x (packed rows)")
    _require(w_ih, "w_ih", 2, typenum, False)
    _require(w_hh, "w_hh", 2, typenum, False)
    _require(b_ih, "b_ih", 1, typenum, False)
    _require(b_hh, "b_hh", 1, typenum, False)
    _require(hs, "hs", 0, typenum, True)
    _require(gates, "gates", 0, typenum, True)
    _require(h_n, "h_n", 2, typenum, True)
    H = w_hh.shape[1]
    cdef Py_ssize_t S = 4 * H if is_gru else 5 * H
    cdef bint all_steps = _rows(gates, N, S)
    _check(T > 0 and B > 0 and D > 0 and H > 0, "empty dimension")
    _check(_dims(w_ih, G * H, D), "weight_ih")
    _check(_dims(w_hh, G * H, H), "weight_hh")
    _check(b_ih.shape[0] == G * H and b_hh.shape[0] == G * H, "bias")
    if h0 is not None:
        _require(h0, "h0", 2, typenum, False)
        _check(_dims(h0, B, H), "h0")
    _check(_rows(hs, N, H), "hs")
    _check(_dims(h_n, B, H), "h_n")
    _check(all_steps or (not keep and _rows(gates, B, S)), "gates")
    if is_lstm:
        _require(cs, "cs", 0, typenum, True)
        _require(c_n, "c_n", 2, typenum, True)
        if c0 is not None:
            _require(c0, "c0", 2, typenum, False)
            _check(_dims(c0, B, H), "c0")
        _check(_rows(cs, N if keep else 2 * B, H), "cs")
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
    _check_int32(N * S, "N * gate width")
    _check(chunk > 0 and n_threads_max > 0, "chunk or n_threads_max")

    if typenum == cnp.NPY_FLOAT32:
        _forward[float](
            cell, T, B, D, H, bs, reverse, <const float*> cnp.PyArray_DATA(x),
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
            cell, T, B, D, H, bs, reverse, <const double*> cnp.PyArray_DATA(x),
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
                  const Py_ssize_t* bs, bint reverse,
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
    cdef void* raw = malloc(
        (size_hh + size_hn + size_ih + G * H + H + 3 * H + size_zero) * sizeof(floating)
        + ALIGN)
    # Rows per step and where each step starts (see the module docstring).
    cdef Py_ssize_t* nsz = <Py_ssize_t*> malloc((2 * T + 1) * sizeof(Py_ssize_t))
    if raw == NULL or nsz == NULL:
        free(raw)
        free(nsz)
        raise MemoryError()
    cdef floating* wpack = <floating*> align_up(raw)
    cdef Py_ssize_t* offs = nsz + T
    cdef floating* whh_pack = wpack
    cdef floating* whn_pack = wpack + size_hh
    cdef floating* wih_pack = wpack + size_hh + size_hn
    cdef floating* bias = wih_pack + size_ih    # (G*H,) b_ih + b_hh, but b_hn
    cdef floating* bias_hn = bias + G * H       # (H,) b_hn (gru)
    cdef floating* peep = bias_hn + H           # (3, H) w_ci, w_cf, w_co (peephole)
    cdef floating* zeros = peep + 3 * H         # (B, H) zero h0 and/or c0, when asked
    cdef int max_thr = min(n_threads_max, tsrnn_max_threads())
    cdef Py_ssize_t n_chunks = (B + chunk - 1) // chunk
    cdef Py_ssize_t ci, j, t, lo, hi
    cdef int n_threads
    try:
        with nogil:
            _fill_steps(bs, T, B, nsz, offs)
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
                # gates[:, :G*H] = x @ w_ih.T, all N rows at once (biases are
                # added inside the gate loop, where they cost nothing extra).
                packed_rows_gemm(offs[T], <int> (G * H), <int> D, x, <int> D, wih_pack,
                                 gates, <int> S,
                                 _threads_for((offs[T] + 4 * BLOCK - 1) // (4 * BLOCK), max_thr))
            n_threads = _threads_for(n_chunks, max_thr)
            if n_threads == 1:
                # No parallel region: entering one costs microseconds, a
                # large share of a batch-1 call.
                for ci in range(n_chunks):
                    _forward_chunk(cell, T, B, D, H, ci * chunk, min(chunk, B - ci * chunk),
                                   offs, nsz, reverse, x, whh_pack, whn_pack, wih_pack,
                                   bias, bias_hn, peep, h0, c0, hs, cs, gates, keep, all_steps)
            else:
                for ci in prange(n_chunks, schedule='static', num_threads=n_threads):
                    _forward_chunk(cell, T, B, D, H, ci * chunk, min(chunk, B - ci * chunk),
                                   offs, nsz, reverse, x, whh_pack, whn_pack, wih_pack,
                                   bias, bias_hn, peep, h0, c0, hs, cs, gates, keep, all_steps)
            # The final state: each sequence's state after its last step in
            # the sweep. A reverse sweep ends at t = 0 for every sequence (all
            # B rows of step 0, sweep step T - 1); a forward one at t for the
            # sequences whose last step is t, rows [nsz[t+1], nsz[t]) of step
            # t: one block per length (all B rows of step T - 1 without
            # packing). Cell states of the two-slot inference buffer sit in
            # slot (sweep step) % 2.
            for t in range(T):
                if reverse:
                    lo, hi = 0, (B if t == 0 else 0)
                else:
                    lo, hi = (nsz[t + 1] if t + 1 < T else 0), nsz[t]
                if hi <= lo:
                    continue
                memcpy(h_n + lo * H, hs + (offs[t] + lo) * H, (hi - lo) * H * sizeof(floating))
                if not is_gru:
                    j = offs[t] + lo if keep else ((T - 1 if reverse else t) % 2) * B + lo
                    memcpy(c_n + lo * H, cs + j * H, (hi - lo) * H * sizeof(floating))
    finally:
        free(raw)
        free(nsz)
    return 0


cdef void _forward_chunk(int cell, Py_ssize_t T, Py_ssize_t B, Py_ssize_t D, Py_ssize_t H,
                         Py_ssize_t b0, Py_ssize_t nb,
                         const Py_ssize_t* offs, const Py_ssize_t* nsz, bint reverse,
                         const floating* x, const floating* whh_pack,
                         const floating* whn_pack, const floating* wih_pack,
                         const floating* bias, const floating* bias_hn,
                         const floating* peep, const floating* h0, const floating* c0,
                         floating* hs, floating* cs, floating* gates,
                         bint keep, bint all_steps) noexcept nogil:
    """The time sweep of batch rows [b0, b0 + nb): every step of one chunk.

    Row i of step t of a packed buffer is row offs[t] + i (t * B + i without
    packing); only the first nsz[t] sequences run at step t. Of a chunk's
    running rows, the first mc continue from the step before in the sweep
    (t - 1, or t + 1 when reverse); the others start here from h0/c0, which
    only happens at t = 0 of a forward sweep and at each sequence's last
    step of a reverse one. Each group is one call per kernel, so padded steps
    cost nothing, and a fixed-length forward sweep makes the same calls on
    the same rows as it did before packing existed.
    """
    cdef bint is_gru = cell == GRU
    cdef bint peephole = cell == PEEPHOLE
    cdef Py_ssize_t G = 3 if is_gru else 4
    cdef Py_ssize_t S = 4 * H if is_gru else 5 * H
    cdef Py_ssize_t n_acc = 2 * H if is_gru else 4 * H
    # Alternate the panel order of the recurrent product (below) only where
    # the packed W_hh outgrows half of a 48 KiB L1; below, one order is as good.
    cdef bint zigzag = n_acc * H * sizeof(floating) > ZIGZAG_BYTES
    cdef Py_ssize_t s, t, tp, na, mc, row, c_row
    cdef const floating* h_run = NULL   # h of the continuing rows, step tp
    cdef const floating* c_run = NULL   # c of the continuing rows, step tp
    cdef const floating* h_start
    cdef const floating* c_start = NULL
    cdef floating* g
    for s in range(T):
        t = T - 1 - s if reverse else s
        tp = t + 1 if reverse else t - 1
        na = min(nb, nsz[t] - b0)
        if na <= 0:
            if reverse:
                continue  # this chunk's sequences start at a later (smaller) t
            break         # ... or have all ended
        mc = min(na, max(0, nsz[tp] - b0)) if 0 <= tp < T else 0
        row = offs[t] + b0
        g = gates + (row if all_steps else b0) * S
        c_row = row if keep else (s % 2) * B + b0
        if mc > 0:
            h_run = hs + (offs[tp] + b0) * H
            if not is_gru:
                c_run = cs + ((offs[tp] + b0) if keep else ((s + 1) % 2) * B + b0) * H
        h_start = h0 + (b0 + mc) * H
        if not is_gru:
            c_start = c0 + (b0 + mc) * H
        if not all_steps:
            # gates[0, chunk, :G*H] = x[t, chunk] @ w_ih.T
            packed_gemm(<int> na, <int> (G * H), <int> D, x + row * D, <int> D,
                        wih_pack, g, <int> S, False)
        # gates[chunk, :n_acc] += h_prev @ w_hh[:n_acc].T, over the packed
        # panels first to last on even steps and last to first on odd ones:
        # a packed W_hh larger than L1 (LSTM H = 64: 64 KiB against 48) then
        # finds the panels it used last still cached, where a fixed order
        # evicts each panel just before it is read again (LRU on a cyclic
        # scan). Each element's sum is the same in either order.
        if mc > 0:
            packed_gemm(<int> mc, <int> n_acc, <int> H, h_run, <int> H, whh_pack, g,
                        <int> S, True, zigzag and (s & 1) == 1)
        if na > mc:
            packed_gemm(<int> (na - mc), <int> n_acc, <int> H, h_start, <int> H, whh_pack,
                        g + mc * S, <int> S, True, zigzag and (s & 1) == 1)
        if is_gru:
            # gates[chunk, 3H:] = h_prev @ w_hn.T
            if mc > 0:
                packed_gemm(<int> mc, <int> H, <int> H, h_run, <int> H, whn_pack, g + 3 * H,
                            <int> S, False)
                gru_step_forward(mc, H, S, g, bias, bias_hn, h_run, hs + row * H)
            if na > mc:
                packed_gemm(<int> (na - mc), <int> H, <int> H, h_start, <int> H, whn_pack,
                            g + mc * S + 3 * H, <int> S, False)
                gru_step_forward(na - mc, H, S, g + mc * S, bias, bias_hn, h_start,
                                 hs + (row + mc) * H)
        else:
            if mc > 0:
                lstm_step_forward(mc, H, S, peephole, g, bias, peep, c_run,
                                  cs + c_row * H, hs + row * H)
            if na > mc:
                lstm_step_forward(na - mc, H, S, peephole, g + mc * S, bias, peep, c_start,
                                  cs + (c_row + mc) * H, hs + (row + mc) * H)


def backward_layer(int cell,
                   cnp.ndarray x not None,        # N rows of D: layer input
                   cnp.ndarray w_ih not None,     # (G*H, D)
                   cnp.ndarray w_hh not None,     # (G*H, H)
                   cnp.ndarray peep not None,     # (3, H) peephole, else (0, H)
                   cnp.ndarray h0 not None,       # (B, H)
                   cnp.ndarray c0 not None,       # (B, H) lstm cells, else (0, H)
                   cnp.ndarray hs not None,       # N rows of H: forward h(t)
                   cnp.ndarray cs not None,       # N rows of H: forward c(t), lstm cells,
                                                  # else empty
                   cnp.ndarray gates not None,    # N rows of S in: forward activations;
                                                  # out: gate gradients (see below)
                   cnp.ndarray dhs not None,      # N | B rows of H: dL/dh(t) from above;
                                                  # B rows: one step read at every step
                   cnp.ndarray dh0 not None,      # (B, H) in dL/dh(final), out dL/dh0
                   cnp.ndarray dc0 not None,      # (B, H) in dL/dc(final), out dL/dc0
                   cnp.ndarray dx not None,       # N rows of D out, or 0 rows: not wanted
                   cnp.ndarray dw_ih not None,    # (G*H, D) out
                   cnp.ndarray dw_hh not None,    # (G*H, H) out
                   cnp.ndarray db_ih not None,    # (G*H,) out
                   cnp.ndarray db_hh not None,    # (G*H,) out
                   cnp.ndarray dpeep not None,    # (3, H) out, peephole (else (0, H))
                   Py_ssize_t chunk,              # batch rows per sweep
                   int n_threads_max,             # cap on omp_get_max_threads()
                   object batch_sizes,            # (T,) intp: rows of each step
                   bint reverse):                 # the forward sweep ran backwards
    """Backpropagate one layer through all time steps.

    Row buffers hold the rows of the packed layout (module docstring), 2-D
    (rows, width) or, without packing, 3-D (T, B, width); ``batch_sizes``
    is then T times B. The sweep visits the steps in the opposite order of
    the forward sweep. Plain ndarrays checked through numpy's C API, as in
    ``forward_layer``: a typed memoryview costs ~0.3 us per argument, and
    this call has eighteen.

    dh0/dc0 carry the gradient w.r.t. the final state in and leave holding the
    gradient w.r.t. the initial state: each chunk owns its rows, so they double
    as the running dL/dh(t), dL/dc(t) buffers of the sweep. A sequence's row
    stays untouched until the sweep reaches the step the forward sweep ended
    it on, so its final-state gradient waits there.

    The gate gradients overwrite the activations in ``gates`` step by step
    (da = dL/d(pre-activation), row stride S):
        lstm, peephole: [dai daf dag dao | tanh(c) left as it was]
        gru:            [dar daz dan | dahn], where dahn = dan * r is the n
                        block of the hidden-side gradient (its r, z blocks
                        equal the input side's).
    The caller's cache is consumed; functional.py copies it first when asked
    to keep it.
    """
    cdef Py_ssize_t N = _packed_rows(batch_sizes)
    cdef const Py_ssize_t* bs = <const Py_ssize_t*> cnp.PyArray_DATA(<cnp.ndarray> batch_sizes)
    cdef Py_ssize_t T = (<cnp.ndarray> batch_sizes).shape[0], B = bs[0]
    cdef bint is_gru = cell == GRU
    cdef bint peephole = cell == PEEPHOLE
    cdef Py_ssize_t G = 3 if is_gru else 4
    cdef int typenum = cnp.PyArray_TYPE(x)
    if cell != LSTM and cell != GRU and cell != PEEPHOLE:
        raise ValueError(f"tsrnn._cells: unknown cell code {cell}")
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise ValueError("tsrnn._cells: arrays must be float32 or float64")
    _require(x, "x", 0, typenum, False)
    _require(w_ih, "w_ih", 2, typenum, False)
    _require(w_hh, "w_hh", 2, typenum, False)
    _require(peep, "peep", 2, typenum, False)
    _require(h0, "h0", 2, typenum, False)
    _require(c0, "c0", 2, typenum, False)
    _require(hs, "hs", 0, typenum, False)
    _require(gates, "gates", 0, typenum, True)
    _require(dhs, "dhs", 0, typenum, False)
    _require(dh0, "dh0", 2, typenum, True)
    _require(dc0, "dc0", 2, typenum, True)
    _require(dx, "dx", 0, typenum, True)
    _require(dw_ih, "dw_ih", 2, typenum, True)
    _require(dw_hh, "dw_hh", 2, typenum, True)
    _require(db_ih, "db_ih", 1, typenum, True)
    _require(db_hh, "db_hh", 1, typenum, True)
    _require(dpeep, "dpeep", 2, typenum, True)
    cdef Py_ssize_t D = x.shape[x.ndim - 1]
    cdef Py_ssize_t H = w_hh.shape[1]
    cdef Py_ssize_t S = 4 * H if is_gru else 5 * H
    cdef bint want_dx = dx.shape[0] != 0
    _check(D > 0 and H > 0, "empty dimension")
    _check(_rows(x, N, D), "x")
    _check(_dims(w_ih, G * H, D), "weight_ih")
    _check(_dims(w_hh, G * H, H), "weight_hh")
    _check(_dims(peep, 3 if peephole else 0, H), "peephole")
    _check(_dims(h0, B, H), "h0")
    _check(is_gru or _dims(c0, B, H), "c0")
    _check(_rows(hs, N, H), "hs")
    if not is_gru:
        _require(cs, "cs", 0, typenum, False)
        _check(_rows(cs, N, H), "cs")
    _check(_rows(gates, N, S), "gates")
    _check(_rows(dhs, N, H) or _rows(dhs, B, H), "dhs")
    _check(_dims(dh0, B, H), "dh0")
    _check(is_gru or _dims(dc0, B, H), "dc0")
    _check(not want_dx or _rows(dx, N, D), "dx")
    _check(_dims(dw_ih, G * H, D), "dw_ih")
    _check(_dims(dw_hh, G * H, H), "dw_hh")
    _check(db_ih.shape[0] == G * H and db_hh.shape[0] == G * H, "db")
    _check(_dims(dpeep, 3 if peephole else 0, H), "dpeep")
    _check_int32(N * S, "N * gate width")
    _check_int32(N * (D + H + 1), "N * (input + hidden + 1)")
    _check(chunk > 0 and n_threads_max > 0, "chunk or n_threads_max")
    cdef void* cs_p = cnp.PyArray_DATA(cs) if not is_gru else NULL
    cdef void* dx_p = cnp.PyArray_DATA(dx) if want_dx else NULL
    if typenum == cnp.NPY_FLOAT32:
        _backward[float](
            cell, T, B, D, H, bs, reverse, _rows(dhs, N, H),
            <const float*> cnp.PyArray_DATA(x), <const float*> cnp.PyArray_DATA(w_ih),
            <const float*> cnp.PyArray_DATA(w_hh), <const float*> cnp.PyArray_DATA(peep),
            <const float*> cnp.PyArray_DATA(h0), <const float*> cnp.PyArray_DATA(c0),
            <const float*> cnp.PyArray_DATA(hs), <const float*> cs_p,
            <float*> cnp.PyArray_DATA(gates), <const float*> cnp.PyArray_DATA(dhs),
            <float*> cnp.PyArray_DATA(dh0), <float*> cnp.PyArray_DATA(dc0), <float*> dx_p,
            <float*> cnp.PyArray_DATA(dw_ih), <float*> cnp.PyArray_DATA(dw_hh),
            <float*> cnp.PyArray_DATA(db_ih), <float*> cnp.PyArray_DATA(db_hh),
            <float*> cnp.PyArray_DATA(dpeep), chunk, n_threads_max)
    else:
        _backward[double](
            cell, T, B, D, H, bs, reverse, _rows(dhs, N, H),
            <const double*> cnp.PyArray_DATA(x), <const double*> cnp.PyArray_DATA(w_ih),
            <const double*> cnp.PyArray_DATA(w_hh), <const double*> cnp.PyArray_DATA(peep),
            <const double*> cnp.PyArray_DATA(h0), <const double*> cnp.PyArray_DATA(c0),
            <const double*> cnp.PyArray_DATA(hs), <const double*> cs_p,
            <double*> cnp.PyArray_DATA(gates), <const double*> cnp.PyArray_DATA(dhs),
            <double*> cnp.PyArray_DATA(dh0), <double*> cnp.PyArray_DATA(dc0), <double*> dx_p,
            <double*> cnp.PyArray_DATA(dw_ih), <double*> cnp.PyArray_DATA(dw_hh),
            <double*> cnp.PyArray_DATA(db_ih), <double*> cnp.PyArray_DATA(db_hh),
            <double*> cnp.PyArray_DATA(dpeep), chunk, n_threads_max)


cdef int _backward(int cell, Py_ssize_t T, Py_ssize_t B, Py_ssize_t D, Py_ssize_t H,
                   const Py_ssize_t* bs, bint reverse, bint dhs_full,
                   const floating* x, const floating* w_ih, const floating* w_hh,
                   const floating* peep, const floating* h0, const floating* c0,
                   const floating* hs, const floating* cs, floating* g,
                   const floating* dhs, floating* dh, floating* dc, floating* dx,
                   floating* dw_ih, floating* dw_hh, floating* db_ih, floating* db_hh,
                   floating* dpeep, Py_ssize_t chunk, int n_threads_max) except -1:
    """backward_layer once the shapes are checked: the sweep, then the GEMMs."""
    cdef bint is_gru = cell == GRU
    cdef bint peephole = cell == PEEPHOLE
    cdef Py_ssize_t G = 3 if is_gru else 4
    cdef Py_ssize_t S = 4 * H if is_gru else 5 * H
    cdef Py_ssize_t GH = G * H
    cdef Py_ssize_t NZ = D + H + 1
    cdef Py_ssize_t N = 0, t
    for t in range(T):
        N += bs[t]
    # Rows with one pre-activation gradient for both sides: all of the LSTM's,
    # the GRU's r and z.
    cdef Py_ssize_t n_rz = 2 * H if is_gru else GH
    cdef Py_ssize_t n_kb = (N + KBLOCK - 1) // KBLOCK
    # dh(t-1) = da(t) @ w_hh at every step: pack w_hh once. The GRU's product
    # is [dar daz] @ w_hh[:2H] + dahn @ w_hh[2H:], so it packs the two parts.
    cdef Py_ssize_t size_w = packed_size(<floating> 0, H, n_rz)
    cdef Py_ssize_t size_wn = packed_size(<floating> 0, H, H) if is_gru else 0
    # One malloc for the packed weights and every scratch buffer:
    # z = [x | 1 | h(t-1)] (N, NZ), the weight-gradient blocks [dW_ih | db |
    # dW_hh] (n_rz, NZ) and, for the GRU's n rows, (H, D+1) and (H, H+1),
    # the partial sums of the k blocks and the peephole sums.
    cdef Py_ssize_t size_part = n_kb * GH * NZ if n_kb > 1 else 1
    cdef Py_ssize_t size_peep = n_kb * 3 * H if peephole else 1
    cdef void* raw = malloc(
        (size_w + size_wn + N * NZ + n_rz * NZ + (H * (D + 1) + H * (H + 1) if is_gru else 0)
         + size_part + size_peep) * sizeof(floating) + ALIGN)
    cdef Py_ssize_t* nsz = <Py_ssize_t*> malloc((2 * T + 1) * sizeof(Py_ssize_t))
    if raw == NULL or nsz == NULL:
        free(raw)
        free(nsz)
        raise MemoryError()
    cdef floating* buf = <floating*> align_up(raw)
    cdef floating* wpack = buf
    cdef floating* wpack_n = wpack + size_w if is_gru else wpack
    cdef floating* z = wpack + size_w + size_wn
    cdef floating* wcat = z + N * NZ
    cdef floating* wcat_nx = wcat + n_rz * NZ
    cdef floating* wcat_nh = wcat_nx + H * (D + 1)
    cdef floating* partial = wcat_nx + (H * (D + 1) + H * (H + 1) if is_gru else 0)
    cdef floating* peep_partial = partial + size_part
    cdef Py_ssize_t* offs = nsz + T
    cdef int max_thr = min(n_threads_max, tsrnn_max_threads())
    cdef Py_ssize_t n_chunks = (B + chunk - 1) // chunk
    cdef Py_ssize_t ci, b0, s, tp, na, mc, row, dr, r
    cdef int nb, n_threads
    try:
        with nogil:
            _fill_steps(bs, T, B, nsz, offs)
            pack(<int> H, <int> n_rz, w_hh, <int> H, False, wpack)
            if is_gru:
                pack(<int> H, <int> H, w_hh + 2 * H * H, <int> H, False, wpack_n)
            n_threads = _threads_for(n_chunks, max_thr)
            for ci in prange(n_chunks, schedule='static', num_threads=n_threads):
                b0 = ci * chunk
                nb = <int> min(chunk, B - b0)
                for s in range(T):
                    # The forward sweep's steps in the opposite order.
                    t = s if reverse else T - 1 - s
                    tp = t + 1 if reverse else t - 1
                    na = min(nb, nsz[t] - b0)
                    if na <= 0:
                        continue
                    # Rows [0, mc) continued from step tp, the others started
                    # from h0/c0 (see _forward_chunk).
                    mc = min(na, max(0, nsz[tp] - b0)) if 0 <= tp < T else 0
                    row = offs[t] + b0
                    dr = row if dhs_full else b0
                    if is_gru:
                        if mc > 0:
                            gru_step_backward(mc, H, S, g + row * S,
                                              hs + (offs[tp] + b0) * H, dhs + dr * H,
                                              dh + b0 * H)
                        if na > mc:
                            gru_step_backward(na - mc, H, S, g + (row + mc) * S,
                                              h0 + (b0 + mc) * H, dhs + (dr + mc) * H,
                                              dh + (b0 + mc) * H)
                        # dh0[chunk] += [dar daz] @ w_hh[:2H] + dahn @ w_hh[2H:]
                        packed_gemm(<int> na, <int> H, <int> (2 * H), g + row * S, <int> S,
                                    wpack, dh + b0 * H, <int> H, True)
                        packed_gemm(<int> na, <int> H, <int> H, g + row * S + 3 * H, <int> S,
                                    wpack_n, dh + b0 * H, <int> H, True)
                    else:
                        if mc > 0:
                            lstm_step_backward(mc, H, S, peephole, g + row * S, peep,
                                               cs + (offs[tp] + b0) * H, dhs + dr * H,
                                               dh + b0 * H, dc + b0 * H)
                        if na > mc:
                            lstm_step_backward(na - mc, H, S, peephole, g + (row + mc) * S,
                                               peep, c0 + (b0 + mc) * H,
                                               dhs + (dr + mc) * H, dh + (b0 + mc) * H,
                                               dc + (b0 + mc) * H)
                        # dh0[chunk] = da[t, chunk] @ w_hh
                        packed_gemm(<int> na, <int> H, <int> GH, g + row * S, <int> S,
                                    wpack, dh + b0 * H, <int> H, False)

            if dx != NULL:
                # dx = da @ w_ih over all N rows.
                rows_gemm(N, <int> D, <int> GH, g, <int> S, w_ih, <int> D, dx, <int> D,
                          _threads_for((N + 4 * BLOCK - 1) // (4 * BLOCK), max_thr))
            grad_operand(T, D, H, offs, nsz, reverse, x, h0, hs, z, _threads_for(T, max_thr))
            # [dw_ih | db | dw_hh] = da^T @ [x | 1 | h(t-1)]: one pass over da.
            # The GRU's n rows differ: their hidden side has its own gradient
            # dahn (in the 4th slot), so they take [x | 1] from da_n and [1 | h]
            # from dahn, and no product is computed twice.
            n_threads = _threads_for(((n_rz + WBLOCK - 1) // WBLOCK) * n_kb, max_thr)
            grad_gemm(<int> n_rz, <int> NZ, N, g, <int> S, z, <int> NZ, wcat, partial,
                      n_threads)
            if is_gru:
                n_threads = _threads_for(((H + WBLOCK - 1) // WBLOCK) * n_kb, max_thr)
                grad_gemm(<int> H, <int> (D + 1), N, g + 2 * H, <int> S, z, <int> NZ,
                          wcat_nx, partial, n_threads)
                grad_gemm(<int> H, <int> (H + 1), N, g + 3 * H, <int> S, z + D, <int> NZ,
                          wcat_nh, partial, n_threads)
            for r in range(GH):
                if r < n_rz:
                    # Both biases of a gate enter the same pre-activation.
                    memcpy(dw_ih + r * D, wcat + r * NZ, D * sizeof(floating))
                    db_ih[r] = wcat[r * NZ + D]
                    db_hh[r] = wcat[r * NZ + D]
                    memcpy(dw_hh + r * H, wcat + r * NZ + D + 1, H * sizeof(floating))
                else:
                    memcpy(dw_ih + r * D, wcat_nx + (r - n_rz) * (D + 1), D * sizeof(floating))
                    db_ih[r] = wcat_nx[(r - n_rz) * (D + 1) + D]
                    db_hh[r] = wcat_nh[(r - n_rz) * (H + 1)]
                    memcpy(dw_hh + r * H, wcat_nh + (r - n_rz) * (H + 1) + 1,
                           H * sizeof(floating))
            if peephole:
                peephole_grads(T, offs, nsz, reverse, H, g, S, cs, c0, dpeep, peep_partial,
                               _threads_for(n_kb, max_thr))
    finally:
        free(raw)
        free(nsz)
    return 0
