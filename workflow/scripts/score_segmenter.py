import sys

from microgen.segment.stage import score_masks

sys.stderr = open(snakemake.log[0], "w")

score_masks(
    data_dir=snakemake.input.metadata.rsplit("/", 1)[0],
    pred_dir=snakemake.input.masks,
    out_csv=snakemake.output.scores,
    model_name=snakemake.wildcards.model,
    classes=snakemake.params.classes,
)
