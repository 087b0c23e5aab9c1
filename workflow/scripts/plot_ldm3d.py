import sys

import pandas as pd

from microgen.figures.volumes import plot_ldm_evaluation

sys.stderr = open(snakemake.log[0], "w")

out = snakemake.output
plot_ldm_evaluation(
    r2=pd.read_csv(snakemake.input.r2),
    measured=pd.read_csv(snakemake.input.measured),
    diversity=pd.read_csv(snakemake.input.diversity),
    timing=pd.read_csv(snakemake.input.timing),
    features=snakemake.params.conditions,
    out={k: (out[k], out[f"{k}_pdf"]) for k in ("scatter", "diversity", "timing")},
)
