import sys

from microgen.volumes.stage import train_feature_predictor_stage

sys.stderr = open(snakemake.log[0], "w")

train_feature_predictor_stage(
    h5=snakemake.input.h5,
    split_csv=snakemake.input.split,
    vae_dir=snakemake.input.vae.rsplit("/", 1)[0],
    out_dir=snakemake.output.model.rsplit("/", 1)[0],
    **snakemake.params.train,
)
