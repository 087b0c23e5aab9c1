import sys

from microgen.segment.tables import segmentation_tables

sys.stderr = open(snakemake.log[0], "w")

segmentation_tables(
    score_csvs=snakemake.input.scores,
    out_dir=snakemake.output.losses.rsplit("/", 1)[0],
    class_names=snakemake.params.class_names,
)
