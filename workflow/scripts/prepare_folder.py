import sys

from microgen.data.uhcs24 import prepare_uhcs24

sys.stderr = open(snakemake.log[0], "w")

prepare_uhcs24(
    folder=snakemake.input.folder,
    schema_path=snakemake.input.schema,
    out_dir=snakemake.output.metadata.rsplit("/", 1)[0],
    label_version=snakemake.params.label_version,
    **snakemake.params.images,
)
