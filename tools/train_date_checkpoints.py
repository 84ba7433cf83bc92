"""Train the two date-translation models of "Sequence to sequence with attention" and
write their checkpoints to seqbook/checkpoints/ (shipped with the package).

    python tools/train_date_checkpoints.py            # both models, seeded, CPU
    python tools/train_date_checkpoints.py --steps 300 --out /tmp/ckpt   # a quick try

Both models see the same training pairs in the same order for the same number of steps;
the script prints and stores (in the checkpoint's ``info``) the training time, the
machine, and the exact match on the held-out dates.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from seqbook.data.dates import date_split
from seqbook.models import seq2seq_attention as seq2seq
from seqbook.train.checkpoints import CHECKPOINT_DIR, save_checkpoint

SPLIT = dict(train_dates=5000, test_dates=1000, formats_per_date=2, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR)
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    vocab = seq2seq.date_vocabulary()
    train, test = date_split(**SPLIT)
    machine = f"{platform.machine()} CPU, 1 thread, torch {torch.__version__}"
    for name, attention in (("dates_attention", True), ("dates_no_attention", False)):
        torch.manual_seed(0)
        model = seq2seq.Seq2Seq(
            len(vocab), attention=attention, bos_id=vocab.stoi[seq2seq.BOS]
        )
        start = time.perf_counter()
        losses = seq2seq.train_seq2seq(
            model, train, vocab, steps=args.steps, seed=0, log_every=50
        )
        seconds = time.perf_counter() - start
        predictions, _ = seq2seq.translate(model, test, vocab)
        accuracy = seq2seq.exact_match(predictions, test)
        info = dict(
            steps=args.steps,
            batch_size=64,
            train_seconds=round(seconds, 1),
            machine=machine,
            split=str(SPLIT),
            test_exact_match=accuracy,
            final_loss=losses[-1],
        )
        path = args.out / f"{name}.pt"
        save_checkpoint(path, model, info, itos=vocab.itos)
        print(
            f"{name}: {seconds:.0f} s, final loss {losses[-1]:.4f}, "
            f"held-out exact match {accuracy:.4f}, "
            f"{path.stat().st_size / 1e6:.2f} MB -> {path}"
        )


if __name__ == "__main__":
    main()
