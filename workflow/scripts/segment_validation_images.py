import sys

from microgen.segment.stage import VAL_SPLITS, segment_split

sys.stderr = open(snakemake.log[0], "w")

segment_split(
    model_dir=snakemake.input.model.rsplit("/", 1)[0],
    data_dir=snakemake.input.metadata.rsplit("/", 1)[0],
    split_csv=snakemake.input.split,
    splits=VAL_SPLITS,
    out_dir=snakemake.output.masks,
)
