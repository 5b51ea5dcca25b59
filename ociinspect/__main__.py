"""``python -m ociinspect``."""

from ociinspect.cli import run

run()
