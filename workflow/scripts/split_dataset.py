import sys

from microgen.data.split import write_split

sys.stderr = open(snakemake.log[0], "w")

write_split(
    metadata_csv=snakemake.input.metadata,
    schema_path=snakemake.input.schema,
    out_split=snakemake.output.split,
    out_summary_csv=snakemake.output.summary_csv,
    out_summary_md=snakemake.output.summary_md,
    **snakemake.params.split,
)
