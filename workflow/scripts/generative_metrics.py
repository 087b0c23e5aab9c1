import sys

from microgen.evaluate.generative import generative_stage

sys.stderr = open(snakemake.log[0], "w")

generative_stage(
    generated=[{"index": i} for i in snakemake.input.generated],
    data_metadata_csv=snakemake.input.metadata,
    split_csv=snakemake.input.split,
    conditions_csv=snakemake.input.conditions,
    resolution=snakemake.params.resolution,
    out_long=snakemake.output.long,
    out_wide=snakemake.output.wide,
    out_table_b4=snakemake.output.table_b4,
    sd_variants=snakemake.params.sd_variants,
    vgg19_weights=snakemake.params.vgg19_weights,
    features=snakemake.input.features,
)
