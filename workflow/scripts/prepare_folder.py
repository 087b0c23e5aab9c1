import sys

from microgen.data.folder import prepare_folder

sys.stderr = open(snakemake.log[0], "w")

prepare_folder(
    folder=snakemake.input.folder,
    schema_path=snakemake.input.schema,
    out_dir=snakemake.output.metadata.rsplit("/", 1)[0],
    **snakemake.params.layout,
    **snakemake.params.images,
)
