"""Text: vocabularies and tokenisation, decoding (greedy, beam search, sampling) and
metrics (exact match, BLEU)."""
