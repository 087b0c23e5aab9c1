import sys

from microgen.figures.dataset import plot_dataset_histograms

sys.stderr = open(snakemake.log[0], "w")

plot_dataset_histograms(
    metadata_csv=snakemake.input.metadata,
    split_csv=snakemake.input.split,
    schema_path=snakemake.input.schema,
    out_png=snakemake.output.png,
    out_pdf=snakemake.output.pdf,
)
