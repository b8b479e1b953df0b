"""Classify images by reading them row by row, as the classic MNIST LSTM does
==========================================================================

scikit-learn's 8x8 handwritten digits (bundled with sklearn, no download) are
turned into sequences of 8 time steps with 8 pixels each: the network sees the
top row first and the bottom row last, and classifies the digit from its final
hidden state. This is the 3-D input of RNNClassifier:
``(n_sequences, n_timesteps, n_features)``, one label per sequence.

Run it::

    python examples/classify_digits.py           # about a minute on 2 cores
    python examples/classify_digits.py --quick   # a few seconds, lower accuracy
"""
import argparse
import time

from sklearn.datasets import load_digits
from sklearn.metrics import classification_report
from sklearn.model_selection import train_test_split

from tsrnn import RNNClassifier


def main(quick=False):
    digits = load_digits()
    # (1797, 8, 8): image i is a sequence of 8 rows (steps) of 8 pixels
    # (features). Pixel values run 0..16; scale them to 0..1.
    X = digits.images / 16.0
    X_train, X_test, y_train, y_test = train_test_split(
        X, digits.target, test_size=0.25, stratify=digits.target, random_state=0
    )
    clf = RNNClassifier(
        hidden_layer_sizes=32 if quick else 64,
        cell="lstm",
        max_iter=3 if quick else 30,
        early_stopping=not quick,
        random_state=0,
    )
    start = time.perf_counter()
    clf.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    print(f"trained {clf.n_iter_} epochs on {len(X_train)} images in {seconds:.1f}s")
    print(classification_report(y_test, clf.predict(X_test), digits=3))
    accuracy = clf.score(X_test, y_test)
    print(f"test accuracy: {accuracy:.3f} (chance: 0.100)")
    return accuracy


if __name__ == "__main__":
    # sphinx-gallery runs the script without its docstring.
    parser = argparse.ArgumentParser(description=(__doc__ or " ").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings, for smoke tests")
    main(parser.parse_args().quick)
