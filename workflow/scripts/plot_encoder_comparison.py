import sys

import pandas as pd

from microgen.figures.segmentation import plot_encoder_comparison
from microgen.figures.style import save

sys.stderr = open(snakemake.log[0], "w")

histories = {
    encoder: pd.read_csv(path)
    for encoder, path in zip(snakemake.params.encoders, snakemake.input.histories, strict=True)
}
fig = plot_encoder_comparison(histories, pd.read_csv(snakemake.input.table), snakemake.params.loss)
save(fig, snakemake.output.png, snakemake.output.pdf)
