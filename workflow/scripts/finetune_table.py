import sys

from microgen.generate.finetune_table import write_finetune_table

sys.stderr = open(snakemake.log[0], "w")

write_finetune_table(
    snakemake.params.models, out_csv=snakemake.output.csv, out_md=snakemake.output.md
)
