"""Tiny offline SDXL base: pre-training lowers its loss, the saved folder reloads to the same
images, the SDXL fine-tune and sampler load it as an SDXL snapshot, and a config with an
SDXL model on ``base: tiny`` plans its pre-training upstream of the fine-tune."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO, SCHEMA, TOY_CONDITION, copy_workflow, write_toy_prepared

RES = 32
STEPS = 40


@pytest.fixture(scope="module")
def trained(tmp_path_factory, schema):
    """Six 40-px train images; the tiny SDXL base pre-trained on them (the pipeline object
    that ``pretrain_tiny_base`` saved is kept, to compare with what reloads)."""
    from diffusers import StableDiffusionXLPipeline

    from microgen.generate.tiny import pretrain_tiny_base

    torch.set_num_threads(1)
    root = write_toy_prepared(tmp_path_factory.mktemp("tiny-sdxl"), schema, ["train"] * 6, 3)
    saved = []
    original = StableDiffusionXLPipeline.save_pretrained

    def keep(self, *args, **kwargs):
        saved.append(self)
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(StableDiffusionXLPipeline, "save_pretrained", keep)
        out = pretrain_tiny_base(
            root / "data", root / "split.csv", root / "base", resolution=RES, steps=STEPS,
            vae_steps=10, batch_size=4, learning_rate=1e-3, text_encoder_lr=1e-3,
            family="sdxl",
        )  # fmt: skip
    (pipe,) = saved
    return root, out, pipe


def _texts(root):
    from microgen.data.split import read_split_table

    rows = read_split_table(root / "data", root / "split.csv", ["train"])
    prompts = rows["prompt_text_only"].fillna("").astype(str).tolist()
    return rows, prompts, prompts + rows["prompt_full_text"].fillna("").tolist()


def test_saved_base_is_an_sdxl_pipeline_with_its_log_and_info(trained):
    root, out, _ = trained
    from microgen.generate.common import load_base_pipeline

    index = json.loads((out / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline"
    assert "transformer" not in index and "text_encoder_3" not in index
    info = json.loads((out / "microgen_base.json").read_text())
    assert info["kind"] == "microgen-tiny-sdxl" and info["family"] == "sdxl"
    log = pd.read_csv(out / "pretrain_log.csv")
    assert log.groupby("stage").size().to_dict() == {"unet": STEPS, "vae": 10}
    pipe = load_base_pipeline(out, family="sdxl")
    assert info["parameters"]["unet"] == sum(p.numel() for p in pipe.unet.parameters())
    # SDXL latents: z * scaling_factor, no shift, scale = 1 / RMS of the posterior means of
    # the train images (hand computation with the reloaded VAE).
    from microgen.generate.common import encode_latent_stats, load_images

    rows, _, _ = _texts(root)
    mean, _ = encode_latent_stats(pipe.vae, load_images(root / "data", rows["id"], RES))
    assert pipe.vae.config.shift_factor is None
    assert pipe.vae.config.scaling_factor == pytest.approx(
        1.0 / float(np.sqrt((mean.double() ** 2).mean())), rel=1e-5
    )
    assert pipe.config.force_zeros_for_empty_prompt  # dropped prompts were zero embeddings


def test_reloaded_base_draws_the_same_images(trained):
    from microgen.generate.common import load_base_pipeline
    from microgen.generate.pipeline import generate_from_prompts

    root, out, pipe = trained
    _, prompts, _ = _texts(root)
    again = load_base_pipeline(out, family="sdxl")
    kw = dict(steps=3, guidance=2.0, height=RES, width=RES)
    a = generate_from_prompts(pipe, prompts[:2], [5, 6], **kw)
    b = generate_from_prompts(again, prompts[:2], [5, 6], **kw)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert a[0].shape == (RES, RES) and a[0].std() > 0
    # the stock pipeline call, too
    stock = [
        p(prompt=prompts[0], num_inference_steps=3, height=RES, width=RES, output_type="np",
          generator=torch.Generator().manual_seed(5)).images
        for p in (pipe, again)
    ]  # fmt: skip
    # The stock call may pick other CPU kernels for the same weights (seen on an AMD EPYC:
    # 4e-7 apart), so it is held to float32 rounding, not to the bit.
    np.testing.assert_allclose(*stock, rtol=0, atol=1e-5)


def test_pretraining_lowers_the_loss_on_the_training_batch(trained):
    """The ε-prediction loss of every train image (fixed prompts, timesteps and noise, the
    trained VAE's latents) under the initial U-Net and encoders vs the pre-trained ones."""
    from microgen.conditioning.encode import encode_prompts_sdxl
    from microgen.generate.common import (
        encode_latent_stats,
        epsilon_loss,
        load_images,
        sdxl_time_ids,
        training_scheduler,
    )
    from microgen.generate.tiny import build_tiny_sdxl_pipeline

    root, out, trained_pipe = trained
    rows, prompts, texts = _texts(root)
    initial = build_tiny_sdxl_pipeline(texts, RES, seed=0)  # pretrain_tiny_base's start
    vae = trained_pipe.vae
    mean, _ = encode_latent_stats(vae, load_images(root / "data", rows["id"], RES))
    latents = (mean * vae.config.scaling_factor).repeat(8, 1, 1, 1)
    batch = prompts * 8

    @torch.no_grad()
    def loss(pipe):
        embeds, pooled = encode_prompts_sdxl(pipe, batch)
        gen = torch.Generator().manual_seed(123)
        ids = sdxl_time_ids(RES, len(latents))
        return float(
            epsilon_loss(pipe.unet, latents, embeds, pooled, ids, training_scheduler(pipe), gen)
        )

    before, after = loss(initial), loss(trained_pipe)
    assert after < 0.9 * before, (before, after)


def test_sdxl_fine_tune_and_sampling_load_the_tiny_base(trained, tmp_path):
    from microgen.generate.finetune import fine_tune
    from microgen.generate.pipeline import generate_images, load_parameter_aware_pipeline

    root, out, _ = trained
    model = tmp_path / "ft"
    fine_tune(
        out, root / "data", root / "split.csv", SCHEMA, model, family="sdxl", max_steps=1,
        resolution=RES, batch_size=2, rank=2, prior_preservation=False, mixed_precision="no",
        device="cpu", prompt_mode="full_text",
    )  # fmt: skip
    assert json.loads((model / "finetune_config.json").read_text())["family"] == "sdxl"
    pipe, text = load_parameter_aware_pipeline(out, model, device="cpu")
    images = generate_images(pipe, [TOY_CONDITION], "full_text", [0], 2, 2.0, RES, RES, 1, text)
    assert images[0].shape == (RES, RES)


def test_family_and_resolution_are_checked_before_any_data_is_read():
    from microgen.generate.tiny import pretrain_tiny_base

    with pytest.raises(ValueError, match="multiple of 8 for the tiny sdxl base, got 36"):
        pretrain_tiny_base("no-data", "no-split.csv", "no-out", resolution=36, family="sdxl")
    with pytest.raises(ValueError, match="unknown model family 'sd2'"):
        pretrain_tiny_base("no-data", "no-split.csv", "no-out", family="sd2")


def test_sdxl_model_on_the_tiny_base_plans_its_pretraining_upstream(tmp_path):
    root = copy_workflow(tmp_path)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["generate"]["models"]["sdxl"] = {
        "family": "sdxl", "prompt_modes": ["full_text"], "resolution": 64,
    }  # fmt: skip
    config["generate"]["pretrain"]["sdxl"] = {"resolution": 64, "steps": 50}
    path = tmp_path / "sdxl.yaml"
    path.write_text(yaml.safe_dump(config))
    ds = config["dataset"]["name"]
    target = f"results/{ds}/models/sdxl/full_text/train_log.csv"
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", target,
         "--configfile", str(path)],
        cwd=root, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = {}  # rule -> dry-run job text
    for block in result.stdout.split("\nrule ")[1:]:
        jobs.setdefault(block.split(":", 1)[0], []).append(block)
    base = f"results/{ds}/models/tiny-sdxl-base/model_index.json"
    (pretrain,) = jobs["pretrain_tiny_sdxl_base"]
    assert f"output: {base}" in pretrain
    (finetune,) = jobs["fine_tune"]
    assert base in finetune.split("output:")[0]  # the fine-tune's input
    assert "pretrain_tiny_base" not in jobs  # the SD3 tiny base is not needed for it
