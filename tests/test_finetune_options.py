"""Fine-tuning options on the tiny base: releasing the cached encoders, the fp32 VAE, the
checkpoint limit, validation sampling, random crop and flip, 8-bit AdamW."""

from __future__ import annotations

import shutil
import sys
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SCHEMA, TOY_FINETUNE_SPLITS, pretrain_toy_base, write_toy_prepared

import microgen.generate.finetune as ft

RES = 32


@pytest.fixture(scope="module")
def data(tmp_path_factory, schema):
    """Eight 40-px images with varied conditions, six in train."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("options")
    return write_toy_prepared(root, schema, TOY_FINETUNE_SPLITS)


@pytest.fixture(scope="module")
def base(data):
    return pretrain_toy_base(data, RES)


@pytest.fixture(scope="module")
def wide(tmp_path_factory, schema):
    """Four 40 x 56 images (as the UHCS micrographs, wider than high), all in train."""
    from microgen.data.prepared import write_prepared

    root = tmp_path_factory.mktemp("wide")
    rng = np.random.default_rng(1)
    rows = pd.read_csv(write_toy_prepared(root / "toy", schema, ["train"] * 4) / "split.csv")
    metadata = pd.read_csv(root / "toy" / "data" / "metadata.csv")
    images = [(i, rng.integers(0, 255, (40, 56), dtype=np.uint8)) for i in metadata["id"]]
    write_prepared(root / "data", metadata, images, schema=schema)
    rows.to_csv(root / "split.csv", index=False)
    return root


def _ft(base, data, out, **kw):
    args = dict(max_steps=2, resolution=RES, batch_size=2, learning_rate=1e-3,
                text_encoder_lr=1e-3, rank=2, mixed_precision="no", device="cpu")  # fmt: skip
    args.update(kw)
    return ft.fine_tune(base, data / "data", data / "split.csv", SCHEMA, out, **args)


def _losses(out: Path) -> np.ndarray:
    return pd.read_csv(out / "train_log.csv")["loss"].to_numpy()


TEXT_ONLY = dict(prompt_mode="text_only", train_text_encoder=False)


# ------------------------------------------------------------------------------- memory


@pytest.mark.parametrize(
    ("settings", "released"),
    [
        ({}, {"text_encoder_3", "vae"}),
        (TEXT_ONLY, {"text_encoder_3", "vae", "text_encoder", "text_encoder_2"}),
        (dict(TEXT_ONLY, validation_every=2), {"text_encoder_3", "text_encoder", "text_encoder_2"}),
    ],
    ids=["full_text", "text_only-frozen-clip", "text_only-validating"],
)
def test_cached_encoders_hold_no_memory_while_training(base, data, tmp_path, settings, released):
    """From the first step on, T5, the VAE (unless validation samples need it) and the CLIP
    encoders when nothing of theirs is trained hold no parameter on any device (meta); the
    denoiser and every encoder still trained stay; the parameter table still counts them."""
    names = ("transformer", "text_encoder", "text_encoder_2", "text_encoder_3", "vae")
    where: dict[int, dict[str, set[str]]] = {}

    def callback(step, state):
        pipe = state["pipe"]
        where[step] = {n: {p.device.type for p in getattr(pipe, n).parameters()} for n in names}

    out = _ft(base, data, tmp_path / "ft", step_callback=callback, **settings)
    for step in (1, 2):
        assert {n for n, d in where[step].items() if d == {"meta"}} == released
        assert all(d == {"cpu"} for n, d in where[step].items() if n not in released)
    table = pd.read_csv(out / "parameters.csv").set_index("component")
    assert table.loc["T5", "pretrained"] > 0 and table.loc["VAE", "pretrained"] > 0
    # Released modules count as the base's: T5's tied embedding (shared = embed_tokens) once.
    from diffusers import StableDiffusion3Pipeline

    plain = StableDiffusion3Pipeline.from_pretrained(base)
    rows = {"T5": "text_encoder_3", "VAE": "vae", "CLIP-L": "text_encoder",
            "CLIP-G": "text_encoder_2"}  # fmt: skip
    for component, name in rows.items():
        pretrained = sum(p.numel() for p in getattr(plain, name).parameters())
        assert table.loc[component, "pretrained"] == pretrained, component


def test_releasing_keeps_tied_weights_tied(base):
    """T5's token table is one tensor in two modules (``shared``, ``encoder.embed_tokens``);
    on the meta device it stays one, so it is counted once and the modules stay T5's."""
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline.from_pretrained(base)
    t5 = pipe.text_encoder_3
    assert t5.shared.weight is t5.encoder.embed_tokens.weight
    before = sum(p.numel() for p in t5.parameters())
    assert ft.release_cached_encoders(pipe, clip=True, vae=True) == [
        "text_encoder_3", "text_encoder", "text_encoder_2", "vae"]  # fmt: skip
    assert t5.shared.weight is t5.encoder.embed_tokens.weight and t5.shared.weight.is_meta
    assert sum(p.numel() for p in t5.parameters()) == before


