import sys

from microgen.evaluate.generative import evaluation_references
from microgen.figures.tsne import tsne_stage

sys.stderr = open(snakemake.log[0], "w")

inputs = snakemake.input
references = evaluation_references(dict(inputs.items()))
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
