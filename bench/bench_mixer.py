"""Mix + encode cost of a room: ``RoomMixer.tick()`` timed in-process.

    .venv/bin/python -m bench.bench_mixer --ticks 1000

Every speaker pushes a tone frame per tick shaped as aiortc's Opus decoder delivers it
(s16, stereo interleaved, 48 kHz, 20 ms). "Talking" speakers push a tone (each its own
frequency), silent ones push digital silence: a speaker who is silent needs no mix-minus
of their own, so the cost depends on how many talk at once, not only on how many are on
stage. The uplink decode each speaker costs (aiortc's ``OpusDecoder``, run in its decoder
thread) is timed separately.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import av
import numpy as np
from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterFrame

from bench.harness import append_results, markdown_table
from node.media.mixer import RoomMixer
from tests.tonekit import opus_tone_packets

__all__ = ["Scenario", "main", "run_scenario"]

RATE = 48000
FRAME = 960
TICKS_PER_SECOND = 50


@dataclass(frozen=True)
class Scenario:
    on_stage: int
    talking: int

    @property
    def name(self) -> str:
        return f"{self.on_stage} on stage, {self.talking} talking"


def _stereo_frames(hz: float, count: int, amplitude: float) -> list[av.AudioFrame]:
    frames = []
    for i in range(count):
        t = (np.arange(FRAME) + i * FRAME) / RATE
        mono = (np.sin(2 * np.pi * hz * t) * amplitude * 32767).astype(np.int16)
        interleaved = np.repeat(mono, 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(interleaved, format="s16", layout="stereo")
        frame.sample_rate = RATE
        frames.append(frame)
    return frames


def run_scenario(scenario: Scenario, ticks: int, warmup: int = 50) -> dict[str, float]:
    mixer = RoomMixer()
    loops = []  # 1 s of frames per speaker, replayed (a loop of a 50 Hz-periodic tone)
    for i in range(scenario.on_stage):
        talking = i < scenario.talking
        frames = _stereo_frames(300.0 + 50.0 * i, 50, 0.1 if talking else 0.0)
        loops.append((mixer.add_speaker(f"s{i}"), frames))
        # Browser speakers publish sendrecv and read their mix-minus back; a send-only
        # speaker (OBS) costs no mix-minus encode at all.
        mixer.return_stream(f"s{i}").reader()
    tick_ns: list[int] = []
    push_ns = 0
    cpu_start = 0.0
    for n in range(warmup + ticks):
        if n == warmup:
            cpu_start = time.process_time()
        t0 = time.perf_counter_ns()
        for sink, frames in loops:
            sink.push(frames[n % len(frames)])
        t1 = time.perf_counter_ns()
        mixer.tick()
        t2 = time.perf_counter_ns()
        if n >= warmup:
            tick_ns.append(t2 - t1)
            push_ns += t1 - t0
    cpu_s = time.process_time() - cpu_start
    tick_ns.sort()
    mean_us = statistics.fmean(tick_ns) / 1000
    return {
        "mean_us": mean_us,
        "p50_us": tick_ns[len(tick_ns) // 2] / 1000,
        "p99_us": tick_ns[int(len(tick_ns) * 0.99)] / 1000,
        "core_percent": mean_us * TICKS_PER_SECOND / 1e4,
        "push_us": push_ns / ticks / 1000,
        "cpu_core_percent": 100 * cpu_s * TICKS_PER_SECOND / ticks,
        "encodes_per_tick": 1 + scenario.talking,
    }


def uplink_decode_us(frames: int = 500) -> float:
    """µs per 20 ms packet in aiortc's Opus decoder (each speaker's uplink, own thread)."""
    packets = opus_tone_packets(440.0, frames)
    decoder = OpusDecoder()
    t0 = time.perf_counter_ns()
    for packet in packets:
        decoder.decode(JitterFrame(packet.data, packet.pts))
    return (time.perf_counter_ns() - t0) / len(packets) / 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="RoomMixer.tick() cost")
    parser.add_argument("--ticks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario; best kept")
    parser.add_argument("--no-results", dest="write", action="store_false")
    args = parser.parse_args(argv)
    scenarios = [
        Scenario(1, 1),
        Scenario(3, 3),
        Scenario(10, 1),
        Scenario(10, 3),
        Scenario(10, 10),
    ]
    rows = []
    for scenario in scenarios:
        # The machine is shared and noisy: the least disturbed of a few runs is the cost.
        runs = [run_scenario(scenario, args.ticks) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: r["mean_us"])
        worst = max(runs, key=lambda r: r["mean_us"])
        rows.append(
            [
                scenario.name,
                int(best["encodes_per_tick"]),
                f"{best['mean_us']:.0f}",
                f"{best['p50_us']:.0f}",
                f"{best['p99_us']:.0f}",
                f"{best['core_percent']:.2f}",
                f"{best['cpu_core_percent']:.2f}",
                f"{worst['core_percent']:.2f}",
                f"{best['push_us']:.0f}",
            ]
        )
        print(scenario.name, best, flush=True)
    decode_us = min(uplink_decode_us() for _ in range(args.repeat))
    body = "\n".join(
        [
            f"{args.ticks} ticks per run after 50 warm-up ticks, best of {args.repeat} runs "
            "(worst shown too); 32 kbit/s mono Opus, 20 ms.\n",
            markdown_table(
                [
                    "room",
                    "Opus encodes / tick",
                    "tick mean µs",
                    "p50 µs",
                    "p99 µs",
                    "% of a core at 50 ticks/s (wall)",
                    "same, CPU time (process_time)",
                    "worst run % (wall)",
                    "push() all speakers µs",
                ],
                rows,
            ),
            f"\nUplink decode (aiortc `OpusDecoder`, per speaker, in its decoder thread): "
            f"{decode_us:.0f} µs per packet = {decode_us * TICKS_PER_SECOND / 1e4:.2f} % "
            "of a core per speaker.",
        ]
    )
    print(body)
    if args.write:
        append_results("Mixer: mix + encode per tick", body)


if __name__ == "__main__":
    main()