def test_latents_are_an_fp32_encoding_when_the_pipeline_is_bf16(base, data):
    """With a bf16 pipeline the posteriors come from a separate fp32 VAE (deleted after use):
    equal to the fp32 pipeline's encoding, unlike the bf16 VAE's own."""
    from microgen.generate.common import encode_latent_stats, load_base_pipeline

    ids = [f"im{k}" for k in range(6)]
    prompts = {i: "a micrograph" for i in ids}
    cfg = ft.FineTuneConfig(resolution=RES, mixed_precision="bf16", prompt_mode="text_only")
    pipe16 = load_base_pipeline(base, torch.bfloat16)
    seen = []
    real = ft.fp32_vae

    def watched(pipe, base_):
        with real(pipe, base_) as vae:
            seen.append(weakref.ref(vae))
            assert vae is not pipe.vae and vae.dtype == torch.float32
            yield vae

    batches = ft._encode_batches(pipe16, base, data / "data", ids, prompts, None, cfg, [])
    images = ft.train_images(data / "data", ids, RES, False, 0)
    reference = encode_latent_stats(load_base_pipeline(base, torch.float32).vae, images)
    bf16 = encode_latent_stats(pipe16.vae, images)
    for k, i in enumerate(ids):
        for j in (0, 1):
            torch.testing.assert_close(batches.latents[i][j], reference[j][k], rtol=0, atol=1e-6)
    assert (bf16[0] - reference[0]).abs().max() > 1e-3  # the bf16 VAE would not do

    import contextlib

    ft.fp32_vae = contextlib.contextmanager(watched)
    try:
        ft._encode_batches(pipe16, base, data / "data", ids, prompts, None, cfg, [])
    finally:
        ft.fp32_vae = real
    import gc

    gc.collect()
    assert len(seen) == 1 and seen[0]() is None  # the fp32 VAE is gone


@pytest.mark.parametrize("settings", [{}, TEXT_ONLY], ids=["full_text", "text_only-frozen-clip"])
def test_releasing_does_not_change_the_loss_curve(base, data, tmp_path, monkeypatch, settings):
    """fp32: the run that caches and releases the encoders has the loss curve of one that
    keeps every encoder and runs CLIP at every step."""
    settings = dict(settings, max_steps=3, prior_preservation=True, num_class_images=2,
                    class_inference_steps=2)  # fmt: skip
    released = _losses(_ft(base, data, tmp_path / "released", **settings))
    monkeypatch.setattr(ft, "release_cached_encoders", lambda pipe, **kw: [])
    monkeypatch.setattr(ft, "clip_is_frozen", lambda cfg: False)
    kept = _losses(_ft(base, data, tmp_path / "kept", **settings))
    # CLIP run per batch or once per prompt may differ in the last bit (float32 rounding)
    np.testing.assert_allclose(released, kept, rtol=1e-6, atol=0)


# ------------------------------------------------------------------- checkpoints, validation


