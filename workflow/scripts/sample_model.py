import sys

from microgen.generate.pipeline import sample_conditions_to_dir

sys.stderr = open(snakemake.log[0], "w")

sample_conditions_to_dir(
    base=snakemake.params.base,
    model_dir=snakemake.input.lora.rsplit("/", 1)[0],
    conditions_csv=snakemake.input.conditions,
    out_dir=snakemake.output.images.rsplit("/", 1)[0],
    prompt_modes=[snakemake.wildcards.mode],
    samples_csv=snakemake.output.samples,
    **snakemake.params.sampling,
)
