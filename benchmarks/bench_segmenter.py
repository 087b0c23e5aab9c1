"""Training and inference throughput of the U-Net(+ECA) segmenter on this machine.

    PYTHONPATH=workflow python3 benchmarks/bench_segmenter.py [--encoder vgg16] [--threads N]

1. Training: AdamW steps of batch ``--batch`` on random crops of ``--crop`` pixels from the
   real UHCS-24 images (Jaccard loss, the paper's augmentations), after ``--warmup`` steps.
2. Inference: whole 645×484 UHCS-24 micrographs (padded to 672×512) through
   :func:`microgen.segment.infer.predict_masks`, batch ``--batch``.
Prints images per second for both, with and without ECA, in float32 and with the bfloat16
autocast + channels-last path the training and inference code take by default
(``mixed_precision=True``; on a CPU only when it has bf16 kernels), on CUDA when present,
else CPU.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from microgen.device import select_device
from microgen.segment.crossval import load_arrays
from microgen.segment.infer import predict_masks
from microgen.segment.model import SegmenterConfig, autocast_dtype, build_segmenter
from microgen.segment.train import augment, make_loss


def train_images_per_second(
    images: list[np.ndarray], masks: list[np.ndarray], config: SegmenterConfig, mixed: bool, args
) -> float:
    device = select_device()
    layout = torch.channels_last if mixed else torch.contiguous_format
    model = build_segmenter(config).to(device, memory_format=layout).train()
    dtype = autocast_dtype(device) if mixed else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=5e-4)
    criterion = make_loss("jaccard")
    rng = np.random.default_rng(0)
    seconds = 0.0
    for step in range(args.warmup + args.steps):
        picks = rng.integers(0, len(images), args.batch)
        pairs = [augment(images[i], masks[i], args.crop, rng) for i in picks]
        x = torch.from_numpy(np.stack([p[0] for p in pairs])).unsqueeze(1)
        x = x.to(device, memory_format=layout)
        y = torch.from_numpy(np.stack([p[1] for p in pairs])).to(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(x)
        criterion(logits.float(), y).backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            seconds += time.perf_counter() - t0
    return args.steps * args.batch / seconds


def inference_images_per_second(
    images: list[np.ndarray], config: SegmenterConfig, mixed: bool, args
) -> float:
    device = select_device()
    model = build_segmenter(config).to(device).eval()
    kw = dict(batch_size=args.batch, device=device, mixed_precision=mixed)
    predict_masks(model, images[: args.batch], **kw)  # warm-up
    t0 = time.perf_counter()
    predict_masks(model, images, **kw)
    return len(images) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", default="../shared/data/uhcs24")
    ap.add_argument("--encoder", default="vgg16")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    images, masks = load_arrays(args.folder, "uhcs24", label_version="labels", classes=4)
    ids = sorted(images)
    images_l, masks_l = [images[i] for i in ids], [masks[i] for i in ids]
    device = select_device()
    print(f"device {device}, torch threads {torch.get_num_threads()}, {args.encoder}")
    print(f"bf16 autocast available: {autocast_dtype(device) is not None}")
    for eca in (True, False):
        for mixed in (False, True):
            config = SegmenterConfig(encoder=args.encoder, eca=eca, classes=4)  # UHCS-24's
            train = train_images_per_second(images_l, masks_l, config, mixed, args)
            infer = inference_images_per_second(images_l[:8], config, mixed, args)
            print(
                f"eca={eca!s:5} mixed_precision={mixed!s:5}  train {train:6.2f} img/s "
                f"({args.crop}² crops, batch {args.batch})   inference {infer:6.2f} img/s (645×484)"
            )


if __name__ == "__main__":
    main()
