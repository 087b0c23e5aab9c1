import sys

from microgen.evaluate.stage import descriptor_sets, envelope_sets, one_set
from microgen.figures.fidelity import plot_correlation_envelopes

sys.stderr = open(snakemake.log[0], "w")

inputs = snakemake.input
sets = envelope_sets(
    generated=descriptor_sets(inputs.generated, inputs.rows, inputs.curves),
    real={"metadata": inputs.metadata, "rows": inputs.real_rows, "curves": inputs.real_curves},
    split_csv=inputs.split,
    conditions_csv=inputs.conditions,
    truth=one_set(inputs.truth),
)
plot_correlation_envelopes(png=snakemake.output.png, pdf=snakemake.output.pdf, **sets)
