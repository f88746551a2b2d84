"""The bundle's one program: ``vitalstation``, or ``vitalstation-sim`` when called by that name.

The Linux bundle has one executable and a ``vitalstation-sim`` symlink to it (one copy of the
Python archive instead of two); the name it was started by picks the command line.
"""

import os
import sys


def main() -> int:
    """Run the command line the program was called as."""
    if os.path.basename(sys.argv[0]).lower().startswith("vitalstation-sim"):
        from simulator.cli import main as run
    else:
        from vitalstation.cli import main as run
    return run()


if __name__ == "__main__":
    sys.exit(main())
