"""Table B2 of Phan et al. (2025): hyperparameters of the from-scratch baselines as configured.

The values are the ``generate.baselines`` entries of the config; a key the config leaves out
takes the library default (:data:`DEFAULTS`, the defaults of :mod:`.ddpm` and
:mod:`.stylegan_lite`; a test keeps the two in step). This module imports no torch, so the
table is written in the figures environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

__all__ = ["DEFAULTS", "OPTIMIZERS", "resolved_baseline", "baseline_table", "write_baseline_table"]

#: Library defaults of each baseline, shaped like a ``generate.baselines`` entry.
DEFAULTS: dict[str, dict] = {
    "ddpm": {
        "resolution": 128,
        "steps": 50_000,
        "batch_size": 16,
        "lr": 1e-3,
        "seed": 0,
        "architecture": {
            "block_out_channels": [64, 128, 256, 256],
            "attention_levels": [False, False, True, True],
            "layers_per_block": 2,
            "norm_num_groups": 32,
            "num_train_timesteps": 1000,
            "beta_schedule": "linear",
            "prediction_type": "epsilon",
            "p_uncond": 0.1,
        },
        "sampling": {"steps": 50, "guidance": 1.5},
    },
    "stylegan-lite": {
        "resolution": 128,
        "steps": 50_000,
        "batch_size": 12,
        "g_lr": 0.0015,
        "d_lr": 0.0001,
        "r1_gamma": 5.0,
        "r1_interval": 16,
        "seed": 0,
        "architecture": {
            "generator": {
                "z_dim": 256,
                "w_dim": 256,
                "embed_dim": 256,
                "mapping_layers": 8,
                "channel_base": 8192,
                "channel_max": 256,
            },
            "discriminator": {
                "feature_dim": 256,
                "channel_base": 8192,
                "channel_max": 256,
                "mbstd_group": 4,
            },
        },
        "sampling": {"truncation": 1.0},
    },
}
#: Optimisers as coded in the training loops (not configurable).
OPTIMIZERS = {"ddpm": "AdamW", "stylegan-lite": "Adam, β = (0, 0.99)"}
_NAMES = {"ddpm": "DDPM", "stylegan-lite": "StyleGAN (stylegan-lite)"}
_NONE = "–"


def _merge(default: Mapping, given: Mapping) -> dict:
    out = dict(default)
    for key, value in given.items():
        out[key] = (
            _merge(default[key], value)
            if isinstance(value, Mapping) and isinstance(default.get(key), Mapping)
            else value
        )
    return out


def resolved_baseline(kind: str, spec: Mapping) -> dict:
    """A ``generate.baselines`` entry with the library default of every key it leaves out."""
    if kind not in DEFAULTS:
        raise ValueError(f"unknown baseline {kind!r}; expected one of {list(DEFAULTS)}")
    return _merge(DEFAULTS[kind], spec)


def _channels(values) -> str:
    return "/".join(str(v) for v in values)


def _ddpm(s: dict) -> dict[str, str]:
    a = s["architecture"]
    attention = [str(k + 1) for k, on in enumerate(a["attention_levels"]) if on]
    return {
        "Learning rate": f"{s['lr']:g}",
        "Mapping layers": _NONE,
        "R1 regularization γ": _NONE,
        "Noise schedule": str(a["beta_schedule"]),
        "Timesteps": str(a["num_train_timesteps"]),
        "Prediction type": str(a["prediction_type"]),
        "Condition dropout (CFG training)": f"{a['p_uncond']:g}",
        "Architecture": (
            f"U-Net, channels {_channels(a['block_out_channels'])}, self-attention at "
            f"level {', '.join(attention) or 'none'}, {a['layers_per_block']} ResNet layer(s) "
            f"per block, {a['norm_num_groups']} norm groups"
        ),
        "Sampling steps": f"{s['sampling']['steps']} (DDIM)",
        "Classifier-free guidance": f"{s['sampling']['guidance']:g}",
        "Truncation ψ": _NONE,
    }


def _stylegan(s: dict) -> dict[str, str]:
    g, d = s["architecture"]["generator"], s["architecture"]["discriminator"]
    return {
        "Learning rate": f"generator: {s['g_lr']:g}, discriminator: {s['d_lr']:g}",
        "Mapping layers": str(g["mapping_layers"]),
        "R1 regularization γ": f"{s['r1_gamma']:g} (every {s['r1_interval']} steps)",
        "Noise schedule": _NONE,
        "Timesteps": _NONE,
        "Prediction type": _NONE,
        "Condition dropout (CFG training)": _NONE,
        "Architecture": (
            f"generator: z {g['z_dim']}, w {g['w_dim']}, condition embedding "
            f"{g['embed_dim']}, channel base {g['channel_base']}, max {g['channel_max']}; "
            f"discriminator: channel base {d['channel_base']}, max {d['channel_max']}, "
            f"features {d['feature_dim']}, minibatch-std group {d['mbstd_group']}"
        ),
        "Sampling steps": "1 (one generator pass)",
        "Classifier-free guidance": _NONE,
        "Truncation ψ": f"{s['sampling']['truncation']:g}",
    }


def baseline_table(baselines: Mapping[str, Mapping]) -> pd.DataFrame:
    """Table B2: one row per hyperparameter, one column per configured baseline.

    Parameters
    ----------
    baselines : the config's ``generate.baselines`` (kind -> entry), in column order.

    Returns
    -------
    DataFrame with a ``hyperparameter`` column and one text column per baseline, named
    like the paper (``DDPM``, ``StyleGAN (stylegan-lite)``).
    """
    columns = {}
    for kind, spec in baselines.items():
        s = resolved_baseline(kind, spec)
        columns[_NAMES[kind]] = {
            "Resolution (px)": str(s["resolution"]),
            "Training steps": str(s["steps"]),
            "Batch size": str(s["batch_size"]),
            "Optimizer": OPTIMIZERS[kind],
            **(_ddpm(s) if kind == "ddpm" else _stylegan(s)),
            "Seed": str(s["seed"]),
        }
    table = pd.DataFrame(columns)
    return table.rename_axis("hyperparameter").reset_index()


def write_baseline_table(
    baselines: Mapping[str, Mapping], out_csv: str | Path, out_md: str | Path
) -> pd.DataFrame:
    """Write :func:`baseline_table` as csv and markdown; returns the table."""
    table = baseline_table(baselines)
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_csv, index=False)
    Path(out_md).write_text(table.to_markdown(index=False) + "\n")
    return table
