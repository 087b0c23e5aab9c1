import sys

from microgen.volumes.simulate import write_simulated_volumes

sys.stderr = open(snakemake.log[0], "w")

write_simulated_volumes(
    out_h5=snakemake.output.h5,
    out_features=snakemake.output.features,
    **snakemake.params.simulation,
)
