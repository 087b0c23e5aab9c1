"""fine_tune in each process of a multi-GPU launch (rule fine_tune_ddp). A shell rule has no
snakemake object, so its inputs and params arrive as arguments, the settings as JSON."""

import argparse
import json

from microgen.generate.finetune import fine_tune

parser = argparse.ArgumentParser(description=__doc__)
for name in ("base", "metadata", "split", "schema", "lora", "settings"):
    parser.add_argument(f"--{name}", required=True)
args = parser.parse_args()

fine_tune(
    base=args.base,
    data_dir=args.metadata.rsplit("/", 1)[0],
    split_csv=args.split,
    schema_path=args.schema,
    out_dir=args.lora.rsplit("/", 1)[0],
    **json.loads(args.settings),
)
