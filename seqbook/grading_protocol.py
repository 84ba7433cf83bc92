"""What the grading process and the checks running in the kernel agree on.

The checks (``seqbook.checks``) run inside the kernel, beside the submission; the grader
(``grading/`` in the course directory, not part of this package) reads what they write.
The grader loads this file by itself, without running ``seqbook/__init__.py`` (which
imports torch) or ``seqbook/checks/__init__.py`` (which installs hooks and records the
integrity baseline): keep it free of imports and of code that does anything.
"""

# Starts every message of a detected tampering: the checks write it (on stderr and in
# IntegrityError), the grader keeps the lines that carry it when it cuts a flood of
# output and prefixes it to its own integrity findings, and nbgrader_config.py's
# IgnorePattern keeps the stderr outputs that carry it.
INTEGRITY_MARKER = "SEQBOOK-INTEGRITY"
