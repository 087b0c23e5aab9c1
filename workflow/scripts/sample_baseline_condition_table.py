import sys

from microgen.generate.baselines import sample_baseline_table

sys.stderr = open(snakemake.log[0], "w")

sample_baseline_table(
    kind=snakemake.wildcards.baseline,
    model_dir=snakemake.input.history.rsplit("/", 1)[0],
    schema_path=snakemake.input.schema,
    table_csv=snakemake.input.table,
    data_dir=snakemake.input.metadata,
    split_csv=snakemake.input.split,
    samples_csv=snakemake.output.samples,
    **snakemake.params.sampling,
)
