import sys

from microgen.segment.stage import prepare_sample_set

sys.stderr = open(snakemake.log[0], "w")

prepare_sample_set(
    samples_csv=snakemake.input.samples,
    conditions_csv=snakemake.input.conditions,
    data_metadata_csv=snakemake.input.metadata,
    segmenter_dir=snakemake.input.segmenter.rsplit("/", 1)[0],
    out_index=snakemake.output.index,
    out_masks=snakemake.output.masks,
    scale=snakemake.params.scale,
)