def test_checkpoint_limit_keeps_the_newest_and_resume_is_exact(base, data, tmp_path):
    """``checkpoints_total_limit: 2`` with a checkpoint every step: before each step only the
    two newest checkpoints exist; a run killed at step 5 resumes from step 4 to the log and
    adapters of an uninterrupted run."""
    settings = dict(max_steps=6, checkpoint_every=1, checkpoints_total_limit=2)
    present: dict[int, list[str]] = {}

    def record(step, _):
        present[step] = sorted(p.name for p in (tmp_path / "straight" / "checkpoints").glob("s*"))

    straight = _ft(base, data, tmp_path / "straight", step_callback=record, **settings)
    assert present[2] == ["step-0000001"]
    for step in range(3, 7):
        assert present[step] == [f"step-{s:07d}" for s in (step - 2, step - 1)]

    def crash(step, _):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _ft(base, data, tmp_path / "resumed", step_callback=crash, **settings)
    folders = sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").glob("step-*"))
    assert folders == ["step-0000003", "step-0000004"]
    resumed = _ft(base, data, tmp_path / "resumed", **settings)
    logs = [pd.read_csv(d / "train_log.csv").drop(columns="seconds") for d in (straight, resumed)]
    pd.testing.assert_frame_equal(*logs)
    lora = "pytorch_lora_weights.safetensors"
    assert (straight / lora).read_bytes() == (resumed / lora).read_bytes()


def test_validation_grids_appear_on_schedule_and_leave_training_alone(base, data, tmp_path):
    """``validation_every: 2`` over 5 steps writes the grids of steps 2 and 4 only, one
    column per distinct validation condition (the two non-train rows); the loss curve is
    the one without validation, and a run killed at step 3 resumes to the same grid."""
    from microgen.data.prepared import read_gray

    plain = _losses(_ft(base, data, tmp_path / "plain", max_steps=5))
    settings = dict(max_steps=5, validation_every=2, validation_inference_steps=2,
                    checkpoint_every=1)  # fmt: skip
    out = _ft(base, data, tmp_path / "val", **settings)
    np.testing.assert_array_equal(_losses(out), plain)
    grids = sorted(p.name for p in (out / "validation").glob("*.png"))
    assert grids == ["step-000002.png", "step-000004.png"]
    table = pd.read_csv(out / "validation" / "conditions.csv")
    assert len(table) == 2 and table["seed"].tolist() == [0, 1]
    assert read_gray(out / "validation" / "step-000004.png").shape == (RES, 2 * RES)

    def crash(step, _):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _ft(base, data, tmp_path / "resumed", step_callback=crash, **settings)
    (tmp_path / "resumed" / "validation" / "step-000002.png").unlink()
    resumed = _ft(base, data, tmp_path / "resumed", **settings)
    for name in ("step-000004.png",):
        a, b = (read_gray(d / "validation" / name) for d in (out, resumed))
        np.testing.assert_array_equal(a, b)
    assert not (resumed / "validation" / "step-000002.png").exists()  # step 2 was before


# ------------------------------------------------------------------------ crop, flip, adam


def test_random_crops_are_windows_of_each_image_drawn_per_seed(wide):
    """A random crop is a window of the image's own resize, the same for the same seed and
    moved by another seed; the centre crop is the shared preprocessing's."""
    from microgen.data.prepared import read_gray
    from microgen.data.preprocess import crop_room, resize_center_crop, resize_crop
    from microgen.generate.common import load_images

    ids = pd.read_csv(wide / "split.csv")["id"].astype(str).tolist()
    crops = {s: ft.train_images(wide / "data", ids, RES, True, s) for s in (0, 0, 1)}
    seed0 = ft.train_images(wide / "data", ids, RES, True, 0)
    assert torch.equal(crops[0], seed0) and not torch.equal(crops[0], crops[1])
    for k, i in enumerate(ids):
        gray = read_gray(wide / "data" / "images" / f"{i}.png")
        room = crop_room(gray.shape, RES)
        assert room[0] == 0 and room[1] > 0  # wider than high: the crop slides sideways
        windows = [
            torch.from_numpy(resize_crop(gray, RES, (0, x)).astype(np.float32) / 127.5 - 1)
            for x in range(room[1] + 1)
        ]
        assert any(torch.equal(crops[0][k, 0], w) for w in windows)
        np.testing.assert_array_equal(resize_crop(gray, RES), resize_center_crop(gray, RES))
    assert torch.equal(ft.train_images(wide / "data", ids, RES, False, 0),
                       load_images(wide / "data", ids, RES))  # fmt: skip


