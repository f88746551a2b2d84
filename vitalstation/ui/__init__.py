"""The only package that imports PySide6, pyqtgraph and qasync.

PySide6 is imported here, before anything else in the package, so that pyqtgraph and qasync
(which use whichever Qt binding is imported first) pick it (PLATFORM.md).
"""

import os

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
os.environ.setdefault("QT_API", "pyside6")

import PySide6.QtCore  # noqa: E402,F401 - imported first on purpose (see above)
