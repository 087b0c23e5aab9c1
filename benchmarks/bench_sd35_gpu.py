"""SD3.5 fine-tuning and sampling cost at the paper's scale, with random weights (issue 19).

    PYTHONPATH=workflow python benchmarks/bench_sd35_gpu.py [--models large medium]
        [--batch 6] [--resolution 512] [--rank 256] [--steps 5] [--sample-steps 50]
    PYTHONPATH=workflow python benchmarks/bench_sd35_gpu.py --tiny   # a CPU smoke run

For each model, the MM-DiT is built from its published config at random weights (nothing is
downloaded), in bf16 on the GPU, with rank-``--rank`` LoRA on the attention projections that
``microgen.generate.finetune`` adapts and gradient checkpointing on. One training step is
what ``fine_tune`` does on the denoiser once the T5 cache is filled and T5 is freed: a batch of
``--batch`` instance plus ``--batch`` class latents (prior preservation) at ``--resolution``
(f = 8, 16 channels), 154 context tokens of width 4096 (eq. 7: 77 CLIP + 77 T5), the
flow-matching loss, AdamW on the LoRA weights. Printed per model: the parameter counts
(against Table B3 for Large), peak GPU memory and seconds per training step, and seconds per
512² image for ``--sample-steps`` Euler steps with classifier-free guidance (a doubled batch)
plus the VAE decode. The CLIP encoders and their LoRA are left out: at 77 tokens they add
about 1.6 GB of bf16 weights and little activation memory.

Goals (issue 19): SD3.5-Large rank-256 LoRA trains in at most 48 GB and samples 512² at 50
steps in at most 3 s per image on an H100.
"""

from __future__ import annotations

import argparse
import time

import torch

from microgen.generate.finetune import FineTuneConfig, add_lora_adapters, count_parameters
from microgen.generate.paper_values import TABLE_B3 as PAPER_B3
from microgen.generate.parameter_counts import SD35_TRANSFORMERS, SD35_VAE

#: Table B3 (millions): the MM-DiT and its rank-256 LoRA.
TABLE_B3 = {
    "mmdit": PAPER_B3["MM-DiT (transformer + LoRA)"]["pretrained"],
    "lora": PAPER_B3["MM-DiT (transformer + LoRA)"]["added"],
}
CONTEXT_TOKENS = 154


def tiny(config: dict) -> dict:
    """The same architecture at two layers and two heads of 32 (a CPU smoke run)."""
    small = dict(config, num_layers=2, num_attention_heads=2, attention_head_dim=32)
    small.update(caption_projection_dim=64, joint_attention_dim=64, pooled_projection_dim=64)
    if "dual_attention_layers" in small:
        small["dual_attention_layers"] = (0,)
    return small


def build_transformer(config: dict, rank: int, device, dtype):
    """The MM-DiT at random weights with ``fine_tune``'s LoRA of ``rank``
    (:func:`~microgen.generate.finetune.add_lora_adapters`, weights in float32)."""
    from diffusers import SD3Transformer2DModel

    with torch.device(device):  # "meta": counts without memory
        net = SD3Transformer2DModel(**config).to(dtype)
        net.requires_grad_(False)
        add_lora_adapters(net, [], FineTuneConfig(rank=rank, train_text_encoder=False))
    return net


def parameter_counts(net) -> dict[str, float]:
    """Millions of parameters of the base MM-DiT and of its LoRA."""
    pretrained, lora, _ = count_parameters(net)
    return {"mmdit": pretrained / 1e6, "lora": lora / 1e6}


def _inputs(config: dict, batch: int, resolution: int, device, dtype):
    side = resolution // 8
    latents = torch.randn(batch, config["in_channels"], side, side, device=device, dtype=dtype)
    context = torch.randn(batch, CONTEXT_TOKENS, config["joint_attention_dim"], device=device,
                          dtype=dtype)  # fmt: skip
    pooled = torch.randn(batch, config["pooled_projection_dim"], device=device, dtype=dtype)
    return latents, context, pooled


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_step_cost(net, config: dict, args, device, dtype) -> tuple[float, float]:
    """Seconds per step and peak memory (GiB; 0 off CUDA) of LoRA training steps."""
    net.train()
    net.enable_gradient_checkpointing()
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-5)
    batch = 2 * args.batch  # instance + class images
    latents, context, pooled = _inputs(config, batch, args.resolution, device, dtype)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = []
    for step in range(args.warmup + args.steps):
        _sync(device)
        t0 = time.perf_counter()
        sigma = torch.rand(batch, device=device, dtype=dtype)
        noise = torch.randn_like(latents)
        noisy = (1 - sigma[:, None, None, None]) * latents + sigma[:, None, None, None] * noise
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            pred = net(noisy, context, pooled, sigma * 1000, return_dict=False)[0]
        loss = torch.nn.functional.mse_loss(pred.float(), (noise - latents).float())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        if step >= args.warmup:
            seconds.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0
    del opt
    return sum(seconds) / len(seconds), peak


@torch.no_grad()
def sample_cost(net, vae, config: dict, args, device, dtype) -> float:
    """Seconds per image: ``--sample-steps`` guided Euler steps of one image and its decode."""
    net.eval()
    latents, context, pooled = _inputs(config, 2, args.resolution, device, dtype)  # cond + uncond
    x = latents[:1]
    _sync(device)
    t0 = time.perf_counter()
    sigmas = torch.linspace(1, 0, args.sample_steps + 1, device=device)
    for k in range(args.sample_steps):
        t = sigmas[k].expand(2).to(dtype) * 1000
        v = net(torch.cat([x, x]), context, pooled, t, return_dict=False)[0]
        v = v[1:] + 4.5 * (v[:1] - v[1:])
        x = x + (sigmas[k + 1] - sigmas[k]) * v
    vae.decode(x.to(vae.dtype))
    _sync(device)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["large", "medium"], choices=SD35_TRANSFORMERS)
    ap.add_argument("--batch", type=int, default=6)
    ap.add_argument("--resolution", type=int, default=512)
    ap.add_argument("--rank", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--sample-steps", type=int, default=50)
    ap.add_argument("--tiny", action="store_true", help="two layers, two heads: a CPU smoke run")
    args = ap.parse_args()
    from diffusers import AutoencoderKL

    from microgen.device import select_device

    device = select_device()
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"device {name}, dtype {dtype}, batch {args.batch}+{args.batch}, {args.resolution}²")
    vae_config = dict(SD35_VAE, block_out_channels=(32,) * 4) if args.tiny else SD35_VAE
    with torch.device(device):
        vae = AutoencoderKL(**vae_config).to(dtype).eval()
    for model in args.models:
        config = tiny(SD35_TRANSFORMERS[model]) if args.tiny else SD35_TRANSFORMERS[model]
        net = build_transformer(config, args.rank, device, dtype)
        counts = parameter_counts(net)
        paper = f" (Table B3: {TABLE_B3['mmdit']} / {TABLE_B3['lora']})" if model == "large" else ""
        print(f"sd3.5-{model}: MM-DiT {counts['mmdit']:.1f} M, LoRA {counts['lora']:.1f} M{paper}")
        step, peak = train_step_cost(net, config, args, device, dtype)
        print(f"  train: {step:.2f} s/step, peak GPU memory {peak:.1f} GiB")
        print(f"  sample: {sample_cost(net, vae, config, args, device, dtype):.2f} s/image")
        del net
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
