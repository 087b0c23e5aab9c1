import sys

from microgen.segment.tables import cross_validation_tables

sys.stderr = open(snakemake.log[0], "w")

cross_validation_tables(
    fold_scores={tuple(k.split("|")): files for k, files in snakemake.params.groups.items()},
    out_dir=snakemake.output.prior.rsplit("/", 1)[0],
    class_names=snakemake.params.class_names,
)
