"""``python -m tsrnn``: the same command line as the ``tsrnn`` console script."""
import sys

from tsrnn.cli import main

if __name__ == "__main__":
    sys.exit(main())
