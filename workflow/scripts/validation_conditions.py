import sys

import pandas as pd

from microgen.generate.sampling import validation_conditions

sys.stderr = open(snakemake.log[0], "w")

conditions = validation_conditions(
    data_dir=snakemake.input.metadata.rsplit("/", 1)[0],
    split_csv=snakemake.input.split,
    schema=snakemake.input.schema,
)
pd.DataFrame(conditions).to_csv(snakemake.output.conditions, index=False)
