import sys

import pandas as pd

from microgen.figures.segmentation import plot_cv_convergence

sys.stderr = open(snakemake.log[0], "w")

logs = {
    variant: [pd.read_csv(f) for f in files] for variant, files in snakemake.params.groups.items()
}
plot_cv_convergence(
    logs,
    snakemake.output.png,
    snakemake.output.pdf,
    title=f"{len(next(iter(logs.values())))}-fold cross-validation, label version "
    f"{snakemake.wildcards.labels}",
    min_epochs=snakemake.params.min_epochs,
)
