import sys

from microgen.generate.baseline_table import write_baseline_table

sys.stderr = open(snakemake.log[0], "w")

write_baseline_table(
    snakemake.params.baselines, out_csv=snakemake.output.csv, out_md=snakemake.output.md
)
