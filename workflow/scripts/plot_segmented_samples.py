import sys

from microgen.figures.qualitative import segmented_samples_stage

sys.stderr = open(snakemake.log[0], "w")

inputs = snakemake.input
segmented_samples_stage(
    conditions_csv=inputs.conditions,
    real={
        "metadata": inputs.metadata,
        "split": inputs.split,
        "images": inputs.images,
        "masks": inputs.real_masks,
    },
    generated={"index": inputs.index, "masks": inputs.gen_masks},
    png=snakemake.output.png,
    class_names=snakemake.params.class_names,
    class_colors=snakemake.params.class_colors,
)