class _Vae:
    class config:
        shift_factor = 0.0
        scaling_factor = 1.0


def test_flips_keep_each_image_with_its_condition_and_follow_the_seed():
    """Drawn with ``random_flip``, each latent is its own image's or its mirror's, next to its
    own prompt and condition; the draw is the same for the same seed; without the flag no
    mirror is drawn."""
    ids = [f"im{k}" for k in range(5)]
    mean = {i: torch.full((1, 2, 2), float(k)) for k, i in enumerate(ids)}
    latents = {i: (mean[i], torch.zeros(1, 2, 2), -1 - mean[i], torch.zeros(1, 2, 2)) for i in ids}
    batches = ft._Batches(ids, {i: f"prompt {i}" for i in ids}, {i: {"k": i} for i in ids},
                          latents, flip=True)  # fmt: skip

    def draw(seed, flip):
        batches.flip = flip
        gen = torch.Generator().manual_seed(seed)
        return [batches.draw(_Vae, 4, gen) for _ in range(6)]

    flipped = 0
    for lat, prompts, conditions in draw(0, True):
        for z, p, c in zip(lat, prompts, conditions, strict=True):
            k = ids.index(c["k"])
            assert p == f"prompt {c['k']}" and float(z[0, 0, 0]) in (k, -1 - k)
            flipped += float(z[0, 0, 0]) < 0
    assert 0 < flipped < 24
    first, again = draw(0, True), draw(0, True)
    assert all(torch.equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(first, again, strict=True))
    assert all(bool((lat >= 0).all()) for lat, _, _ in draw(0, False))


def test_random_crop_trains_on_other_pixels(base, wide, tmp_path):
    """End to end on images wider than high: the random crop's run has another loss curve
    than the centre crop's and repeats itself for the same seed."""
    settings = dict(max_steps=2, random_flip=False)
    centre = _losses(_ft(base, wide, tmp_path / "centre", **settings))
    random = [_losses(_ft(base, wide, tmp_path / f"r{k}", random_crop=True, **settings))
              for k in range(2)]  # fmt: skip
    np.testing.assert_array_equal(*random)
    assert not np.array_equal(centre, random[0])
    shutil.rmtree(tmp_path)


def test_8bit_adam_fails_clearly_without_cuda_or_bitsandbytes(base, data, tmp_path, monkeypatch):
    """On the CPU the run stops before loading anything, naming the key; on CUDA without
    bitsandbytes the error names the key and the package."""
    with pytest.raises(ValueError, match="use_8bit_adam: true needs a CUDA device"):
        _ft(base, data, tmp_path / "ft", use_8bit_adam=True)
    assert not (tmp_path / "ft" / "parameters.csv").exists()
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import fails
    cfg = ft.FineTuneConfig(use_8bit_adam=True)
    with pytest.raises(ImportError, match="use_8bit_adam: true needs the bitsandbytes"):
        ft.adamw_class(cfg, torch.device("cuda"))
    assert ft.adamw_class(ft.FineTuneConfig(), torch.device("cpu")) is torch.optim.AdamW


@pytest.mark.parametrize(
    "key", ["checkpoints_total_limit", "validation_images", "validation_inference_steps"]
)
def test_bad_option_values_name_the_key(key):
    with pytest.raises(ValueError, match=f"{key} must be an integer >= 1, got 0"):
        ft.FineTuneConfig(**{key: 0})
    with pytest.raises(ValueError, match="validation_every must be an integer >= 0, got -1"):
        ft.FineTuneConfig(validation_every=-1)
