import sys

from microgen.volumes.stage import sample_target_table_stage

sys.stderr = open(snakemake.log[0], "w")

sample_target_table_stage(
    h5=snakemake.input.h5,
    split_csv=snakemake.input.split,
    vae_dir=snakemake.input.vae.rsplit("/", 1)[0],
    fp_dir=snakemake.input.fp.rsplit("/", 1)[0],
    ldm_dir=snakemake.input.ldm.rsplit("/", 1)[0],
    table_csv=snakemake.input.table,
    out_h5=snakemake.output.h5,
    out_features=snakemake.output.features,
    condition_names=snakemake.params.conditions,
    **snakemake.params.sampling,
)
