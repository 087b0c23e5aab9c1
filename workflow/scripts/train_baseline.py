import sys

from microgen.generate.baselines import train_baseline

sys.stderr = open(snakemake.log[0], "w")

train_baseline(
    kind=snakemake.wildcards.baseline,
    data_dir=snakemake.input.metadata.rsplit("/", 1)[0],
    split_csv=snakemake.input.split,
    schema_path=snakemake.input.schema,
    out_dir=snakemake.output.history.rsplit("/", 1)[0],
    **snakemake.params.train,
)
