"""Time the embedded default Cahn–Hilliard grid and one paper-scale run.

    PYTHONPATH=workflow python3 benchmarks/bench_cahn_hilliard.py [--workers N] [--big-steps S]

1. ``simulate_dataset`` on the embedded default grid: 4 φ₀ × 4 χ, 16 log-spaced snapshots
   each (256 volumes) at 64×64×32, 800 steps of Δt = 1, two-phase, written to HDF5.
2. One 128×128×64 run (paper scale) of a fixed number of steps, no snapshots but the last.
Prints seconds for each and per step.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from microgen.volumes.cahn_hilliard import CahnHilliardParams, iter_cahn_hilliard
from microgen.volumes.simulate import simulate_dataset

PHI0 = (0.40, 0.45, 0.50, 0.55)
CHI = (2.2, 2.4, 2.6, 2.8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=-1, help="scipy.fft threads (-1: all)")
    ap.add_argument("--shape", type=int, nargs=3, default=(64, 64, 32))
    ap.add_argument("--n-steps", type=int, default=800)
    ap.add_argument("--n-snapshots", type=int, default=16)
    ap.add_argument("--big-steps", type=int, default=200)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        df = simulate_dataset(
            Path(tmp) / "grid.h5", PHI0, CHI, shape=args.shape, n_snapshots=args.n_snapshots,
            n_steps=args.n_steps, seed=0, workers=args.workers, progress=False,
        )  # fmt: skip
        grid_s = time.perf_counter() - t0
    n_runs = len(PHI0) * len(CHI)
    print(
        f"grid {len(PHI0)}x{len(CHI)} runs, shape {tuple(args.shape)}, {args.n_steps} steps, "
        f"{len(df)} volumes: {grid_s:.1f} s "
        f"({grid_s / n_runs:.2f} s/run, {1e3 * grid_s / (n_runs * args.n_steps):.2f} ms/step)"
    )

    p = CahnHilliardParams(
        shape=(128, 128, 64), phi0=0.5, chi=2.6, dt=1.0, n_steps=args.big_steps,
        save_steps=(args.big_steps,), workers=args.workers,
    )  # fmt: skip
    t0 = time.perf_counter()
    for _ in iter_cahn_hilliard(p):
        pass
    big_s = time.perf_counter() - t0
    print(
        f"paper scale 128x128x64, {args.big_steps} steps: {big_s:.1f} s "
        f"({1e3 * big_s / args.big_steps:.1f} ms/step)"
    )


if __name__ == "__main__":
    main()
