import sys
from pathlib import Path

import pandas as pd

from microgen.figures.segmentation import plot_cv_convergence

sys.stderr = open(snakemake.log[0], "w")

# each fold's train_log.csv lives beside its scores.csv (the fold folder is the job's unit)
logs = {
    variant: [pd.read_csv(Path(f).parent / "train_log.csv") for f in files]
    for variant, files in snakemake.params.groups.items()
}
plot_cv_convergence(
    logs,
    snakemake.output.png,
    snakemake.output.pdf,
    title=f"UHCS-24 six-fold CV, label version {snakemake.wildcards.labels}",
    min_epochs=snakemake.params.min_epochs,
)
