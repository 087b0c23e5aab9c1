import sys

from microgen.segment.stage import import_segmenter

sys.stderr = open(snakemake.log[0], "w")

import_segmenter(
    snakemake.input.model.rsplit("/", 1)[0],
    snakemake.output.model.rsplit("/", 1)[0],
    classes=snakemake.params.classes,
)
