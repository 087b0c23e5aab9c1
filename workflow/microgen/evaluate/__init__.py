"""Evaluation of generated micrographs: sample sets, fidelity tables, generative metrics.

Library only (the Snakemake rules live in ``workflow/rules``):

- :mod:`.fidelity`: Tables 6 and B5 of Phan et al. (2025) from descriptor tables.
- :mod:`.ground_truth`: fidelity against fresh exact-truth synthetic micrographs and the
  process -> structure trend test (beyond the paper).
- :mod:`.generative`: Tables 1, 2 and B4 (distribution metrics per model and prompt mode).
"""
