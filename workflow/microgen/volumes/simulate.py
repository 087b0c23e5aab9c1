"""Stage function: simulate a (φ₀, χ) grid of Cahn–Hilliard runs into a microgen3D HDF5 file.

For each grid point one run is simulated (:mod:`.cahn_hilliard`), each saved snapshot is
thresholded (:mod:`.phases`, two- or three-phase) and written as one flat uint8 dataset
(:mod:`.hdf5`) named ``{run_id}_step_{step:06d}`` with attributes

``phi, chi, log_time, time, step, run_id, source, vol_frac_D, vol_frac_A, vol_frac_M``

plus whatever an optional ``describe(volume) -> dict`` callable returns (the hook for the
GraSPI descriptors of ``microgen.descriptors.volumes``: ``ABS_f_D``, ``CT_f_D_tort1``, …).
``describe`` may override the volume fractions but not the provenance keys.

Run ``i`` of the grid (φ-major order) uses the seed ``SeedSequence([seed, i])``, so a run's
trajectory does not depend on the rest of the grid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .cahn_hilliard import CahnHilliardParams, iter_cahn_hilliard
from .hdf5 import VolumeWriter, read_features
from .phases import three_phase as to_three_phase
from .phases import two_phase, volume_fractions

PROTECTED = ("phi", "chi", "log_time", "time", "step", "run_id", "source")


def run_id_for(phi0: float, chi: float) -> str:
    """Run id in the style of the published ``source`` names: ``chi_2.330_phi_0.556``."""
    return f"chi_{chi:.3f}_phi_{phi0:.3f}"


def run_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def simulate_dataset(
    out_h5: str | Path,
    phi0_values: Sequence[float],
    chi_values: Sequence[float],
    shape: Sequence[int] = (64, 64, 32),
    n_snapshots: int = 16,
    seed: int = 0,
    n_steps: int = 800,
    dt: float = 1.0,
    kappa: float = 1.0,
    noise: float = 0.01,
    first_save_step: int = 10,
    three_phase: bool = False,
    threshold: str | float = "fixed",
    shell_scale: float = 1.0,
    max_mixed_fraction: float = 0.5,
    describe: Callable[[np.ndarray], dict] | None = None,
    workers: int = -1,
    progress: bool = True,
) -> pd.DataFrame:
    """Simulate the grid, threshold, write ``out_h5``; return the features table."""
    shape = tuple(int(s) for s in shape)
    grid = [(float(p), float(c)) for p in phi0_values for c in chi_values]
    if not grid:
        raise ValueError("empty (phi0, chi) grid")
    ids = [run_id_for(p, c) for p, c in grid]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate (phi0, chi) pairs in the grid")
    out_h5 = Path(out_h5)
    tmp = out_h5.with_name(out_h5.name + ".part")
    bar = tqdm(
        total=len(grid) * n_snapshots, desc="Cahn-Hilliard", unit="vol", disable=not progress
    )
    file_attrs = {"three_phase": bool(three_phase), "seed": int(seed)}
    with VolumeWriter(tmp, shape=shape, mode="w", file_attrs=file_attrs) as writer:
        for i, ((phi0, chi), rid) in enumerate(zip(grid, ids, strict=True)):
            params = CahnHilliardParams(
                shape=shape,
                phi0=phi0,
                chi=chi,
                kappa=kappa,
                dt=dt,
                n_steps=n_steps,
                n_snapshots=n_snapshots,
                first_save_step=first_save_step,
                noise=noise,
                seed=run_seed(seed, i),
                workers=workers,
            )
            bar.set_postfix(run=rid)
            for snap in iter_cahn_hilliard(params):
                if three_phase:
                    vol = to_three_phase(snap.phi, threshold, shell_scale, max_mixed_fraction)
                else:
                    vol = two_phase(snap.phi, threshold)
                attrs: dict[str, object] = {
                    "phi": phi0,
                    "chi": chi,
                    "log_time": snap.log_time,
                    "time": snap.time,
                    "step": snap.step,
                    "run_id": rid,
                    "source": f"{rid}_step_{snap.step}",
                }
                attrs.update(volume_fractions(vol))
                if describe is not None:
                    extra = dict(describe(vol))
                    clash = set(extra) & set(PROTECTED)
                    if clash:
                        raise ValueError(f"describe() may not set {sorted(clash)}")
                    attrs.update(extra)
                writer.add(f"{rid}_step_{snap.step:06d}", vol, attrs)
                bar.update(1)
    bar.close()
    tmp.replace(out_h5)
    return read_features(out_h5)


def graspi_features(volume: np.ndarray) -> dict:
    """GraSPI-equivalent descriptors of a phase volume as HDF5 attributes (the 3D paper's
    ``ABS_f_D``, ``CT_f_D_tort1``, ``CT_f_A_tort1``, …), measured on the volume itself."""
    from microgen.descriptors.volumes import graspi_descriptors

    return graspi_descriptors(volume).to_row()


def write_simulated_volumes(
    out_h5: str | Path, out_features: str | Path, **simulation: object
) -> pd.DataFrame:
    """Stage function: simulate the grid with GraSPI features as attributes, and write the
    features table (one row per volume) as parquet beside the HDF5 file."""
    features = simulate_dataset(out_h5, describe=graspi_features, **simulation)
    features.to_parquet(out_features, index=False)
    return features
