import sys

from microgen.generate.parameter_counts import write_parameter_breakdown

sys.stderr = open(snakemake.log[0], "w")

write_parameter_breakdown(
    snakemake.params.models,
    schema_path=snakemake.input.schema,
    out_csv=snakemake.output.csv,
    out_md=snakemake.output.md,
)
