import sys

from microgen.figures.qualitative import sample_grid_stage

sys.stderr = open(snakemake.log[0], "w")

inputs = snakemake.input
sample_grid_stage(
    kind=snakemake.wildcards.grid,
    conditions_csv=inputs.conditions,
    sets=list(inputs.sets),
    real={key: getattr(inputs, f"real_{key}") for key in ("metadata", "split", "images")},
    truth=(
        {key: getattr(inputs, f"truth_{key}") for key in ("metadata", "images")}
        if hasattr(inputs, "truth_metadata")
        else None
    ),
    png=snakemake.output.png,
    variants=snakemake.params.variants,
    **snakemake.params.columns,
)
