"""The grading round trip of the section "Fine-tuning a pretrained Transformer": the
solution scores full marks, the blank student version 0, and a classic mistake in one
cell loses exactly that exercise's points (see grading_harness.py). Each autograde runs
the whole notebook, MiniLM's fine-tuning included."""

from __future__ import annotations

from grading_harness import RoundTrip, Section, course_fixture

SECTION = Section.of(
    "fine_tuning",
    wrong={
        "ft-train-epoch": (  # never zeroes the gradients: they accumulate
            "def train_epoch(model, loader, optimizer, scheduler=None, device='cpu'):\n"
            "    model.train()\n"
            "    total, count = 0.0, 0\n"
            "    for batch in loader:\n"
            "        batch = {k: v.to(device) for k, v in batch.items()}\n"
            "        output = model(**batch)\n"
            "        output.loss.backward()\n"
            "        optimizer.step()\n"
            "        if scheduler is not None:\n"
            "            scheduler.step()\n"
            "        total += output.loss.item() * len(batch['labels'])\n"
            "        count += len(batch['labels'])\n"
            "    return total / count\n"
        ),
        "ft-evaluate": (  # dropout left on: no model.eval()
            "def evaluate(model, loader, device):\n"
            "    total, correct, count = 0.0, 0, 0\n"
            "    with torch.no_grad():\n"
            "        for batch in loader:\n"
            "            batch = {k: v.to(device) for k, v in batch.items()}\n"
            "            output = model(**batch)\n"
            "            size = len(batch['labels'])\n"
            "            total += output.loss.item() * size\n"
            "            correct += "
            "(output.logits.argmax(-1) == batch['labels']).sum().item()\n"
            "            count += size\n"
            "    return {'loss': total / count, 'accuracy': correct / count}\n"
        ),
        "ft-early-stopping": (  # keeps a reference to state_dict(), not a copy
            "class EarlyStopping:\n"
            "    def __init__(self, patience=2, min_delta=0.0, mode='max'):\n"
            "        self.patience, self.min_delta, self.mode = "
            "patience, min_delta, mode\n"
            "        self.best_score, self.best_state, self.num_bad_epochs = "
            "None, None, 0\n"
            "\n"
            "    def step(self, score, model):\n"
            "        if self.best_score is None or (\n"
            "                score > self.best_score + self.min_delta "
            "if self.mode == 'max'\n"
            "                else score < self.best_score - self.min_delta):\n"
            "            self.best_score = score\n"
            "            self.best_state = model.state_dict()\n"
            "            self.num_bad_epochs = 0\n"
            "        else:\n"
            "            self.num_bad_epochs += 1\n"
            "        return self.num_bad_epochs >= self.patience\n"
            "\n"
            "    def restore(self, model):\n"
            "        model.load_state_dict(self.best_state)\n"
        ),
    },
)

course = course_fixture(SECTION)


class TestRoundTrip(RoundTrip):
    section = SECTION
