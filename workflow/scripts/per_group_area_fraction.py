import sys

from microgen.evaluate.stage import per_group_area_fraction_stage

sys.stderr = open(snakemake.log[0], "w")

inputs = snakemake.input
per_group_area_fraction_stage(
    metadata_csv=inputs.metadata,
    split_csv=inputs.split,
    generated=[
        {"index": i, "masks": m}
        for i, m in zip(inputs.generated, inputs.generated_masks, strict=True)
    ],
    group=snakemake.params.group,
    phase=snakemake.params.phase,
    out_csv=snakemake.output.table,
)
