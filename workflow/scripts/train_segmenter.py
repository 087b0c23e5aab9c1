import sys

from microgen.segment.stage import train_on_prepared

sys.stderr = open(snakemake.log[0], "w")

train_on_prepared(
    data_dir=snakemake.input.metadata.rsplit("/", 1)[0],
    split_csv=snakemake.input.split,
    out_dir=snakemake.output.history.rsplit("/", 1)[0],
    classes=snakemake.params.classes,
    **snakemake.params.train,
)
