import sys

from microgen.evaluate.generative import embed_stage, evaluation_references

sys.stderr = open(snakemake.log[0], "w")

inputs = snakemake.input
references = evaluation_references(dict(inputs.items()))
cache = embed_stage(
    generated=list(inputs.generated),
    references=references,
    conditions_csv=inputs.conditions,
    resolution=snakemake.params.resolution,
    out=snakemake.output[0],
    vgg19_weights=snakemake.params.vgg19_weights,
    segmenter_dir=inputs.segmenter.rsplit("/", 1)[0],
)
print(f"{len(cache.features)} images embedded with {cache.name}", file=sys.stderr)
