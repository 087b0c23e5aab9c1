import sys

import pandas as pd

from microgen.segment.stage import score_transfer_to_uhcs24

sys.stderr = open(snakemake.log[0], "w")

# Resample the real images to the median pixel size of the data the segmenter learnt from.
pixel_size = float(pd.read_csv(snakemake.input.metadata)["pixel_size_um"].median())
score_transfer_to_uhcs24(
    model_dir=snakemake.input.model.rsplit("/", 1)[0],
    folder=snakemake.input.real.rsplit("/", 1)[0],
    out_csv=snakemake.output.scores,
    pixel_size_um=pixel_size,
)
