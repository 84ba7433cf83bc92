"""Grading tools for instructors, independent of the book's `seqbook` package.

* :mod:`grading.execution` -- nbgrader's execution step with memory, time and output
  limits, a dying kernel costing only the cells after it, and tamper checks after each
  test cell (configured in ``nbgrader_config.py``);
* :mod:`grading.kernel` -- the kernel's process seen through jupyter_client's public
  provisioner API: its memory limit applied and read back (loudly when it cannot be),
  and the kernel stopped;
* :mod:`grading.sandbox` -- the operating-system sandbox each kernel runs in;
* :mod:`grading.feedback` -- an nbgrader preprocessor that removes hidden tests, and the
  lines of output that would reveal them, from the feedback returned to students
  (configured in ``nbgrader_config.py``);
* :mod:`grading.workers` -- autograding as parallel worker processes that share one
  gradebook database (PostgreSQL for more than one worker);
* :mod:`grading.report` -- grade export (one row per student, one column per exercise)
  and a class report plot.

Run the command-line tools from the course directory (the repository root), e.g.
``python -m grading.workers --help``.
"""
