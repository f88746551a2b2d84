"""``python -m vitalstation``: the same as the ``vitalstation`` command."""

import sys

from vitalstation.cli import main

sys.exit(main())
