"""Write several output files so that either all of them appear or none does."""
import os
import tempfile


def _temp_beside(path):
    """Create an empty temporary file next to ``path``, keeping its extension.

    The same directory keeps ``os.replace`` an atomic rename (never a copy
    across file systems); the extension lets matplotlib pick the format.
    """
    directory, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{ext}", dir=directory)
    os.close(fd)
    # mkstemp makes the file private (0600); give the output the permissions
    # an ordinary open() would have.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return tmp


def write_outputs(writers):
    """Write every ``(path, write_fn)`` pair, or none of them.

    Each ``write_fn(tmp_path)`` writes to a temporary file; the files are moved
    into place together at the end, and removed if anything failed.
    """
    done = []
    try:
        for path, write in writers:
            tmp = _temp_beside(path)
            done.append((tmp, path))
            write(tmp)
        for tmp, path in done:
            os.replace(tmp, path)
    finally:
        for tmp, _ in done:
            if os.path.exists(tmp):
                os.unlink(tmp)
