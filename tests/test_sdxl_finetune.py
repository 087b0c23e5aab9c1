"""SDXL variants of Table B4 on a tiny SDXL built in code: conditioning, training, reload."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SCHEMA, TOY_CONDITION, write_toy_prepared

RES = 32
COND = TOY_CONDITION


@pytest.fixture(scope="module")
def data(tmp_path_factory, schema):
    """Six 40-px train images at three conditions and a tiny SDXL base saved to disk."""
    torch.set_num_threads(1)
    root = write_toy_prepared(tmp_path_factory.mktemp("sdxl"), schema, ["train"] * 6, 3)
    from microgen.generate.tiny import build_tiny_sdxl_pipeline

    meta = pd.read_csv(root / "data" / "metadata.csv")
    texts = meta["prompt_full_text"].tolist() + meta["prompt_text_only"].tolist()
    build_tiny_sdxl_pipeline(texts, RES, seed=0).save_pretrained(root / "base")
    return root


def _ft(data, out, **kw):
    from microgen.generate.finetune import fine_tune

    args = dict(
        family="sdxl",
        max_steps=2,
        resolution=RES,
        batch_size=2,
        learning_rate=1e-2,
        text_encoder_lr=1e-2,
        rank=2,
        num_class_images=2,
        class_inference_steps=2,
        mixed_precision="no",
        device="cpu",
    )
    args.update(kw)
    return fine_tune(data / "base", data / "data", data / "split.csv", SCHEMA, out, **args)


@pytest.fixture(scope="module")
def dora(data):
    """DreamBooth + DoRA, two steps; the callback records gradients, magnitudes and the
    live pipeline (which holds the final weights once fine_tune returns)."""
    record: dict = {"steps": {}}

    def callback(step, state):
        pipe, cond = state["pipe"], state["conditioner"]
        grads = {}
        for name, module in (
            ("unet", pipe.unet),
            ("clip_l", pipe.text_encoder),
            ("clip_g", pipe.text_encoder_2),
        ):
            for kind in ("lora_A", "lora_B", "lora_magnitude_vector"):
                grads[f"{name}.{kind}"] = max(
                    float(p.grad.abs().max())
                    for n, p in module.named_parameters()
                    if kind in n and p.grad is not None
                )
        grads["conditioner"] = max(float(p.grad.abs().max()) for p in cond.parameters())
        magnitudes = {
            n: p.detach().clone()
            for n, p in pipe.unet.named_parameters()
            if "lora_magnitude_vector" in n
        }
        frozen = {
            f"{m}.{n}": p.detach().clone()
            for m in ("unet", "text_encoder", "text_encoder_2", "vae")
            for n, p in getattr(pipe, m).named_parameters()
            if "lora_" not in n and not p.is_meta  # the VAE is released once its cache is full
        }
        record["steps"][step] = {"grads": grads, "magnitudes": magnitudes, "frozen": frozen}
        record["live"] = state

    out = _ft(
        data,
        data / "dora",
        prior_preservation=True,
        use_dora=True,
        step_callback=callback,
    )
    return out, record


def _positions(tokenizer, prompt: str, placeholders) -> list[int]:
    ids = tokenizer(prompt, padding="max_length", max_length=77).input_ids
    return sorted(ids.index(tokenizer.convert_tokens_to_ids(p)) for p in placeholders)


def test_temperature_changes_the_continuous_placeholders_and_the_pooled_vector(data, dora):
    """One continuous MLP output fills every continuous placeholder (paper eq. 3), so a new
    temperature moves exactly the <temp>, <time> and <mag> token rows in both streams."""
    from microgen.generate.pipeline import load_parameter_aware_pipeline

    pipe, text = load_parameter_aware_pipeline(data / "base", dora[0], device="cpu")
    captured: dict[str, list[torch.Tensor]] = {"clip_l": [], "clip_g": []}
    # Registered after the injectors, so these hooks see the injected token embeddings.
    for enc, module in (("clip_l", pipe.text_encoder), ("clip_g", pipe.text_encoder_2)):
        module.get_input_embeddings().register_forward_hook(
            lambda m, a, o, enc=enc: captured[enc].append(o.detach().clone())
        )
    hot = {**COND, "temperature": 970}
    prompt = text.prompts([COND], "full_text")[0]
    with torch.no_grad():
        e_cold, p_cold = text.encode([prompt], [COND])
        e_hot, p_hot = text.encode([prompt], [hot])
    d_l = pipe.text_encoder.config.hidden_size
    assert e_cold.shape[-1] == d_l + pipe.text_encoder_2.config.hidden_size
    assert p_cold.shape[-1] == pipe.text_encoder_2.config.projection_dim
    continuous = ["<temp>", "<time>", "<mag>"]
    for enc, tokenizer, part in (
        ("clip_l", pipe.tokenizer, slice(0, d_l)),
        ("clip_g", pipe.tokenizer_2, slice(d_l, None)),
    ):
        positions = _positions(tokenizer, prompt, continuous)
        tokens_cold, tokens_hot = captured[enc]
        changed = (tokens_cold - tokens_hot).abs().amax(-1)[0] > 0
        assert changed.nonzero().flatten().tolist() == positions, enc
        # CLIP attends causally: the penultimate states before the first placeholder are
        # untouched, the placeholders' own states move.
        diff = (e_cold[0, :, part] - e_hot[0, :, part]).abs().amax(-1)
        assert float(diff[: positions[0]].max()) == 0.0, enc
        assert float(diff[positions].min()) > 1e-4, enc
    assert not torch.allclose(p_cold, p_hot)


def test_one_step_trains_adapters_dora_magnitudes_and_conditioner_only(data, dora):
    from diffusers import StableDiffusionXLPipeline

    steps = dora[1]["steps"]
    # lora_B starts at zero, so lora_A first receives gradient at step 2.
    for step in (1, 2):
        for name, value in steps[step]["grads"].items():
            if step == 2 or "lora_A" not in name:
                assert value > 0, f"no gradient reaches {name} at step {step}"
    # DoRA: the magnitude vectors are trained, not just carried.
    moved = [
        float((steps[2]["magnitudes"][n] - m).abs().max())
        for n, m in steps[1]["magnitudes"].items()
    ]
    assert len(moved) > 0 and max(moved) > 0
    # Nothing outside the adapters moved between the two steps, and nothing differs from the
    # saved base except the appended (zero, never used) placeholder rows.
    for k, v in steps[1]["frozen"].items():
        assert torch.equal(v, steps[2]["frozen"][k]), k
    base = StableDiffusionXLPipeline.from_pretrained(data / "base", add_watermarker=False)
    for m in ("unet", "text_encoder", "text_encoder_2", "vae"):
        reference = getattr(base, m).state_dict()
        for n, v in steps[2]["frozen"].items():
            if not n.startswith(f"{m}."):
                continue
            key = n[len(m) + 1 :].replace(".base_layer", "")
            ref = reference[key]
            assert torch.equal(v[: len(ref)], ref), n


def test_reload_reproduces_the_trained_model(data, dora):
    from diffusers import AutoencoderKL

    from microgen.generate.pipeline import generate_images, load_parameter_aware_pipeline

    live = dora[1]["live"]
    # Training released the (frozen) VAE once the latents were cached: decode with the base's.
    live["pipe"].vae = AutoencoderKL.from_pretrained(data / "base", subfolder="vae")
    for module in (live["pipe"].unet, live["pipe"].text_encoder, live["pipe"].text_encoder_2):
        module.eval()
    live["conditioner"].eval()
    kwargs = dict(steps=3, guidance=2.0, height=RES, width=RES)
    conditions = [COND, {**COND, "temperature": 970}]
    trained = generate_images(
        live["pipe"], conditions, "full_text", [0, 0], text=live["text"], **kwargs
    )
    pipe, text = load_parameter_aware_pipeline(data / "base", dora[0], device="cpu")
    again = generate_images(pipe, conditions, "full_text", [0, 0], **kwargs)
    other_seed = generate_images(pipe, conditions[:1], "full_text", [1], **kwargs)
    for a, b in zip(trained, again, strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(again[0], other_seed[0])


def test_lora_only_uses_no_class_images(data, dora, monkeypatch):
    from microgen.generate import finetune

    batches: list[int] = []
    loss = finetune.epsilon_loss

    def counting(unet, latents, *args, **kwargs):
        batches.append(len(latents))
        return loss(unet, latents, *args, **kwargs)

    monkeypatch.setattr(finetune, "epsilon_loss", counting)
    out = _ft(data, data / "lora", prior_preservation=False, train_text_encoder=False)
    assert batches == [2, 2]  # instance images only
    assert not (out / "class_images").exists()
    params = pd.read_csv(out / "parameters.csv").set_index("component")
    assert params.loc[["CLIP-L", "CLIP-G"], "trainable"].tolist() == [0, 0]
    assert params.loc["U-Net (unet + LoRA)", "trainable"] > 0
    assert "T5" not in params.index
    config = json.loads((out / "finetune_config.json").read_text())
    assert config["family"] == "sdxl" and not config["prior_preservation"]

    # DreamBooth doubles each batch with class images made by the base.
    batches.clear()
    _ft(data, data / "db", prior_preservation=True)
    assert batches == [4, 4]
    assert len(list((dora[0] / "class_images").glob("*.png"))) == 2


def test_missing_sdxl_base_fails_early_with_the_manual_route(data, tmp_path):
    from microgen.generate.finetune import fine_tune

    with pytest.raises(FileNotFoundError, match="stable-diffusion-xl-base-1.0"):
        fine_tune(
            tmp_path / "no-such-model",
            data / "data",
            data / "split.csv",
            SCHEMA,
            tmp_path / "out",
            family="sdxl",
        )
