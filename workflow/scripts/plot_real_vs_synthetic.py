import sys

from microgen.figures.dataset import plot_real_vs_synthetic

sys.stderr = open(snakemake.log[0], "w")

plot_real_vs_synthetic(
    synthetic_metadata_csv=snakemake.input.metadata,
    real_folder=snakemake.input.real,
    out_png=snakemake.output.png,
    out_pdf=snakemake.output.pdf,
    per_row=snakemake.params.per_row,
)
