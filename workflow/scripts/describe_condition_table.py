import sys

from microgen.segment.stage import describe_sample_table

sys.stderr = open(snakemake.log[0], "w")

describe_sample_table(
    samples_csv=snakemake.input.samples,
    segmenter_dir=snakemake.input.segmenter.rsplit("/", 1)[0],
    out_masks=snakemake.output.masks,
    out_descriptors=snakemake.output.descriptors,
    **snakemake.params.descriptors,
)
