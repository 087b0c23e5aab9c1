import sys

from microgen.generate.tiny import pretrain_tiny_base

sys.stderr = open(snakemake.log[0], "w")

pretrain_tiny_base(
    data_dir=snakemake.input.metadata.rsplit("/", 1)[0],
    split_csv=snakemake.input.split,
    out_dir=snakemake.output.base.rsplit("/", 1)[0],
    **snakemake.params.pretrain,
)
