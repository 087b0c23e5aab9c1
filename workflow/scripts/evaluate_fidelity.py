import sys

from microgen.evaluate.stage import fidelity_stage

sys.stderr = open(snakemake.log[0], "w")

inputs = snakemake.input
fidelity_stage(
    generated=[
        {"index": i, "rows": r, "curves": c}
        for i, r, c in zip(inputs.generated, inputs.rows, inputs.curves, strict=True)
    ],
    real={"metadata": inputs.metadata, "rows": inputs.real_rows, "curves": inputs.real_curves},
    split_csv=inputs.split,
    conditions_csv=inputs.conditions,
    out_tables={k: snakemake.output[k] for k in ("table6", "tableB5", "headline", "per_condition")},
    r_range=tuple(snakemake.params.r_range),
    truth=dict(zip(("index", "rows", "curves"), inputs.truth, strict=True))
    if inputs.truth
    else None,
    truth_redraw=dict(zip(("index", "rows", "curves"), inputs.redraw, strict=True))
    if inputs.redraw
    else None,
    truth_segmented=dict(zip(("index", "rows", "curves"), inputs.segmented, strict=True))
    if inputs.segmented
    else None,
)
