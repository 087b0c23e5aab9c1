import sys

from microgen.evaluate.ground_truth import SEGMENTED_REDRAW_MODEL
from microgen.segment.stage import segment_indexed_set

sys.stderr = open(snakemake.log[0], "w")

segment_indexed_set(
    index_csv=snakemake.input.metadata,
    images_dir=snakemake.input.images,
    segmenter_dir=snakemake.input.model.rsplit("/", 1)[0],
    out_index=snakemake.output.metadata,
    out_masks=snakemake.output.masks,
    model=SEGMENTED_REDRAW_MODEL,
)
