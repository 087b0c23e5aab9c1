"""Conditional pixel-space DDPM baseline: sampler, guidance, learning, persistence, resume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from baselines_data import BRIGHT, DARK, make_two_condition_set
from diffusers import DDIMScheduler, DDPMScheduler

from microgen.generate.condition_vector import ConditionEncoder
from microgen.generate.ddpm import (
    ConditionalDDPM,
    DDPMConfig,
    ddim_sample,
    sample_ddpm,
    train_ddpm,
)

TINY = DDPMConfig(
    resolution=16,
    block_out_channels=(16, 32),
    attention_levels=(False, False),
    layers_per_block=1,
    norm_num_groups=8,
)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_ddim_with_oracle_epsilon_recovers_x0():
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    ddim = DDIMScheduler.from_config(sched.config, set_alpha_to_one=True)
    abar = sched.alphas_cumprod
    x0 = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8

    def oracle(x, t):  # the exact noise that maps x0 to x_t
        a = abar[int(t)]
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    out = ddim_sample(oracle, noise, ddim, steps=50)
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=0)

    def off_by_one(x, t):  # a sampler fed the wrong timestep must not recover x0
        return oracle(x, min(int(t) + 20, 999))

    bad = ddim_sample(off_by_one, noise, ddim, steps=50)
    assert (bad - x0).abs().max() > 1e-2


def _tiny_model(schema):
    enc = ConditionEncoder.fit(schema, [DARK, BRIGHT])
    torch.manual_seed(0)
    model = ConditionalDDPM(TINY, enc)
    with torch.no_grad():  # make the condition matter at initialisation
        for p in model.embedder.parameters():
            p.normal_(0, 0.5)
    return model.eval()


def test_guidance_scale_one_is_conditional_prediction(schema):
    model = _tiny_model(schema)
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    cont, cat = (torch.from_numpy(a) for a in model.encoder.encode_many([DARK, BRIGHT]))
    t = torch.tensor(500)
    with torch.no_grad():
        cond = model.epsilon(x, t, cont, cat)
        uncond = model.epsilon(x, t, cont, cat, drop=torch.ones(2, dtype=torch.bool))
        g1 = model.guided_epsilon(x, t, cont, cat, 1.0)
        g3 = model.guided_epsilon(x, t, cont, cat, 3.0)
    torch.testing.assert_close(g1, cond, atol=1e-5, rtol=1e-5)
    assert (cond - uncond).abs().max() > 1e-3  # the condition does change ε
    torch.testing.assert_close(g3, uncond + 3.0 * (cond - uncond), atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, schema):
    """A tiny DDPM trained on dark vs bright conditions (≈ 300 steps, 16 px)."""
    root = tmp_path_factory.mktemp("ddpm")
    data_dir, split_csv = make_two_condition_set(root, schema)
    torch.set_num_threads(1)
    out = train_ddpm(
        data_dir,
        split_csv,
        schema_path=_schema_path(),
        out_dir=root / "model",
        resolution=16,
        steps=300,
        batch_size=16,
        lr=2e-3,
        seed=0,
        checkpoint_every=150,
        log_every=50,
        model_config=TINY,
        progress=False,
    )
    return root, data_dir, split_csv, out


def _schema_path():
    from conftest import SCHEMA

    return SCHEMA


def test_learned_brightness_orders_as_conditions(trained):
    """Weak but falsifiable: 300 CPU steps teach the ordering, not the full 130-level gap.

    Samples of the bright condition must be brighter than those of the dark one, and
    classifier-free guidance (1.5) must widen that gap over the purely conditional model.
    A model ignoring its condition gives gaps ≈ 0 either way.
    """
    _, _, _, model_dir = trained
    seeds = list(range(6))
    gaps = {}
    for guidance in (1.0, 1.5):
        images = sample_ddpm(
            model_dir, [DARK] * 6 + [BRIGHT] * 6, seeds + seeds, steps=20, guidance=guidance
        )
        dark = np.mean([im.mean() for im in images[:6]])
        bright = np.mean([im.mean() for im in images[6:]])
        gaps[guidance] = bright - dark
    print("brightness gaps", gaps)
    assert gaps[1.0] > 3, gaps
    assert gaps[1.5] > gaps[1.0] + 1, gaps
    log = pd.read_csv(model_dir / "train_log.csv")
    assert list(log["step"]) == [50, 100, 150, 200, 250, 300]


def test_save_load_same_samples_and_batching_independent(trained, tmp_path):
    _, _, _, model_dir = trained
    model = ConditionalDDPM.from_pretrained(model_dir)
    a = model.sample([DARK, BRIGHT, DARK], [3, 4, 5], steps=5, batch_size=3)
    model.save_pretrained(tmp_path / "copy")
    b = sample_ddpm(tmp_path / "copy", [DARK, BRIGHT, DARK], [3, 4, 5], steps=5, batch_size=1)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], a[2])  # different seeds, different images
    with pytest.raises(ValueError, match="unknown category"):
        model.sample([{**DARK, "cooling": "oil"}], [0], steps=2)


def test_resume_equals_uninterrupted(trained, tmp_path):
    _, data_dir, split_csv, _ = trained
    kw = dict(
        resolution=16, batch_size=4, lr=1e-3, seed=7, log_every=1, model_config=TINY,
        checkpoint_every=3, continuable=True, progress=False,
    )  # fmt: skip
    full = train_ddpm(data_dir, split_csv, _schema_path(), tmp_path / "full", steps=6, **kw)
    part = tmp_path / "part"
    train_ddpm(data_dir, split_csv, _schema_path(), part, steps=3, **kw)
    assert (part / "checkpoints" / "step-0000003" / "training_state.json").is_file()
    train_ddpm(data_dir, split_csv, _schema_path(), part, steps=6, **kw)
    a = ConditionalDDPM.from_pretrained(full).unet.state_dict()
    b = ConditionalDDPM.from_pretrained(part).unet.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0)
    la = pd.read_csv(full / "train_log.csv")
    lb = pd.read_csv(part / "train_log.csv")
    assert list(la["step"]) == list(lb["step"]) == [1, 2, 3, 4, 5, 6]
    np.testing.assert_array_equal(la["loss"], lb["loss"])


def test_a_finished_run_keeps_weights_only_and_refuses_more_steps(trained, tmp_path):
    _, data_dir, split_csv, _ = trained
    kw = dict(resolution=16, batch_size=4, seed=7, model_config=TINY, progress=False)
    out = tmp_path / "r"
    train_ddpm(data_dir, split_csv, _schema_path(), out, steps=4, checkpoint_every=2, **kw)
    root = out / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["step-0000004"]
    assert sorted(p.name for p in (root / "step-0000004").iterdir()) == ["model", "train_log.csv"]
    # the model directory at out_dir is the checkpoint's, file for file
    model = root / "step-0000004" / "model"
    for f in (p for p in model.rglob("*") if p.is_file()):
        assert (out / f.relative_to(model)).read_bytes() == f.read_bytes()
    with pytest.raises(ValueError, match="finished run.*delete"):
        train_ddpm(data_dir, split_csv, _schema_path(), out, steps=6, checkpoint_every=2, **kw)
    with pytest.raises(ValueError, match="past the 2 steps.*delete"):
        train_ddpm(data_dir, split_csv, _schema_path(), out, steps=2, checkpoint_every=2, **kw)


def test_channels_last_keeps_the_unet_outputs_and_restores_its_layout():
    from diffusers import UNet2DModel

    from microgen.device import channels_last

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=32, in_channels=1, out_channels=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
        layers_per_block=1, norm_num_groups=4,
    ).eval()  # fmt: skip
    x, t = torch.randn(2, 1, 32, 32), torch.tensor([10, 500])
    with torch.no_grad():
        ref = unet(x, t).sample
        with channels_last(unet):
            assert not unet.down_blocks[0].resnets[0].conv1.weight.is_contiguous()
            fast = unet(x.contiguous(memory_format=torch.channels_last), t).sample
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
    # back in the default layout, which safetensors can save
    assert all(p.is_contiguous() for p in unet.parameters())
