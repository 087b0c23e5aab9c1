import sys

from microgen.figures.segmentation import plot_segmentation_examples

sys.stderr = open(snakemake.log[0], "w")

plot_segmentation_examples(
    data_dir=snakemake.input.metadata.rsplit("/", 1)[0],
    pred_dir=snakemake.input.masks,
    out_fig7=snakemake.output.fig7,
    out_fig8=snakemake.output.fig8,
    out_fig7_pdf=snakemake.output.fig7_pdf,
    out_fig8_pdf=snakemake.output.fig8_pdf,
    class_names=snakemake.params.class_names,
    class_colors=snakemake.params.class_colors,
    n_examples=snakemake.params.n_examples,
)
