"""Next-letter prediction and text sampling: the classic char-RNN, letter by letter
================================================================================

The text is cut into a few long sequences of characters, read side by side
as one minibatch (Karpathy's char-rnn). Step t of a sequence is the one-hot
code of a character and its label is the next character, so y has a label at
every step and RNNClassifier trains with a next-letter loss at every step.
``tbptt_length=25`` (the ``seq_length`` of min-char-rnn) runs each long
sequence in segments of 25 characters: the hidden state flows on from one
segment to the next, the gradient stops at segment edges, and the weights
are updated after every segment.

Sampling is letter by letter: ``predict_proba(..., return_state=True)`` reads
the prompt and returns the hidden state after it; each drawn character is
then fed back alone, starting from the state the previous call returned.

The text is the opening of Lewis Carroll's "Alice's Adventures in
Wonderland" (1865), which is in the public domain.

Run it::

    python examples/char_rnn.py           # about 15 seconds on 2 cores
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

SEGMENT = 25  # characters per truncated-BPTT segment, min-char-rnn's seq_length
N_SEQUENCES = 8  # the text as this many sequences, trained side by side


def one_hot(codes, vocab_size):
    """Integer codes of any shape -> one-hot rows with a last axis of vocab_size."""
    return np.eye(vocab_size, dtype=np.float32)[codes]


def sample(model, vocab, prompt, n_chars, rng):
    """Continue ``prompt`` one character at a time, carrying the hidden state."""
    index = {ch: i for i, ch in enumerate(vocab)}
    codes = [index[ch] for ch in prompt]
    # The prompt as one sequence; the last step's probabilities are those of
    # the next character, and the state is the network's after the prompt.
    proba, state = model.predict_proba(one_hot([codes], len(vocab)), return_state=True)
    for _ in range(n_chars):
        codes.append(model.classes_[rng.choice(proba.shape[-1], p=proba[0, -1])])
        # One new step, started from where the previous call ended.
        proba, state = model.predict_proba(one_hot([[codes[-1]]], len(vocab)),
                                           initial_state=state, return_state=True)
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
    # N_SEQUENCES equal pieces of the text; in each, character t predicts
    # character t + 1 (the last character of the text is only a label).
    length = (len(codes) - 1) // N_SEQUENCES
    starts = np.arange(N_SEQUENCES)[:, None] * length + np.arange(length)
    X = one_hot(codes[starts], len(vocab))  # (8, length, vocab)
    y = codes[starts + 1]                    # (8, length): a label per step
    print(f"{len(TEXT)} characters, {len(vocab)} distinct, as {N_SEQUENCES} sequences "
          f"of {length}")

    model = RNNClassifier(
        hidden_layer_sizes=32 if quick else 128,
        tbptt_length=SEGMENT,
        learning_rate_init=0.01,
        max_iter=2 if quick else 40,
        random_state=0,
    )
    start = time.perf_counter()
    model.fit(X, y)
    print(f"trained {model.n_iter_} epochs of {-(-length // SEGMENT)} segments in "
          f"{time.perf_counter() - start:.1f}s; "
          f"loss per character {model.loss_curve_[0]:.3f} -> {model.loss_curve_[-1]:.3f} "
          f"(uniform guessing: {np.log(len(vocab)):.3f})")

    accuracy = model.score(X, y)
    print(f"next-letter accuracy on the text: {accuracy:.3f} "
          f"(best guess from the previous letter alone: {bigram_accuracy(codes):.3f})")

    prompt = "Alice was beginning to get"
    proba = model.predict_proba(one_hot([codes[: len(prompt)]], len(vocab)))[0, -1]
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
