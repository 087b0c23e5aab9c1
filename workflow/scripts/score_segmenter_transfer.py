import sys

import pandas as pd

from microgen.segment.stage import score_transfer_to_uhcs24

sys.stderr = open(snakemake.log[0], "w")

# Resample the real images to the coarsest pixel size the segmenter learnt from: inside its
# training distribution, and the least up-sampling of the real images (the cost grows with it).
pixel_size = float(pd.read_csv(snakemake.input.metadata)["pixel_size_um"].max())
score_transfer_to_uhcs24(
    model_dir=snakemake.input.model.rsplit("/", 1)[0],
    folder=snakemake.input.real.rsplit("/", 1)[0],
    out_csv=snakemake.output.scores,
    pixel_size_um=pixel_size,
)
