import sys

from microgen.volumes.stage import evaluate_ldm_stage

sys.stderr = open(snakemake.log[0], "w")

evaluate_ldm_stage(
    h5=snakemake.input.h5,
    split_csv=snakemake.input.split,
    vae_dir=snakemake.input.vae.rsplit("/", 1)[0],
    fp_dir=snakemake.input.fp.rsplit("/", 1)[0],
    ldm_dir=snakemake.input.ldm.rsplit("/", 1)[0],
    out_tables={
        "r2": snakemake.output.r2,
        "process": snakemake.output.process,
        "timing": snakemake.output.timing,
        "measured": snakemake.output.measured,
        "diversity": snakemake.output.diversity,
    },
    condition_names=snakemake.params.conditions,
    **snakemake.params.evaluation,
)
