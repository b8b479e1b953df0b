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


def replace_directory(path, write):
    """Write a directory (e.g. a parquet dataset) at ``path``, whole or not at all.

    ``write(tmp_dir)`` fills an empty temporary directory beside ``path``;
    only when it returns is the directory renamed to ``path``. A directory
    cannot be renamed over a non-empty one, so an older output at ``path``
    is first renamed aside and removed once the new one is in place (or put
    back if the rename fails): ``path`` holds the old output whole, the new
    one whole, or, between two renames, nothing.
    """
    import shutil

    directory, name = os.path.split(os.path.abspath(path))
    tmp = tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    # mkdtemp makes the directory private (0700); give the output the
    # permissions an ordinary mkdir would have.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    old = None
    try:
        write(tmp)
        if os.path.lexists(path):
            old = tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=directory)
            os.rmdir(old)  # only the name is wanted; rename needs it free
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except OSError:
            if old is not None:
                os.replace(old, path)
                old = None
            raise
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            if os.path.isdir(old) and not os.path.islink(old):
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.unlink(old)
