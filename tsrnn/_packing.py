"""Variable-length batches in the layout of the kernels (torch's PackedSequence).

``tsrnn.functional`` takes a padded batch-first batch and ``lengths``; the
kernels take packed rows (see the design comment of ``_cells.pyx``). This
module maps one to the other: ``check_lengths`` validates the lengths and
describes the packing, ``Packing`` gathers inputs into rows, scatters rows
back into padded arrays, and reorders states between the user's sequence
order and the kernels' (sorted by decreasing length, stable).
"""
import numpy as np

from . import _cells


def check_lengths(lengths, batch, time):
    """A Packing for ``lengths``, or None when every sequence has all steps."""
    if lengths is None:
        return None
    a = np.asarray(lengths)
    if a.dtype.kind not in "iu":
        raise TypeError(f"lengths must hold integers, got dtype {a.dtype}")
    if a.shape != (batch,):
        raise ValueError(f"lengths has shape {a.shape}, expected (batch,) = ({batch},)")
    bad = np.flatnonzero((a < 1) | (a > time))
    if bad.size:
        raise ValueError(
            f"lengths[{bad[0]}] = {a[bad[0]]}, but every length must be between 1 and "
            f"the number of time steps of x, {time}"
        )
    if (a == time).all():
        return None  # the unpacked path gives the same numbers, with no copies
    return Packing(a.astype(np.intp))


class Packing:
    """Where the valid steps of a variable-length batch sit in the kernels' rows.

    The kernels take a batch of variable-length sequences packed as torch's
    ``PackedSequence`` is: sequences sorted by decreasing length (stable), and
    step t holding the ``batch_sizes[t]`` sequences still running, one row
    each, steps one after the other. Padded steps have no row, so the kernels
    never compute them. Row r is step ``step[r]`` of user sequence ``seq[r]``;
    kernel state row i is user sequence ``order[i]``.
    """

    __slots__ = ("order", "batch_sizes", "seq", "step", "n_rows")

    def __init__(self, lengths):
        batch = lengths.shape[0]
        self.order = np.argsort(-lengths, kind="stable")
        counts = np.bincount(lengths)
        self.batch_sizes = (batch - np.cumsum(counts)[:-1]).astype(np.intp)
        starts = np.cumsum(self.batch_sizes) - self.batch_sizes
        self.n_rows = int(self.batch_sizes.sum())
        self.step = np.repeat(np.arange(len(self.batch_sizes)), self.batch_sizes)
        self.seq = self.order[np.arange(self.n_rows) - starts[self.step]]

    def pack(self, a, dtype, name):
        """Batch-first (B, T, F) -> packed (N, F) contiguous rows of ``dtype``."""
        out = np.ascontiguousarray(a[self.seq, self.step], dtype=dtype)
        if _cells.first_nonfinite((out,)) >= 0:
            raise ValueError(f"{name} contains NaN or inf within the sequence lengths "
                             f"(after conversion to {dtype})")
        return out

    def unpack(self, rows, time):
        """Packed (N, F) -> batch-first (B, time, F), zeros past each length."""
        out = np.zeros((len(self.order), time, rows.shape[-1]), rows.dtype)
        out[self.seq, self.step] = rows
        return out

    def to_kernel(self, state):
        """(L, B, H) user state -> kernel row order (a copy)."""
        return None if state is None else np.ascontiguousarray(state[:, self.order])

    def to_user(self, state):
        """(L, B, H) kernel-order state -> user order (a new array)."""
        out = np.empty_like(state)
        out[:, self.order] = state
        return out
