import sys

from microgen.figures.tsne import tsne_stage

sys.stderr = open(snakemake.log[0], "w")

inputs = snakemake.input
references = {"real": {k: inputs[f"real_{k}"] for k in ("metadata", "split", "images")}}
if "truth_metadata" in inputs.keys():
    references["ground truth"] = {k: inputs[f"truth_{k}"] for k in ("metadata", "images")}
name = tsne_stage(
    generated=list(inputs.generated),
    references=references,
    conditions_csv=inputs.conditions,
    resolution=snakemake.params.resolution,
    png=snakemake.output.png,
    features=inputs.features,
    seed=snakemake.params.seed,
)
print(f"features: {name}", file=sys.stderr)
