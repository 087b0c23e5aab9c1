import sys

from microgen.data.readers import prepare_dataset

sys.stderr = open(snakemake.log[0], "w")

prepare_dataset(
    snakemake.params.source,
    folder=snakemake.input.folder,
    schema_path=snakemake.input.schema,
    out_dir=snakemake.output.metadata.rsplit("/", 1)[0],
    **snakemake.params.options,
    **snakemake.params.images,
)
