import sys

from microgen.evaluate.stage import descriptor_sets, ground_truth_fidelity_stage, one_set

sys.stderr = open(snakemake.log[0], "w")

inputs = snakemake.input
ground_truth_fidelity_stage(
    generated=descriptor_sets(inputs.generated, inputs.rows, inputs.curves),
    truth=one_set(inputs.truth),
    out_tables={k: snakemake.output[k] for k in ("headline", "per_condition")},
    r_range=tuple(snakemake.params.r_range),
    floors=[f for f in (one_set(inputs.redraw), one_set(inputs.segmented)) if f is not None],
)
