import sys

from microgen.generate.finetune import fine_tune

sys.stderr = open(snakemake.log[0], "w")

fine_tune(
    base=snakemake.params.base,
    data_dir=snakemake.input.metadata.rsplit("/", 1)[0],
    split_csv=snakemake.input.split,
    schema_path=snakemake.input.schema,
    out_dir=snakemake.output.lora.rsplit("/", 1)[0],
    **snakemake.params.finetune,
)
