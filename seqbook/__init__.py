"""seqbook: the helper package of the book *Everything Is a Mapping*.

It holds what several sections share: reference implementations that later sections
reuse (``seqbook.attention``), plotting helpers (``seqbook.plotting``), the exercise
checks that test cells call (``seqbook.checks``) and run-time helpers re-exported here.
"""

from seqbook import _moved
from seqbook.runtime import generator, get_device, seed_for, set_seed

_moved.install()  # old import paths of renamed modules, for one release

__all__ = ["generator", "get_device", "seed_for", "set_seed", "__version__"]
__version__ = "0.1.0"
