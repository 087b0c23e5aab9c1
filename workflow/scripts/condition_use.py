import sys
from pathlib import Path

from microgen.evaluate.condition_use import condition_use_table, write_condition_use

sys.stderr = open(snakemake.log[0], "w")

model_dirs = {Path(f).parent.name: Path(f).parent for f in snakemake.input.loras}
table = condition_use_table(
    base=snakemake.params.base,
    model_dirs=model_dirs,
    data_dir=Path(snakemake.input.metadata).parent,
    split_csv=snakemake.input.split,
    **snakemake.params.settings,
)
write_condition_use(table, snakemake.output.csv, snakemake.output.md)
