import sys

from microgen.generate.baselines import sample_baseline_to_dir

sys.stderr = open(snakemake.log[0], "w")

sample_baseline_to_dir(
    kind=snakemake.wildcards.baseline,
    model_dir=snakemake.input.history.rsplit("/", 1)[0],
    conditions_csv=snakemake.input.conditions,
    schema_path=snakemake.input.schema,
    out_dir=snakemake.output.images.rsplit("/", 1)[0],
    samples_csv=snakemake.output.samples,
    **snakemake.params.sampling,
)
