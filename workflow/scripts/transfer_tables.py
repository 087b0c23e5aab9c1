import sys

from microgen.evaluate.per_type import group_order
from microgen.evaluate.transfer import transfer_tables_stage

sys.stderr = open(snakemake.log[0], "w")

group = snakemake.params.group
transfer_tables_stage(
    long_csv=snakemake.input.long,
    per_group_csv=snakemake.input.per_group,
    iou_csv=snakemake.input.iou,
    group=group,
    order=group_order(snakemake.input.schema, group),
    out_table7a=snakemake.output.table7a,
    out_table7b=snakemake.output.table7b,
)
