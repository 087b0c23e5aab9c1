import sys

from microgen.figures.conditions import trend_figure_stage

sys.stderr = open(snakemake.log[0], "w")

inputs = snakemake.input
references = {"real (segmented)": {k: inputs[f"real_{k}"] for k in ("metadata", "split", "rows")}}
if "truth_metadata" in inputs.keys():
    references["ground truth"] = {k: inputs[f"truth_{k}"] for k in ("metadata", "rows")}
trend_figure_stage(
    variable=snakemake.wildcards.variable,
    conditions_csv=inputs.conditions,
    references=references,
    generated=[{"index": i, "rows": r} for i, r in zip(inputs.generated, inputs.rows, strict=True)],
    png=snakemake.output.png,
)
