"""The published values of Tables B1 and B3 of Phan et al. (2025), and which configured
model each column of Table B1 describes.

This is the one place that maps a ``generate.models`` entry to a paper column: the key is
the model's base as :func:`microgen.generate.variants.sd_model_name` names it (``SDXL``,
``SD3.5-Large``, ``SD3.5-Medium``) and its fine-tuning method as
:func:`microgen.generate.finetune_table.finetune_method` names it (``LoRA only``,
``DreamBooth + DoRA``, ``DreamBooth + LoRA``). The paper's rank, learning rates and batch
sizes are *not* part of the key: a configured model that differs from its column in them is
still shown beside it, so that the difference is seen. Standard library only.
"""

from __future__ import annotations

__all__ = ["TABLE_B1", "TABLE_B3", "TABLE_B3_MODEL", "paper_column"]

#: Table B1, one column per (model, method); ``None``: the paper's "-" (not trained).
#: ``text_encoder_lr`` of "LoRA only" is ``None`` because its text encoders are not updated
#: (the paper's footnote 1).
TABLE_B1: dict[tuple[str, str], dict] = {
    ("SDXL", "LoRA only"): {
        "column": "SDXL with LoRA (1)",
        "rank": 8, "learning_rate": 1e-5, "text_encoder_lr": None, "batch_size": 10,
        "sampling_steps": 250, "guidance": 6.0,
    },
    ("SDXL", "DreamBooth + DoRA"): {
        "column": "SDXL with DreamBooth and DoRA (2)",
        "rank": 8, "learning_rate": 1e-4, "text_encoder_lr": 5e-6, "batch_size": 2,
        "sampling_steps": 50, "guidance": 6.0,
    },
    ("SDXL", "DreamBooth + LoRA"): {
        "column": "SDXL with DreamBooth and LoRA (2)",
        "rank": 4, "learning_rate": 8e-5, "text_encoder_lr": 5e-6, "batch_size": 8,
        "sampling_steps": 250, "guidance": 4.0,
    },
    ("SD3.5-Medium", "DreamBooth + LoRA"): {
        "column": "SD3.5 with DreamBooth and LoRA (Medium)",
        "rank": 128, "learning_rate": 5e-5, "text_encoder_lr": 5e-6, "batch_size": 12,
        "sampling_steps": 50, "guidance": 3.0,
    },
    ("SD3.5-Large", "DreamBooth + LoRA"): {
        "column": "SD3.5 with DreamBooth and LoRA (Large) (4)",
        "rank": 256, "learning_rate": 8e-5, "text_encoder_lr": 8e-6, "batch_size": 6,
        "sampling_steps": 50, "guidance": 2.0,
    },
}  # fmt: skip

#: The Table B1 column whose model Table B3 breaks down.
TABLE_B3_MODEL = ("SD3.5-Large", "DreamBooth + LoRA")
#: Table B3 (millions; percent), keyed by the component names of
#: :func:`microgen.generate.finetune.parameter_table`. As printed: the MM-DiT row's total
#: is the transformer (8056.6) plus its LoRA (377.3); the CLIP rows' totals are the frozen
#: encoders alone (their LoRA is not in the total, but is in the percentage:
#: 18.9 / (124 + 18.9) = 13.2 %); the overall total counts every adapter.
TABLE_B3: dict[str, dict[str, float]] = {
    "MM-DiT (transformer + LoRA)": {"pretrained": 8056.6, "added": 377.3, "total": 8433.9,
                                    "trainable": 377.3, "percent": 4.5},
    "CLIP-L": {"total": 124.0, "trainable": 18.9, "percent": 13.2},
    "CLIP-G": {"total": 695.0, "trainable": 83.9, "percent": 10.8},
    "T5": {"total": 4762.0, "trainable": 0.0, "percent": 0.0},
    "VAE": {"total": 83.8, "trainable": 0.0, "percent": 0.0},
    "Parameter encoder (categorical + continuous)": {"total": 26.9, "trainable": 26.9,
                                                      "percent": 100.0},
    "Overall": {"total": 14228.0, "trainable": 507.0, "percent": 3.6},
}  # fmt: skip


def paper_column(model: str, method: str) -> dict | None:
    """The Table B1 column of a model named ``model`` fine-tuned by ``method``, or None.

    Parameters
    ----------
    model : the base's paper-style name (``sd_model_name``), e.g. ``SD3.5-Large``.
    method : the fine-tuning method (``finetune_method``), e.g. ``DreamBooth + LoRA``; a
        qualifier in parentheses (``DreamBooth + LoRA (no prior preservation)``) is ignored.
    """
    return TABLE_B1.get((model, method.split(" (", 1)[0]))
