"""Every Parley media benchmark, one after another (`make bench`).

    .venv/bin/python -m bench.run_all [--quick]

Each appends its own section to bench/RESULTS.md. ``--quick`` runs small counts and short
windows (a smoke test of the harness, not figures to quote).
"""

from __future__ import annotations

import argparse
import time

from bench import (
    bench_fanout,
    bench_fanout_fast,
    bench_join,
    bench_latency,
    bench_mixer,
    bench_page_load,
    bench_workers,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.quick:
        bench_mixer.main(["--ticks", "200", "--repeat", "1"])
        bench_join.main(["--joins", "5"])
        bench_join.main(["--burst", "20"])
        bench_latency.main(["--seconds", "5"])
        bench_page_load.main(["--runs", "2"])
        bench_fanout.main(
            [
                "--counts",
                "10,20",
                "--http-extra",
                "100",
                "--frames-count",
                "5",
                "--duration",
                "5",
                "--settle",
                "2",
                "--profile-at",
                "0",
            ]
        )
        quick = ["--counts", "10", "--duration", "3", "--settle", "1", "--per-proc", "10"]
        bench_fanout_fast.main(quick)
        bench_workers.main(quick)
        bench_workers.main(["--kind", "http", *quick])
        bench_workers.main(["--kind", "browser", "--fanouts", "native,batched", *quick])
        bench_workers.main(["--kind", "ws", "--workers", "0", *quick])
    else:
        bench_mixer.main([])
        bench_join.main([])
        bench_join.main(["--burst", "200"])
        bench_latency.main([])
        bench_page_load.main(["--runs", "5"])
        bench_fanout.main(["--http-extra", "500,1000,2000"])
        bench_fanout_fast.main(["--counts", "200,400", "--aiortc-counts", "100,200"])
        bench_workers.main([])
        bench_workers.main(
            ["--kind", "browser", "--counts", "100,200,300", "--fanouts", "native,batched"]
        )
        bench_workers.main(
            ["--kind", "ws", "--counts", "200,500,1000", "--workers", "0", "--per-proc", "500"]
        )
        bench_workers.main(
            ["--kind", "http", "--counts", "1000,2000,3000,4000", "--workers", "0,1,2"]
            + ["--per-proc", "1000"]
        )
    print(f"all benchmarks done in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
