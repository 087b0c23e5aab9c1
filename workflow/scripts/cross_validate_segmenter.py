import sys

from microgen.segment.crossval import cross_validate_fold, parse_variant

sys.stderr = open(snakemake.log[0], "w")

cross_validate_fold(
    folder=snakemake.params.folder,
    layout=snakemake.params.layout,
    label_version=snakemake.wildcards.labels,
    fold=int(snakemake.wildcards.fold),
    out_dir=snakemake.output.scores.rsplit("/", 1)[0],
    classes=snakemake.params.classes,
    **parse_variant(snakemake.wildcards.variant),
    **snakemake.params.train,
)
