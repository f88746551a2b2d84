"""The layering of DESIGN.md, checked rather than hoped for (napari's import-linter lesson)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("vitalstation", "simulator")

# Third-party clients each live in their one module (DESIGN.md: "A third-party client lives in
# its one module"). Prefix match on the importing module's dotted name.
# Settings' "Test connection" probes (``*_probe``) sit beside the client they exercise.
CLIENT_HOMES = {
    "paho": (
        "vitalstation.ingest.mqtt", "vitalstation.ingest.mqtt_client",
        "vitalstation.ingest.mqtt_probe", "simulator",
    ),
    "boto3": ("vitalstation.ingest.kinesis", "vitalstation.sinks.dynamodb",
              "vitalstation.sinks.dynamodb_probe", "simulator"),
    "botocore": ("vitalstation.ingest.kinesis", "vitalstation.sinks.dynamodb",
                 "vitalstation.sinks.dynamodb_probe", "simulator"),
    "sqlalchemy": ("vitalstation.storage",),
    "alembic": ("vitalstation.storage",),
    "PySide6": ("vitalstation.ui",),
    "shiboken6": ("vitalstation.ui",),
    "pyqtgraph": ("vitalstation.ui",),
    "qasync": ("vitalstation.ui",),
    "keyring": ("vitalstation.config.secrets",),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_each_third_party_client_is_imported_only_in_its_home() -> None:
    offences = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = _module_name(path)
            for top in _imports(path) & CLIENT_HOMES.keys():
                homes = CLIENT_HOMES[top]
                if not any(module == h or module.startswith(h + ".") for h in homes):
                    offences.append(f"{module} imports {top} (allowed only in {', '.join(homes)})")
    assert offences == []


def test_import_linter_contracts_hold() -> None:
    """Layers point downward; Qt, SQLAlchemy and I/O clients stay in their packages."""
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.fail("lint-imports is missing: install the test extra (pip install -e '.[test]')")
    result = subprocess.run(
        [lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
