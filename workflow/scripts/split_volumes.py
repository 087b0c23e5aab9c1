import sys

from microgen.volumes.splits import split_h5

sys.stderr = open(snakemake.log[0], "w")

split_h5(
    h5_path=snakemake.input.h5,
    out_csv=snakemake.output.split,
    val_fraction=snakemake.params.val_fraction,
    seed=snakemake.params.seed,
    group_by=snakemake.params.group_by,
    stratify_by=snakemake.params.stratify_by,
)
