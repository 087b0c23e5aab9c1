import sys

from microgen.volumes.stage import train_vae_stage

sys.stderr = open(snakemake.log[0], "w")

train_vae_stage(
    h5=snakemake.input.h5,
    split_csv=snakemake.input.split,
    out_dir=snakemake.output.model.rsplit("/", 1)[0],
    **snakemake.params.train,
)
