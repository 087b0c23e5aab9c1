import sys

from microgen.evaluate.microconstituent import microconstituent_table

sys.stderr = open(snakemake.log[0], "w")

sets = {
    "ground truth (exact masks)": (snakemake.input.redraw, snakemake.input.redraw_masks),
    "ground truth (segmented)": (snakemake.input.segmented, snakemake.input.segmented_masks),
}
pairs = zip(snakemake.input.index, snakemake.input.masks, strict=True)
sets.update(zip(snakemake.params.sets, pairs, strict=True))
table = microconstituent_table(sets)
table.to_csv(snakemake.output.csv, index=False)
with open(snakemake.output.md, "w") as f:
    f.write(table.to_markdown(index=False, floatfmt=".2f") + "\n")
