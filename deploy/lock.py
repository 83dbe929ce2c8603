"""Print requirements.lock: every package pip resolves for ``.[dev]`` from pyproject.toml,
pinned (issue 14). Run from the repository root after changing dependencies:

    .venv/bin/pip install -e '.[dev]'
    .venv/bin/python deploy/lock.py > requirements.lock

It asks pip for the resolution (``pip install --dry-run --report``, no install) and pins each
package at the version installed in this venv, the one the test suite ran with.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HEADER = """\
# Pinned versions CI and deploy/Dockerfile install from (issue 14): the set pip resolves for
# `.[dev]` from pyproject.toml, at the versions the test suite last passed with.
# Regenerate after changing dependencies in pyproject.toml:
#   .venv/bin/pip install -e '.[dev]'
#   .venv/bin/python deploy/lock.py > requirements.lock
"""


def resolved_names() -> list[str]:
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
             "--quiet", "--report", str(report), ".[dev]"],
            check=True,
        )  # fmt: skip
        installs = json.loads(report.read_text())["install"]
    return sorted({item["metadata"]["name"].lower() for item in installs} - {"sotay"})


def pinned(name: str) -> str:
    try:
        return f"{name}=={importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        sys.exit(f"{name} is not installed here: run `pip install -e '.[dev]'` first")


if __name__ == "__main__":
    sys.stdout.write(HEADER + "".join(pinned(name) + "\n" for name in resolved_names()))
