"""Train the SCAN checkpoints of Part 4's "The Transformer encoder-decoder" section.

    python tools/train_scan_checkpoints.py --split simple
    python tools/train_scan_checkpoints.py --split length

Seeded; on one CPU thread each run takes several minutes (the wall-clock time is stored
in the checkpoint's ``info``). The learning rate decays linearly to 0 over ``--epochs``
epochs; the checkpoint is rewritten after every epoch (an interrupted run leaves a
usable file, but only a complete run reproduces the shipped one). Writes
``seqbook/checkpoints/scan_<split>.pt``.

No model is selected: the number of epochs, the learning rate and the schedule are
fixed in advance, and the checkpoint is the model after the last epoch. The progress
printed after each epoch is the exact match on training commands (``--monitor-size``
of them), never on the test split, which only the book's notebook reads, once.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import seqbook
from seqbook.data.scan import length_split, scan_examples, simple_split
from seqbook.models.transformer_seq2seq import (
    TransformerSeq2Seq,
    evaluate_exact_match,
    scan_vocabularies,
    train_seq2seq,
)
from seqbook.train.checkpoints import CHECKPOINT_DIR, save_checkpoint

CONFIG = dict(dim=64, num_heads=4, hidden_dim=128, num_layers=2, dropout=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split", choices=["simple", "length"], required=True)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--monitor-size",
        type=int,
        default=300,
        help="training commands scored after each epoch (progress only)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where to write (default: the shipped checkpoint's path)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    seqbook.set_seed(args.seed)
    train, _ = simple_split() if args.split == "simple" else length_split()  # no test
    source_vocab, target_vocab = scan_vocabularies(scan_examples())
    model = TransformerSeq2Seq(len(source_vocab), len(target_vocab), **CONFIG)
    path = args.output or CHECKPOINT_DIR / f"scan_{args.split}.pt"
    start = time.perf_counter()

    def on_epoch_end(epoch, losses):
        seconds = time.perf_counter() - start
        accuracy, _ = evaluate_exact_match(
            model, train[: args.monitor_size], source_vocab, target_vocab
        )
        print(
            f"epoch {epoch + 1}: loss {sum(losses[-20:]) / 20:.3f}, exact match on "
            f"{args.monitor_size} training commands {accuracy:.1f} %, {seconds:.0f} s",
            flush=True,
        )
        info = dict(
            split=args.split,
            epochs=epoch + 1,
            steps=len(losses),
            seed=args.seed,
            batch_size=args.batch_size,
            lr=args.lr,
            schedule="200-step warm-up, linear decay to 0 over all epochs",
            train_seconds=round(seconds),
            threads=1,
        )
        save_checkpoint(
            path,
            model,
            info,
            source_tokens=source_vocab.itos,
            target_tokens=target_vocab.itos,
        )

    train_seq2seq(
        model,
        train,
        source_vocab,
        target_vocab,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        decay=True,
        on_epoch_end=on_epoch_end,
    )
    print(f"saved {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
