import sys

from microgen.data.synthetic.dataset import write_synthetic_dataset

sys.stderr = open(snakemake.log[0], "w")

write_synthetic_dataset(
    out_dir=snakemake.output.metadata.rsplit("/", 1)[0],
    schema_path=snakemake.input.schema,
    **snakemake.params.synthetic,
)
