import sys

from microgen.evaluate.awareness import parameter_awareness

sys.stderr = open(snakemake.log[0], "w")

parameter_awareness(
    base=snakemake.params.base,
    model_dir=snakemake.input.lora.rsplit("/", 1)[0],
    segmenter_dir=snakemake.input.segmenter.rsplit("/", 1)[0],
    data_dir=snakemake.input.metadata.rsplit("/", 1)[0],
    split_csv=snakemake.input.split,
    out_csv=snakemake.output.table,
    pixel_scale=snakemake.params.pixel_scale,
    synthetic_law=snakemake.params.synthetic_law,
    phase=snakemake.params.phase,
    **snakemake.params.probe,
    **snakemake.params.sampling,
)
