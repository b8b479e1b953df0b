"""The command line's training progress: a tqdm bar, or one line per epoch."""
import sys


class Progress:
    """Training callback that draws a progress bar on stderr.

    Called by ``RNNForecaster.fit`` after each epoch with a dict holding
    ``epoch``, ``max_iter``, ``loss``, ``validation_score`` and ``elapsed``.
    Uses tqdm when it is installed; otherwise prints one plain line per epoch
    (rewritten in place on a terminal), since a log file full of carriage
    returns is unreadable.
    """

    def __init__(self, max_iter, stream=None, use_tqdm=True):
        self.stream = sys.stderr if stream is None else stream
        self._bar = None
        self._last_width = 0
        if use_tqdm:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                # A positive delay keeps tqdm from drawing an empty bar before
                # the first epoch, which would precede an error found by fit's
                # checks; the clock for rates and time left still starts here.
                self._bar = tqdm(total=max_iter, desc="training", unit="epoch",
                                 file=self.stream, leave=True, dynamic_ncols=True,
                                 delay=1e-6)

    @staticmethod
    def _scores(info):
        parts = [f"loss {info['loss']:.4g}"]
        if info.get("validation_score") is not None:
            parts.append(f"validation score {info['validation_score']:.4g}")
        return ", ".join(parts)

    def __call__(self, info):
        if self._bar is not None:
            self._bar.update(info["epoch"] - self._bar.n)
            self._bar.set_postfix_str(self._scores(info), refresh=True)
            return
        epoch, total, elapsed = info["epoch"], info["max_iter"], info["elapsed"]
        # An upper bound: early stopping may end training sooner.
        left = elapsed / epoch * (total - epoch)
        line = (f"training: epoch {epoch}/{total}, {self._scores(info)}, "
                f"{elapsed:.1f}s elapsed, at most {left:.0f}s left")
        if self.stream.isatty():
            pad = " " * max(0, self._last_width - len(line))
            self.stream.write("\r" + line + pad)
            self._last_width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self):
        if self._bar is not None:
            self._bar.close()
        elif self._last_width:
            self.stream.write("\n")
            self.stream.flush()
