import sys

from microgen.data.download import fetch, read_manifest

sys.stderr = open(snakemake.log[0], "w")

entries = read_manifest(snakemake.input.manifest, base_url=snakemake.params.mirror_url)
fetch(
    entries[snakemake.wildcards.file],
    snakemake.output[0],
    allow_unverified=snakemake.params.allow_unverified,
)
