"""Storage per hour of a recorded room: the program's Opus packets (the mixer's encoder
settings: mono, 32 kbit/s, "voip", 20 ms) framed as the recorder frames them
(node.media.oggfile), for a tone, a speech-like signal and silence.

    .venv/bin/python -m bench.bench_recording [--seconds 120]

Appends a section to bench/RESULTS.md. Opus at 32 kbit/s is variable: loud, busy audio
costs more than a pause; the Ogg framing adds 27 bytes and a lacing byte per packet per
page of 50 packets.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
from pathlib import Path

import numpy as np

from node.media.mixer import OpusFrameEncoder
from node.media.oggfile import OggOpusWriter

FRAME = 960
RATE = 48000
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def signals(seconds: int) -> dict[str, np.ndarray]:
    t = np.arange(seconds * RATE) / RATE
    rng = np.random.default_rng(7)
    # Speech-like: noise shaped by a 4 Hz syllable envelope with pauses, pitch harmonics.
    envelope = np.clip(np.sin(2 * np.pi * 4 * t) * 1.3, 0, 1) * (
        np.sin(2 * np.pi * 0.2 * t) > -0.5
    )
    voiced = sum(np.sin(2 * np.pi * f * t) / (k + 1) for k, f in enumerate((140, 280, 420, 560)))
    speech = envelope * (0.25 * voiced + 0.08 * rng.standard_normal(t.size))
    return {
        "440 Hz tone": 0.5 * np.sin(2 * np.pi * 440 * t),
        "speech-like": speech,
        "silence": np.zeros(t.size),
    }


def measure(samples: np.ndarray) -> tuple[int, float]:
    encoder = OpusFrameEncoder(frame_samples=FRAME, bitrate=32000)
    writer = OggOpusWriter(1, {"title": "bench"})
    size = len(writer.header())
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    for start in range(0, pcm.size - FRAME + 1, FRAME):
        packet = encoder.encode(pcm[start : start + FRAME])
        if packet is not None:
            size += len(writer.add(packet))
    size += len(writer.finish())
    return size, writer.duration


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=120)
    args = parser.parse_args(argv)
    rows = []
    for name, samples in signals(args.seconds).items():
        size, seconds = measure(samples)
        per_hour = size / seconds * 3600
        kbits = size * 8 / seconds / 1000
        rows.append(f"| {name} | {size:,} | {seconds:.1f} | {kbits:.1f} | {per_hour / 1e6:.1f} |")
        print(rows[-1])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n".join(
        [
            f"\n## Recording: storage per hour of audio — {when}\n",
            f"- commit: `{commit}`",
            f"- machine: nproc {os.cpu_count()}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}",
            f"- command: `.venv/bin/python -m bench.bench_recording --seconds {args.seconds}`\n",
            "The recorder's file for each signal (the mixer's Opus settings, the recorder's "
            "Ogg pages).\n",
            "| program | bytes | seconds | kbit/s | MB per hour |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    with RESULTS.open("a") as out:
        out.write(text)


if __name__ == "__main__":
    main()
