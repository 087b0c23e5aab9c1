import sys

from microgen.figures.segmentation import plot_segmentation_triples
from microgen.segment.crossval import fold_examples

sys.stderr = open(snakemake.log[0], "w")

out = snakemake.output
fold = int(snakemake.wildcards.fold)
ids, triples = fold_examples(
    folder=snakemake.params.folder,
    layout=snakemake.params.layout,
    label_version=snakemake.wildcards.labels,
    fold=fold,
    model_dir=snakemake.input.model.rsplit("/", 1)[0],
    n_examples=snakemake.params.n_examples,
)
plot_segmentation_triples(
    ids,
    triples,
    out.fig7,
    out.fig8,
    class_names=snakemake.params.class_names,
    class_colors=snakemake.params.class_colors,
    out_fig7_pdf=out.fig7_pdf,
    out_fig8_pdf=out.fig8_pdf,
    title=f"Cross-validation test fold {fold} ({snakemake.wildcards.labels}), model of that fold",
)
