import sys

import pandas as pd

from microgen.evaluate.microconstituent import calibrate_thresholds, microconstituent_table

sys.stderr = open(snakemake.log[0], "w")

EXACT, SEGMENTED = "ground truth (exact masks)", "ground truth (segmented)"
sets = {
    EXACT: (snakemake.input.redraw, snakemake.input.redraw_masks),
    SEGMENTED: (snakemake.input.segmented, snakemake.input.segmented_masks),
}
pairs = zip(snakemake.input.index, snakemake.input.masks, strict=True)
sets.update(zip(snakemake.params.sets, pairs, strict=True))
# Every set but the exact masks went through the applied segmenter: read them all with the
# thresholds that separate the segmented ground truth best.
calibrated = calibrate_thresholds(
    pd.read_csv(snakemake.input.segmented), snakemake.input.segmented_masks
)
table = microconstituent_table(sets, {name: calibrated for name in sets if name != EXACT})
table.to_csv(snakemake.output.csv, index=False)
with open(snakemake.output.md, "w") as f:
    f.write(table.to_markdown(index=False, floatfmt=".3f") + "\n")
