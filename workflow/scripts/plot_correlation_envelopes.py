import sys

from microgen.evaluate.stage import envelope_sets
from microgen.figures.fidelity import plot_correlation_envelopes

sys.stderr = open(snakemake.log[0], "w")

inputs = snakemake.input
sets = envelope_sets(
    generated=[
        {"index": i, "rows": r, "curves": c}
        for i, r, c in zip(inputs.generated, inputs.rows, inputs.curves, strict=True)
    ],
    real={"metadata": inputs.metadata, "rows": inputs.real_rows, "curves": inputs.real_curves},
    split_csv=inputs.split,
    conditions_csv=inputs.conditions,
    truth=dict(zip(("index", "rows", "curves"), inputs.truth, strict=True))
    if inputs.truth
    else None,
)
plot_correlation_envelopes(png=snakemake.output.png, pdf=snakemake.output.pdf, **sets)
