import sys

from microgen.data.uhcsdb import prepare_uhcsdb

sys.stderr = open(snakemake.log[0], "w")

prepare_uhcsdb(
    sqlite_path=snakemake.input.sqlite,
    images=snakemake.input.archive,
    schema_path=snakemake.input.schema,
    out_dir=snakemake.output.metadata.rsplit("/", 1)[0],
    info_band_px=snakemake.params.info_band_px,
    missing_images=snakemake.params.missing_images,
    **snakemake.params.images,
)
