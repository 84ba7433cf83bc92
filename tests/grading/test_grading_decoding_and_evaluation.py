"""The grading round trip of the section "Decoding and evaluation": the solution scores
full marks, the blank student version 0, and a classic mistake in one cell loses
exactly that exercise's points (see grading_harness.py)."""

from __future__ import annotations

from grading_harness import RoundTrip, Section, course_fixture

SECTION = Section.of(
    "decoding_and_evaluation",
    wrong={
        "dec-beam": (  # no length normalisation: finished hypotheses by raw sum
            "def beam_search(next_log_probs, bos_id, eos_id, beam_size, max_len,\n"
            "                alpha=1.0):\n"
            "    alive, finished = [([], 0.0)], []\n"
            "    while alive:\n"
            "        lp = next_log_probs("
            "torch.tensor([[bos_id] + t for t, _ in alive]))\n"
            "        lp = lp.double()\n"
            "        v = lp.size(1)\n"
            "        s = torch.tensor([x for _, x in alive], dtype=torch.double)\n"
            "        total = (s[:, None] + lp).flatten()\n"
            "        order = total.argsort(descending=True)"
            "[:beam_size - len(finished)]\n"
            "        nxt = []\n"
            "        for i in order.tolist():\n"
            "            t = alive[i // v][0] + [i % v]\n"
            "            if i % v == eos_id or len(t) == max_len:\n"
            "                finished.append((float(total[i]), t))\n"
            "            else:\n"
            "                nxt.append((t, float(total[i])))\n"
            "        alive = nxt\n"
            "    score, tokens = max(finished, key=lambda f: f[0])\n"
            "    return tokens, score / len(tokens) ** alpha\n"
        ),
        "dec-bleu": (  # the average of sentence-level BLEU
            "def corpus_bleu(hypotheses, references):\n"
            "    def one(h, refs):\n"
            "        t = h.split()\n"
            "        rs = [r.split() for r in refs]\n"
            "        logs, zeros = 0.0, 0\n"
            "        for n in range(1, 5):\n"
            "            c = ngram_counts(t, n)\n"
            "            ceil = Counter()\n"
            "            for r in rs:\n"
            "                ceil |= ngram_counts(r, n)\n"
            "            m = sum(min(k, ceil[g]) for g, k in c.items())\n"
            "            tot = sum(c.values())\n"
            "            if tot == 0:\n"
            "                return 0.0\n"
            "            if m == 0:\n"
            "                zeros += 1\n"
            "                logs += math.log(1 / (2 ** zeros * tot))\n"
            "            else:\n"
            "                logs += math.log(m / tot)\n"
            "        if zeros == 4:\n"
            "            return 0.0\n"
            "        r = min((len(x) for x in rs), "
            "key=lambda x: (abs(x - len(t)), x))\n"
            "        bp = 1.0 if len(t) >= r else math.exp(1 - r / len(t))\n"
            "        return 100 * bp * math.exp(logs / 4)\n"
            "    return sum(one(h, r) for h, r in zip(hypotheses, references)) / len(\n"
            "        hypotheses)\n"
        ),
    },
)

course = course_fixture(SECTION)


class TestRoundTrip(RoundTrip):
    section = SECTION
