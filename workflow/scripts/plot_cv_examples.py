import sys

from microgen.segment.crossval import plot_fold_examples

sys.stderr = open(snakemake.log[0], "w")

out = snakemake.output
plot_fold_examples(
    folder=snakemake.params.folder,
    label_version=snakemake.wildcards.labels,
    fold=int(snakemake.wildcards.fold),
    model_dir=snakemake.input.scores.rsplit("/", 1)[0] + "/best",
    out_fig7=out.fig7,
    out_fig8=out.fig8,
    out_fig7_pdf=out.fig7_pdf,
    out_fig8_pdf=out.fig8_pdf,
    n_examples=snakemake.params.n_examples,
)
