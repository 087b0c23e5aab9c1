"""Benchmark of the synthetic UHCS generator (a script, not a test).

Times (a) images at 128x128, the embedded default size, and (b) images at 645x484, the UHCS size,
on conditions drawn by :func:`microgen.data.synthetic.conditions.sample_conditions`.

Usage: ``PYTHONPATH=workflow python benchmarks/bench_synthetic.py [--n-small 64] [--n 600]``
"""

from __future__ import annotations

import argparse
import time

from microgen.data.synthetic.conditions import sample_conditions
from microgen.data.synthetic.generator import generate


def bench(n: int, shape: tuple[int, int], seed: int) -> tuple[float, float]:
    """Generate ``n`` images of ``shape``; return (total seconds, worst single image seconds)."""
    conds = sample_conditions(n, seed=seed)
    worst = 0.0
    t0 = time.perf_counter()
    for i, c in enumerate(conds):
        t = time.perf_counter()
        generate(c, shape=shape, seed=i)
        worst = max(worst, time.perf_counter() - t)
    return time.perf_counter() - t0, worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-small", type=int, default=64, help="images at 128x128")
    ap.add_argument("--n", type=int, default=600, help="images at 645x484")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for label, n, shape in (("128x128", args.n_small, (128, 128)), ("645x484", args.n, (484, 645))):
        if n <= 0:
            continue
        total, worst = bench(n, shape, args.seed)
        print(
            f"{label}: {n} images, total {total:.2f} s, {total / n:.4f} s/image, "
            f"worst {worst:.3f} s"
        )


if __name__ == "__main__":
    main()
