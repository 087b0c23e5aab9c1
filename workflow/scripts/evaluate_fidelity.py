import sys

from microgen.evaluate.stage import descriptor_sets, fidelity_stage

sys.stderr = open(snakemake.log[0], "w")

inputs = snakemake.input
fidelity_stage(
    generated=descriptor_sets(inputs.generated, inputs.rows, inputs.curves),
    real={"metadata": inputs.metadata, "rows": inputs.real_rows, "curves": inputs.real_curves},
    split_csv=inputs.split,
    conditions_csv=inputs.conditions,
    out_tables={k: snakemake.output[k] for k in ("table6", "tableB5")},
    r_range=tuple(snakemake.params.r_range),
)
