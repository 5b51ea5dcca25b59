"""``python -m ociinspect``."""

import sys

from ociinspect.cli import main

sys.exit(main())
