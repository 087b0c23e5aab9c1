import sys

from microgen.generate.pipeline import sample_condition_table

sys.stderr = open(snakemake.log[0], "w")

sample_condition_table(
    base=snakemake.params.base,
    model_dir=snakemake.input.lora.rsplit("/", 1)[0],
    schema_path=snakemake.input.schema,
    table_csv=snakemake.input.table,
    data_dir=snakemake.input.metadata,
    split_csv=snakemake.input.split,
    samples_csv=snakemake.output.samples,
    prompt_mode=snakemake.wildcards.mode,
    **snakemake.params.sampling,
)
