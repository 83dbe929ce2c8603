"""What every benchmark writes next to its figures: the machine it ran on, the commit, and its own
section of docs/benchmarks.md (other benchmarks share the file, so only that section is replaced).
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import textwrap
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def cpu_model() -> str:
    """The processor's name as /proc/cpuinfo gives it (platform.processor() is often empty)."""
    model = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        model = found.group(1).strip() if found else model
    return model


def cores_and_python() -> str:
    return f"{os.cpu_count()} cores ({cpu_model()}), Python {platform.python_version()}"


def system() -> str:
    return f"{platform.system()} {platform.release()}"


def load_average() -> float:
    """The 1-minute load average: this machine is shared, so every figure says how busy it was."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def git_state() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "commit unknown"
    return f"commit {head}" + (" plus uncommitted changes" if dirty else "")


def write_section(section: str, body: str) -> None:
    """Replace (or append) only ``section`` ("## Name") of docs/benchmarks.md."""
    text = DOCS.read_text("utf-8") if DOCS.exists() else "# Benchmarks\n"
    new = f"{section}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: new + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + new
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text, "utf-8")


def wrap(paragraph: str, *, bullet: bool = False) -> str:
    """Fill a paragraph, or a "- " bullet with a hanging indent, to the file's 100 columns."""
    indent = "  " if bullet or paragraph.startswith("- ") else ""
    return textwrap.fill(paragraph, 100, subsequent_indent=indent, break_on_hyphens=False)
