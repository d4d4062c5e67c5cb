"""py-spy on a running process, summarised as "where does the time go".

py-spy is a tool of the benchmark only (``.venv/bin/pip install py-spy``), never a
dependency of the project; without it the profile is skipped and the reason reported.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

__all__ = ["py_spy_path", "record", "summarise"]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy_path() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


def record(pid: int, seconds: int, out: Path, *, rate: int = 100) -> str | None:
    """Record ``seconds`` of ``pid`` as collapsed stacks into ``out``; None or an error."""
    tool = py_spy_path()
    if tool is None:
        return "py-spy not installed (.venv/bin/pip install py-spy)"
    try:
        done = subprocess.run(
            [
                tool,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(seconds),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--output",
                str(out),
                "--nonblocking",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"py-spy failed: {exc}"
    if done.returncode != 0 or not out.exists():
        return f"py-spy exited {done.returncode}: {done.stderr.strip()[-500:]}"
    return None


def _frame_name(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    file = match.group("file")
    marker = "site-packages/"
    if marker in file:
        file = file.split(marker, 1)[1]
    elif "/node/" in file:
        file = "node/" + file.split("/node/", 1)[1]
    return f"{match.group('func')} ({file})"


def summarise(
    raw: Path, *, top: int = 15
) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """(samples, top self frames, top inclusive frames) from py-spy's raw output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    return total, own.most_common(top), inclusive.most_common(top * 2)
