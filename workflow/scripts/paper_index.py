import sys

from microgen.paper_index import write_index

sys.stderr = open(snakemake.log[0], "w")

write_index(
    snakemake.input.index,
    snakemake.params.datasets,
    out_md=snakemake.output.md,
    out_csv=snakemake.output.csv,
    smoke=snakemake.params.smoke,
)
