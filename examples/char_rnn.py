"""Next-letter prediction and text sampling, in the spirit of min-char-rnn
=======================================================================

The text is a character stream: row t is the one-hot code of character t, and
its label is character t + 1. RNNClassifier reads the 25 characters ending at
each row (the ``seq_length`` of Karpathy's min-char-rnn) and predicts the next
one. Sampling feeds the model's own output back in, one character at a time.

The text is the opening of Lewis Carroll's "Alice's Adventures in
Wonderland" (1865), which is in the public domain.

Run it::

    python examples/char_rnn.py           # about a minute on 2 cores
    python examples/char_rnn.py --quick   # seconds, for smoke tests
"""
import argparse
import time
from collections import Counter, defaultdict

import numpy as np

from tsrnn import RNNClassifier

TEXT = """\
Alice was beginning to get very tired of sitting by her sister on the bank, \
and of having nothing to do: once or twice she had peeped into the book her \
sister was reading, but it had no pictures or conversations in it, "and what \
is the use of a book," thought Alice "without pictures or conversations?"

So she was considering in her own mind (as well as she could, for the hot day \
made her feel very sleepy and stupid), whether the pleasure of making a \
daisy-chain would be worth the trouble of getting up and picking the daisies, \
when suddenly a White Rabbit with pink eyes ran close by her.

There was nothing so very remarkable in that; nor did Alice think it so very \
much out of the way to hear the Rabbit say to itself, "Oh dear! Oh dear! I \
shall be late!" (when she thought it over afterwards, it occurred to her that \
she ought to have wondered at this, but at the time it all seemed quite \
natural); but when the Rabbit actually took a watch out of its \
waistcoat-pocket, and looked at it, and then hurried on, Alice started to her \
feet, for it flashed across her mind that she had never before seen a rabbit \
with either a waistcoat-pocket, or a watch to take out of it, and burning with \
curiosity, she ran across the field after it, and fortunately was just in time \
to see it pop down a large rabbit-hole under the hedge.

In another moment down went Alice after it, never once considering how in the \
world she was to get out again.

The rabbit-hole went straight on like a tunnel for some way, and then dipped \
suddenly down, so suddenly that Alice had not a moment to think about stopping \
herself before she found herself falling down a very deep well.
"""

WINDOW = 25  # characters of context, min-char-rnn's seq_length


def one_hot(codes, vocab_size):
    """(n,) integer codes -> (n, vocab_size) stream of one-hot rows."""
    return np.eye(vocab_size, dtype=np.float32)[codes]


def sample(model, vocab, prompt, n_chars, rng):
    """Continue ``prompt`` by drawing each next character from the model."""
    index = {ch: i for i, ch in enumerate(vocab)}
    codes = [index[ch] for ch in prompt]
    for _ in range(n_chars):
        # The model only looks WINDOW rows back, so only those are passed;
        # the last row's probabilities are those of the next character.
        p = model.predict_proba(one_hot(codes[-WINDOW:], len(vocab)))[-1]
        codes.append(model.classes_[rng.choice(len(p), p=p)])
    return "".join(vocab[c] for c in codes)


def bigram_accuracy(codes):
    """Accuracy of always guessing the most frequent successor of a character."""
    successors = defaultdict(Counter)
    for a, b in zip(codes[:-1], codes[1:]):
        successors[a][b] += 1
    best = {a: c.most_common(1)[0][0] for a, c in successors.items()}
    return float(np.mean([best[a] == b for a, b in zip(codes[:-1], codes[1:])]))


def main(quick=False):
    vocab = sorted(set(TEXT))
    codes = np.array([vocab.index(ch) for ch in TEXT])
    X = one_hot(codes[:-1], len(vocab))  # character t ...
    y = codes[1:]                        # ... predicts character t + 1
    print(f"{len(TEXT)} characters, {len(vocab)} distinct")

    model = RNNClassifier(
        hidden_layer_sizes=16 if quick else 64,
        window=WINDOW,
        learning_rate_init=0.01,
        max_iter=2 if quick else 20,
        random_state=0,
    )
    start = time.perf_counter()
    model.fit(X, y)
    print(f"trained {model.n_iter_} epochs in {time.perf_counter() - start:.1f}s; "
          f"loss per character {model.loss_curve_[0]:.3f} -> {model.loss_curve_[-1]:.3f} "
          f"(uniform guessing: {np.log(len(vocab)):.3f})")

    accuracy = model.score(X, y)
    print(f"next-letter accuracy on the text: {accuracy:.3f} "
          f"(best guess from the previous letter alone: {bigram_accuracy(codes):.3f})")

    prompt = "Alice was beginning to get"
    proba = model.predict_proba(one_hot(codes[: len(prompt)], len(vocab)))[-1]
    top = np.argsort(proba)[::-1][:3]
    guesses = ", ".join(f"{vocab[model.classes_[k]]!r} {proba[k]:.2f}" for k in top)
    print(f"after {prompt!r} the model expects: {guesses}")

    rng = np.random.RandomState(0)
    text = sample(model, vocab, prompt, 40 if quick else 300, rng)
    print("sample:\n" + text)
    return model, accuracy, text


if __name__ == "__main__":
    # sphinx-gallery runs the script without its docstring.
    parser = argparse.ArgumentParser(description=(__doc__ or " ").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings, for smoke tests")
    main(parser.parse_args().quick)
