import sys

from microgen.descriptors.tables import describe_image_set

sys.stderr = open(snakemake.log[0], "w")

describe_image_set(
    metadata_csv=snakemake.input.metadata,
    masks_dir=snakemake.input.masks,
    out_rows=snakemake.output.rows,
    out_curves=snakemake.output.curves,
    out_particles=snakemake.output.particles,
    **snakemake.params.descriptors,
)
