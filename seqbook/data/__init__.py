"""Data: the frozen corpus of Python's help topics (``corpus``) and generated data
sets and toy tasks (dates, SCAN, sentiment, memory, repetition, heads, seasonal
series): every example is produced by code in this package, so nothing is downloaded
and every split is reproducible."""
