"""``python -m simulator``: the same as ``vitalstation-sim``."""

import sys

from simulator.cli import main

sys.exit(main())
