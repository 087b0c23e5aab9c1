import sys

import pandas as pd

from microgen.evaluate.ground_truth import write_ground_truth_set

sys.stderr = open(snakemake.log[0], "w")

write_ground_truth_set(
    out_dir=snakemake.output.metadata.rsplit("/", 1)[0],
    conditions=pd.read_csv(snakemake.input.conditions),
    **snakemake.params.truth,
)
