import sys

from microgen.evaluate.per_type import group_order
from microgen.figures.transfer import figure_d1_stage

sys.stderr = open(snakemake.log[0], "w")

inputs = snakemake.input
group = snakemake.params.group
name = figure_d1_stage(
    per_group_csv=inputs.per_group,
    generated=inputs.generated,
    real={"metadata": inputs.metadata, "split": inputs.split, "images": inputs.images},
    conditions_csv=inputs.conditions,
    group=group,
    order=group_order(inputs.schema, group),
    resolution=snakemake.params.resolution,
    png=snakemake.output.png,
    vgg19_weights=snakemake.params.vgg19_weights,
    segmenter_dir=inputs.segmenter.rsplit("/", 1)[0],
    seed=snakemake.params.seed,
)
print(f"features: {name}", file=sys.stderr)
