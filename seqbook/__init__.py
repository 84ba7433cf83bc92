"""seqbook: the helper package of the book *Everything Is a Mapping*.

Laid out by role:

* ``seqbook.models`` -- reference models, the code each section builds;
* ``seqbook.data`` -- the corpus and generated data sets and tasks;
* ``seqbook.train`` -- the training loop, fine-tuning, experiments;
* ``seqbook.text`` -- vocabularies, decoding, metrics;
* ``seqbook.book`` -- the section registry, claims, plotting, measuring;
* ``seqbook.checks`` -- the exercise checks that the test cells call;

and the run-time helpers re-exported here (seeds, generators, the device).
"""

from seqbook import _moved
from seqbook.runtime import generator, get_device, seed_for, set_seed

_moved.install()  # old import paths of renamed modules, for one release

__all__ = ["generator", "get_device", "seed_for", "set_seed", "__version__"]
__version__ = "0.1.0"
