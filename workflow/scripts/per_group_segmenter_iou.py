import sys

from microgen.evaluate.stage import per_group_iou_stage

sys.stderr = open(snakemake.log[0], "w")

per_group_iou_stage(
    metadata_csv=snakemake.input.metadata,
    split_csv=snakemake.input.split,
    pred_dir=snakemake.input.masks,
    group=snakemake.params.group,
    phase=snakemake.params.phase,
    out_csv=snakemake.output.table,
)
