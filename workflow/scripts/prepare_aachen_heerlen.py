import sys

from microgen.data.aachen_heerlen import prepare_aachen_heerlen

sys.stderr = open(snakemake.log[0], "w")

prepare_aachen_heerlen(
    folder=snakemake.input.folder,
    schema_path=snakemake.input.schema,
    out_dir=snakemake.output.metadata.rsplit("/", 1)[0],
    **snakemake.params.options,
    **snakemake.params.images,
)
