"""Training stages (seeded, resumable), generation, measurement and scoring of the 3D LDM."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from scipy import ndimage

import microgen.volumes.evaluate as ev
from microgen.descriptors.volumes import graspi_descriptors
from microgen.volumes.diffusion import LatentDiffusion3DPipeline
from microgen.volumes.evaluate import (
    measure_volumes,
    pearson_r2,
    predict_process_parameters,
    r2_score,
    r2_table,
    sample_volumes,
    time_sampling,
)
from microgen.volumes.hdf5 import VolumeWriter
from microgen.volumes.models import ConditionNormalizer, UNet3DConfig, VAE3DConfig
from microgen.volumes.splits import split_h5
from microgen.volumes.train import (
    FitSettings,
    lateral_symmetry,
    train_feature_predictor,
    train_ldm,
    train_vae,
)

torch.set_num_threads(1)
SHAPE = (16, 16, 16)
VAE_CFG = VAE3DConfig(volume_shape=SHAPE, channel_mults=(1, 2), latent_channels=2)
CONDS = ("vol_frac_D", "vol_frac_M", "CT_f_D_tort1", "CT_f_A_tort1")
FEATS = ("vol_frac_D", "phi", "chi", "log_time")
UNET = UNet3DConfig(in_channels=2, sample_shape=(4, 4, 4), cond_dim=4, base_channels=8)
FAST = dict(batch_size=4, lr=3e-3, min_lr=3e-4, progress=False)


def fast(**settings) -> FitSettings:
    """Short, quiet training settings for 16³ test volumes."""
    return FitSettings(**{**FAST, **settings})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """4 runs x 3 snapshots of smoothed-noise three-phase 16³ volumes with GraSPI attrs."""
    root = tmp_path_factory.mktemp("vol3d")
    h5, split = root / "tiny.h5", root / "split.csv"
    rng = np.random.default_rng(0)
    with VolumeWriter(h5, shape=SHAPE, file_attrs={"three_phase": True}) as w:
        for r in range(4):
            phi = 0.3 + 0.1 * r
            for k in range(3):
                f = ndimage.gaussian_filter(rng.standard_normal(SHAPE), 1.0 + k, mode="wrap")
                lo, hi = np.quantile(f, [phi, phi + 0.2])
                vol = np.where(f < lo, 0, np.where(f < hi, 2, 1)).astype(np.uint8)
                attrs = {"phi": phi, "chi": 2.5 + 0.2 * r, "log_time": 1.0 + k, "run_id": f"r{r}"}
                attrs.update(graspi_descriptors(vol, n_phases=3).to_row())
                w.add(f"r{r}_step_{k}", vol, attrs)
    split_h5(h5, split, val_fraction=0.25, seed=0)
    vae = root / "vae"
    train_vae(h5, split, vae, VAE_CFG, fast(epochs=3))
    fp = root / "fp"
    train_feature_predictor(h5, split, vae, fp, FEATS, hidden=(32, 16), fit=fast(epochs=3))
    ldm = root / "ldm"
    train_ldm(h5, split, vae, ldm, CONDS, unet_config=UNET, fit=fast(epochs=2))
    return {"root": root, "h5": h5, "split": split, "vae": vae, "fp": fp, "ldm": ldm}


def _same_weights(a, b) -> None:
    sa, sb = load_file(str(a)), load_file(str(b))
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_stage_outputs(data):
    for d in ("vae", "fp"):
        assert (data[d] / "model.safetensors").is_file()
        assert (data[d] / "best" / "model.safetensors").is_file()
        # a finished run keeps its last epoch's checkpoint, without the optimiser state
        ckpts = data[d] / "checkpoints"
        assert sorted(p.name for p in ckpts.iterdir()) == ["best", "step-0000003"]
        assert sorted(p.name for p in (ckpts / "step-0000003").iterdir()) == [
            "model",
            "state.json",
            "train_log.csv",
        ]
        last = ckpts / "step-0000003"
        for output, source in (
            ("model.safetensors", last / "model" / "model.safetensors"),
            ("best/model.safetensors", ckpts / "best" / "model.safetensors"),
            ("train_log.csv", last / "train_log.csv"),
        ):
            assert (data[d] / output).read_bytes() == source.read_bytes(), output
    log = pd.read_csv(data["vae"] / "train_log.csv")
    assert list(log["epoch"]) == [1, 2, 3]
    assert {"train_loss", "val_loss", "val_acc", "lr"} <= set(log.columns)
    assert log["lr"].iloc[-1] == pytest.approx(3e-4)  # cosine annealed to min_lr
    norm = ConditionNormalizer.load(data["fp"] / "feature_normalizer.json")
    assert norm.names == FEATS
    ldm_norm = ConditionNormalizer.load(data["ldm"] / "condition_normalizer.json")
    assert ldm_norm.names == CONDS and ldm_norm.method == "standard"
    for f in ("unet/model.safetensors", "scheduler/scheduler_config.json", "latent_stats.json"):
        assert (data["ldm"] / f).is_file()


def test_vae_resume_equals_uninterrupted(data, tmp_path):
    kw = dict(config=VAE_CFG, fit=fast(epochs=2))
    train_vae(data["h5"], data["split"], tmp_path / "full", **kw)
    train_vae(data["h5"], data["split"], tmp_path / "cut", VAE_CFG, fast(epochs=2, stop_after=1))
    # not finished yet: only the checkpoints show it
    assert [p.name for p in (tmp_path / "cut").iterdir()] == ["checkpoints"]
    assert (tmp_path / "cut" / "checkpoints" / "step-0000001" / "training_state.json").is_file()
    log = train_vae(data["h5"], data["split"], tmp_path / "cut", **kw)
    assert list(log["epoch"]) == [1, 2]
    _same_weights(tmp_path / "full" / "model.safetensors", tmp_path / "cut" / "model.safetensors")
    full = pd.read_csv(tmp_path / "full" / "train_log.csv")
    pd.testing.assert_series_equal(full["train_loss"], log["train_loss"])
    with pytest.raises(ValueError, match="epochs"):
        train_vae(data["h5"], data["split"], tmp_path / "cut", VAE_CFG, fast(epochs=3))


def test_lateral_symmetry_keeps_the_electrode_axis_and_the_descriptors():
    rng = np.random.default_rng(1)
    f = ndimage.gaussian_filter(rng.standard_normal(SHAPE), 1.5, mode="wrap")
    vol = torch.from_numpy((f > 0).astype(np.uint8))[None].repeat(6, 1, 1, 1)
    gen = torch.Generator().manual_seed(0)
    flipped = lateral_symmetry(vol, periodic=False, generator=gen)
    shifted = lateral_symmetry(vol, periodic=True, generator=gen)
    assert not all(torch.equal(v, vol[0]) for v in shifted)  # it does transform
    ref = graspi_descriptors(vol[0].numpy(), n_phases=2).to_row()
    for v in torch.cat([flipped, shifted]):
        # Only lateral axes move: every electrode-parallel slice keeps its phase count.
        assert torch.equal(v.sum((1, 2)), vol[0].sum((1, 2)))
    for v in flipped:
        # Flips and swaps of Y, X are lattice symmetries that fix both electrodes, so the
        # shortest paths to them, hence the tortuosities, are unchanged.
        row = graspi_descriptors(v.numpy(), n_phases=2).to_row()
        for key in ("vol_frac_D", "CT_f_D_tort1", "CT_f_A_tort1", "STAT_e"):
            assert row[key] == pytest.approx(ref[key], nan_ok=True), key
    first = lateral_symmetry(vol, True, torch.Generator().manual_seed(5))
    assert torch.equal(first, lateral_symmetry(vol, True, torch.Generator().manual_seed(5)))


def test_augmented_training_is_seeded(data, tmp_path):
    fit = fast(augment="lateral_periodic", epochs=1, augment_copies=3)
    for name in ("a", "b"):
        train_vae(data["h5"], data["split"], tmp_path / f"vae-{name}", VAE_CFG, fit)
        train_feature_predictor(
            data["h5"], data["split"], data["vae"], tmp_path / f"fp-{name}", FEATS,
            hidden=(32, 16), fit=fit,
        )  # fmt: skip
        train_ldm(
            data["h5"], data["split"], data["vae"], tmp_path / f"ldm-{name}", CONDS,
            unet_config=UNET, fit=fit,
        )  # fmt: skip
    for weights in (
        "vae-{}/model.safetensors",
        "fp-{}/model.safetensors",
        "ldm-{}/unet/model.safetensors",
    ):
        _same_weights(tmp_path / weights.format("a"), tmp_path / weights.format("b"))
    # The LDM does train on the transformed copies: same seed, other latents, other weights.
    train_ldm(
        data["h5"], data["split"], data["vae"], tmp_path / "ldm-plain", CONDS,
        unet_config=UNET, fit=fast(epochs=1),
    )  # fmt: skip
    plain = load_file(str(tmp_path / "ldm-plain" / "unet" / "model.safetensors"))
    augmented = load_file(str(tmp_path / "ldm-a" / "unet" / "model.safetensors"))
    assert any(not torch.equal(plain[k], augmented[k]) for k in plain)
    with pytest.raises(ValueError, match="augment"):
        FitSettings(augment="rotate")
    with pytest.raises(ValueError, match="augment_copies"):
        FitSettings(augment_copies=0)


def test_ldm_resume_equals_uninterrupted(data, tmp_path):
    kw = dict(condition_names=CONDS, unet_config=UNET)
    fit = fast(epochs=2)
    train_ldm(data["h5"], data["split"], data["vae"], tmp_path / "full", fit=fit, **kw)
    cut = replace(fit, stop_after=1)
    train_ldm(data["h5"], data["split"], data["vae"], tmp_path / "cut", fit=cut, **kw)
    train_ldm(data["h5"], data["split"], data["vae"], tmp_path / "cut", fit=fit, **kw)
    _same_weights(
        tmp_path / "full" / "unet" / "model.safetensors",
        tmp_path / "cut" / "unet" / "model.safetensors",
    )
    # a different seed gives different weights (the check above can fail)
    s1 = replace(fit, seed=1)
    train_ldm(data["h5"], data["split"], data["vae"], tmp_path / "s1", fit=s1, **kw)
    with pytest.raises(AssertionError):
        _same_weights(
            tmp_path / "full" / "unet" / "model.safetensors",
            tmp_path / "s1" / "unet" / "model.safetensors",
        )


def test_ldm_ema_is_saved_and_resumes(data, tmp_path):
    kw = dict(condition_names=CONDS, unet_config=UNET)
    fit = fast(epochs=2, ema_decay=0.9)
    train_ldm(data["h5"], data["split"], data["vae"], tmp_path / "full", fit=fit, **kw)
    cut = replace(fit, stop_after=1)
    train_ldm(data["h5"], data["split"], data["vae"], tmp_path / "cut", fit=cut, **kw)
    train_ldm(data["h5"], data["split"], data["vae"], tmp_path / "cut", fit=fit, **kw)
    unet = "unet/model.safetensors"
    _same_weights(tmp_path / "full" / unet, tmp_path / "cut" / unet)
    # the saved weights are the average, not the last iterate of the same run
    plain = replace(fit, ema_decay=0.0)
    train_ldm(data["h5"], data["split"], data["vae"], tmp_path / "plain", fit=plain, **kw)
    with pytest.raises(AssertionError):
        _same_weights(tmp_path / "full" / unet, tmp_path / "plain" / unet)
    with pytest.raises(ValueError, match="ema_decay"):
        fast(ema_decay=1.0)


def test_ema_average_follows_the_weights():
    from microgen.checkpoint import WeightAverage

    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.zero_()
    ema = WeightAverage(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model, step=1000)  # past warm-up: decay 0.5
    torch.testing.assert_close(ema.shadow["weight"], torch.full((1, 2), 0.5))
    with ema.applied(model):
        torch.testing.assert_close(model.weight, torch.full((1, 2), 0.5))
    torch.testing.assert_close(model.weight.detach(), torch.ones(1, 2))  # restored


def test_sample_volumes_end_to_end(data):
    targets = pd.DataFrame(
        {"vol_frac_D": [0.3, 0.5], "vol_frac_M": [0.2, 0.2], "CT_f_D_tort1": [0.5, 0.6],
         "CT_f_A_tort1": [0.5, 0.4], "ignored": [1, 2]}
    )  # fmt: skip
    kw = dict(n_per_target=3, steps=4, guidance=2.0, seed=7, batch_size=4, progress=False)
    g = sample_volumes(data["vae"], data["ldm"], targets, fp_dir=data["fp"], **kw)
    assert g.volumes.shape == (6, *SHAPE) and g.volumes.dtype == np.uint8
    assert set(np.unique(g.volumes)) <= {0, 1, 2}
    assert list(g.table["target_id"]) == [0, 0, 0, 1, 1, 1]
    assert list(g.table["sample"]) == [0, 1, 2, 0, 1, 2]
    assert g.table["vol_frac_D"].tolist() == [0.3] * 3 + [0.5] * 3
    assert {"pred_phi", "pred_chi", "pred_log_time"} <= set(g.table.columns)
    assert list(g.timing["batch_size"]) == [4, 2]
    again = sample_volumes(data["vae"], data["ldm"], targets, **kw)
    np.testing.assert_array_equal(again.volumes, g.volumes)
    ddpm = sample_volumes(data["vae"], data["ldm"], targets, sampler="ddpm", **kw)
    assert ddpm.volumes.shape == g.volumes.shape
    with pytest.raises(KeyError):
        sample_volumes(data["vae"], data["ldm"], targets[["vol_frac_D"]], **kw)


def test_pipeline_inverse_latent_scaling(data):
    pipe = LatentDiffusion3DPipeline.from_pretrained(data["vae"], data["ldm"], device="cpu")
    assert pipe.condition_names == CONDS
    assert pipe.ldm.latent_scale > 0


def test_process_parameters_from_validation_volumes(data):
    true, pred = predict_process_parameters(data["h5"], data["split"], data["vae"], data["fp"])
    assert list(true["name"]) == list(pred["name"]) and len(true) == 3  # one val run
    assert list(pred.columns[1:]) == list(FEATS)
    assert true["phi"].nunique() == 1
    table = r2_table(true, pred, ["phi", "chi", "log_time"])
    assert list(table["feature"]) == ["phi", "chi", "log_time"]
    assert np.isnan(table.loc[0, "r2"])  # constant truth within one run: R² undefined
    assert np.isfinite(table.loc[2, "r2"]) and table.loc[2, "n"] == 3


def test_time_sampling_columns(data):
    t = time_sampling(data["vae"], data["ldm"], [1, 2], "ddim", 2, repeats=1)
    assert list(t["batch_size"]) == [1, 2]
    assert (t["denoise_s_per_sample"] > 0).all() and (t["decode_s_per_sample"] > 0).all()
    assert (t["total_s_per_sample"] >= t["denoise_s_per_sample"]).all()


def test_r2_helpers_against_hand_computation():
    y, p = [1.0, 2.0, 3.0, 4.0], [1.1, 1.9, 3.2, 3.8]
    # SS_res = 0.01 + 0.01 + 0.04 + 0.04 = 0.10, SS_tot = 5 → R² = 0.98
    assert r2_score(y, p) == pytest.approx(0.98)
    yc, pc = np.array(y) - 2.5, np.array(p) - 2.5
    r = (yc * pc).sum() / np.sqrt((yc**2).sum() * (pc**2).sum())
    assert pearson_r2(y, p) == pytest.approx(r**2)
    assert r2_score(y, [4.0, 3.0, 2.0, 1.0]) == pytest.approx(1 - 20 / 5)  # can be < 0
    t = r2_table(pd.DataFrame({"a": y + [np.nan]}), pd.DataFrame({"a": p + [5.0]}))
    assert t.loc[0, "n"] == 4
    assert t.loc[0, "mae"] == pytest.approx(0.15)
    assert t.loc[0, "r2"] == pytest.approx(0.98)
    with pytest.raises(ValueError):
        r2_table(pd.DataFrame({"a": y}), pd.DataFrame({"a": p[:2]}))


def test_measure_volumes_calls_the_descriptor_engine(monkeypatch):
    vol = np.zeros(SHAPE, np.uint8)
    vol[:, :, 8:] = 1  # acceptor half
    vol[:, :, 12:] = 2  # mixed quarter
    calls = []
    real = ev.graspi_descriptors

    def spy(v, **kw):
        calls.append(v.shape)
        return real(v, **kw)

    monkeypatch.setattr(ev, "graspi_descriptors", spy)
    m = measure_volumes([vol, vol], n_phases=3)
    assert len(calls) == 2
    assert m.loc[0, "vol_frac_D"] == pytest.approx(0.5)
    assert m.loc[0, "vol_frac_A"] == pytest.approx(0.25)
    assert m.loc[0, "vol_frac_M"] == pytest.approx(0.25)
    # straight columns along the electrode axis: every connected voxel has tortuosity 1
    assert m.loc[0, "CT_f_D_tort1"] == pytest.approx(1.0)
