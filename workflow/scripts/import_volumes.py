import sys

from microgen.volumes.hdf5 import import_volumes

sys.stderr = open(snakemake.log[0], "w")

import_volumes(
    source=snakemake.params.source,
    out_h5=snakemake.output.h5,
    out_features=snakemake.output.features,
    filename=snakemake.params.filename,
)
