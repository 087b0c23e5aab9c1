import sys

from microgen.figures.conditions import condition_figure_stage

sys.stderr = open(snakemake.log[0], "w")

inputs = snakemake.input
condition_figure_stage(
    variable=snakemake.wildcards.variable,
    split=snakemake.wildcards.split,
    conditions_csv=inputs.conditions,
    reference={
        key: getattr(inputs, f"ref_{key}", None)
        for key in ("metadata", "split", "rows", "particles", "images")
    },
    generated={"index": inputs.index, "particles": inputs.particles},
    png=snakemake.output.png,
    reference_name=snakemake.params.reference_name,
)
