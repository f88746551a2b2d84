"""PyInstaller runtime hook: bind pyqtgraph and qasync to PySide6, the only Qt in the bundle.

Both pick whichever binding they find first; the bundle has no other, but an explicit choice
also silences their probing (PLATFORM.md). Runs before any of the station's code.
"""

import os

os.environ.setdefault("QT_API", "pyside6")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
