"""``python -m ociinspect``."""

import gc

# the command line's start-up: no cyclic garbage collection while the modules are imported (~35 collections,
# ~4-10 ms on a 2-core machine); ``run`` turns it back on, with every start-up object frozen, once the command's
# module is imported (:func:`ociinspect.cli.run`)
gc.disable()

from ociinspect.cli import run  # noqa: E402

run()
