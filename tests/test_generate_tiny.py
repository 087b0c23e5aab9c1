"""Tiny offline SD3 base, fine-tuning, checkpoints/resume, reload and sampling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import (
    SCHEMA,
    TOY_CONDITION,
    TOY_FINETUNE_SPLITS,
    pretrain_toy_base,
    write_toy_prepared,
)

REPO = Path(__file__).resolve().parents[1]
RES = 32
COND = TOY_CONDITION
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "PYTHONPATH": str(REPO / "workflow"),
    "OMP_NUM_THREADS": "1",
}


@pytest.fixture(scope="module")
def data(tmp_path_factory, schema):
    """Eight 40-px images with varied conditions, six in train."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("gen")
    return write_toy_prepared(root, schema, TOY_FINETUNE_SPLITS)


@pytest.fixture(scope="module")
def base(data):
    return pretrain_toy_base(data, RES)


def _ft(base, data, out, **kw):
    from microgen.generate.finetune import fine_tune

    args = dict(
        max_steps=2,
        resolution=RES,
        batch_size=2,
        learning_rate=1e-3,
        text_encoder_lr=1e-3,
        rank=2,
        mixed_precision="no",
        device="cpu",
    )
    args.update(kw)
    return fine_tune(base, data / "data", data / "split.csv", SCHEMA, out, **args)


def test_bpe_merges_the_most_frequent_pair_ties_by_text():
    """Sennrich et al.'s corpus, worked by hand: e+s and s+t</w> tie at 9 (e s first), then
    es+t</w> 9, l+o 7, then e+w and n+e tie at 6 (e w first), then n+ew and ew+est</w>
    tie at 6 (ew est</w> first)."""
    from microgen.generate.tiny import _train_bpe

    words = ["low"] * 5 + ["lower"] * 2 + ["newest"] * 6 + ["widest"] * 3
    vocab, merges = _train_bpe(words, sorted(set("lowernstid")), ["<s>"], 11 + 5)
    assert merges == [("e", "s"), ("es", "t</w>"), ("l", "o"), ("e", "w"), ("ew", "est</w>")]
    assert list(vocab)[:1] == ["<s>"] and "new" not in vocab
    assert {"t</w>", "e</w>", "est</w>", "ewest</w>"} <= set(vocab)


def test_tokenizers_encode_numbers_they_never_saw():
    from microgen.generate.tiny import build_tokenizers

    clip, t5 = build_tokenizers(["spheroidite, 800 °C, 90 minutes"], vocab_size=300)
    text = "network, 3437× magnification, 650 °C"
    assert clip.unk_token_id not in clip(text).input_ids[1:-1]  # byte-level: nothing unknown
    decoded = clip.decode(clip(text).input_ids, skip_special_tokens=True)
    assert decoded.replace(" ", "") == text.lower().replace(" ", "")  # CLIP spaces each word
    ascii_text = "Widmanstatten, 3437x, 650 C, 5100 min"
    assert t5.unk_token_id not in t5(ascii_text).input_ids


def _digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file; wall-time fields (``*seconds``) are left out first."""
    import hashlib

    def content(f: Path) -> bytes:
        if f.suffix == ".csv":
            table = pd.read_csv(f)
            return table.drop(columns=[c for c in table if "seconds" in c]).to_csv().encode()
        if f.name == "microgen_base.json":
            info = json.loads(f.read_text())
            return json.dumps({k: v for k, v in info.items() if "seconds" not in k}).encode()
        return f.read_bytes()

    return {
        str(f.relative_to(folder)): hashlib.sha256(content(f)).hexdigest()
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    }


def test_tiny_base_is_byte_identical_across_processes(data, tmp_path):
    """Same data and settings, two fresh processes (different hash seeds): the same
    tokenizer ids and the same bytes in every file of the saved base."""
    code = (
        "import sys, torch; torch.set_num_threads(1)\n"
        "from microgen.generate.tiny import pretrain_tiny_base\n"
        f"pretrain_tiny_base({str(data / 'data')!r}, {str(data / 'split.csv')!r}, sys.argv[1],"
        f" resolution={RES}, steps=2, vae_steps=2, batch_size=2)\n"
    )
    for name, seed in (("a", "1"), ("b", "2")):
        res = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / name)],
            env={**ENV, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert res.returncode == 0, res.stderr[-2000:]
    a, b = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) > 5
    assert [k for k in a if a[k] != b[k]] == []


def test_adaln_zero_starts_every_block_as_the_identity_and_still_learns():
    """DiT's adaLN-Zero: the untrained transformer predicts exactly zero velocity and each
    block returns its input; one optimiser step moves the gates off zero, after which the
    blocks contribute (the modulation is not a dead end of the gradient)."""
    from microgen.generate.tiny import TinyConfig, build_tiny_pipeline, zero_init_modulation

    torch.manual_seed(0)
    pipe = build_tiny_pipeline(["a micrograph of steel"], RES, config=TinyConfig())
    net = pipe.transformer
    x = torch.randn(2, 4, RES // 4, RES // 4)
    context = torch.randn(2, 5, TinyConfig().t5_width)
    pooled = torch.randn(2, TinyConfig().clip_l_width + TinyConfig().clip_g_width)
    t = torch.tensor([300.0, 700.0])

    def run(**kw):
        return net(hidden_states=x, encoder_hidden_states=context, pooled_projections=pooled,
                   timestep=t, return_dict=False, **kw)[0]  # fmt: skip

    assert run().abs().max() > 0  # diffusers' initialisation: blocks act at step 0
    zero_init_modulation(net)
    assert torch.equal(run(), torch.zeros_like(x))
    block = net.transformer_blocks[1]
    tokens = torch.randn(2, (RES // 8) ** 2, net.inner_dim)
    text = torch.randn(2, 5, net.inner_dim)
    temb = torch.randn(2, net.inner_dim)
    text_out, tokens_out = block(tokens, text, temb)
    assert torch.equal(tokens_out, tokens) and torch.equal(text_out, text)

    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    run().sub(torch.randn_like(x)).pow(2).mean().backward()
    opt.step()
    opt.zero_grad()
    run().sub(torch.randn_like(x)).pow(2).mean().backward()
    opt.step()
    assert block.norm1.linear.weight.abs().max() > 0
    assert not torch.equal(block(tokens, text, temb)[1], tokens)


def test_adaln_zero_is_refused_for_the_sdxl_base():
    from microgen.generate.tiny import pretrain_tiny_base

    with pytest.raises(ValueError, match="adaln_zero"):
        pretrain_tiny_base("no-data", "no-split.csv", "no-out", family="sdxl", adaln_zero=True)


def test_tiny_base_reloads_offline(base):
    code = (
        "import torch; torch.set_num_threads(1)\n"
        "from diffusers import StableDiffusion3Pipeline\n"
        f"p = StableDiffusion3Pipeline.from_pretrained({str(base)!r})\n"
        f"o = p('pearlite', num_inference_steps=2, height={RES}, width={RES}, "
        "output_type='np', max_sequence_length=32)\n"
        "print('SHAPE', o.images.shape)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"SHAPE ({1}, {RES}, {RES}, 1)" in out.stdout
    info = json.loads((base / "microgen_base.json").read_text())
    assert info["max_sequence_length"] == 32


def test_gradients_reach_every_group_and_frozen_stay(base, data, tmp_path):
    seen: dict[int, dict] = {}
    frozen: dict[str, dict] = {}

    def frozen_state(pipe):
        out = {}
        for name in ("transformer", "text_encoder", "text_encoder_2", "text_encoder_3", "vae"):
            for k, v in getattr(pipe, name).named_parameters():
                if "lora_" not in k and not v.is_meta:  # released: T5, VAE
                    out[f"{name}.{k}"] = v.detach().clone()
        return out

    def callback(step, state):
        pipe, cond = state["pipe"], state["conditioner"]
        grads = {}
        for name, module in (
            ("transformer", pipe.transformer),
            ("clip_l", pipe.text_encoder),
            ("clip_g", pipe.text_encoder_2),
        ):
            for kind in ("lora_A", "lora_B"):
                gs = [p.grad for k, p in module.named_parameters() if kind in k]
                assert gs and all(g is not None for g in gs), (name, kind)
                grads[f"{name}.{kind}"] = max(float(g.abs().max()) for g in gs)
            # all adapted module kinds present
            names = {k for k, _ in module.named_parameters() if "lora_A" in k}
            targets = (
                [
                    "to_q",
                    "to_k",
                    "to_v",
                    "to_out.0",
                    "add_q_proj",
                    "add_k_proj",
                    "add_v_proj",
                    "to_add_out",
                    "attn2.to_q",
                ]
                if name == "transformer"
                else ["q_proj", "k_proj", "v_proj", "out_proj"]
            )
            for t in targets:
                assert any(f".{t}." in k for k in names), (name, t)
        for k, p in cond.named_parameters():
            grads[f"conditioner.{k}"] = float(p.grad.abs().max()) if p.grad is not None else 0.0
        seen[step] = grads
        if step == 1:
            frozen["before"] = frozen_state(pipe)
        frozen["after"] = frozen_state(pipe)

    _ft(base, data, tmp_path / "ft", max_steps=3, step_callback=callback)
    # LoRA B starts at zero, so A gets gradients from step 2 on
    for key, value in seen[2].items():
        if key.startswith("conditioner.tables"):
            continue  # only the rows of categories in the batch
        assert value > 0, key
    tables = [k for k in seen[2] if k.startswith("conditioner.tables")]
    assert tables and all(max(seen[s][k] for s in seen) > 0 for k in tables)
    before, after = frozen["before"], frozen["after"]
    assert before.keys() == after.keys() and len(before) > 50
    # frozen after two optimiser steps (the last snapshot is taken before step 3's update)
    for k in before:
        assert torch.equal(before[k], after[k]), k
    table = pd.read_csv(tmp_path / "ft" / "parameters.csv")
    row = table.set_index("component")
    assert row.loc["T5", "trainable"] == 0 and row.loc["VAE", "trainable"] == 0
    assert row.loc["Parameter encoder (categorical + continuous)", "percent"] == 100
    # Base and added parameters apart: the base's counts are those of the untouched base.
    from diffusers import StableDiffusion3Pipeline

    from microgen.data.schema import load_schema

    plain = StableDiffusion3Pipeline.from_pretrained(base)
    n_placeholders = len(load_schema(SCHEMA).placeholders)
    for name, module in (("CLIP-L", plain.text_encoder), ("CLIP-G", plain.text_encoder_2),
                         ("MM-DiT (transformer + LoRA)", plain.transformer)):  # fmt: skip
        assert row.loc[name, "pretrained"] == sum(p.numel() for p in module.parameters())
        # Added: the LoRA (trained) and, in CLIP, the placeholder token rows (frozen).
        rows = n_placeholders * module.config.hidden_size if name.startswith("CLIP") else 0
        assert row.loc[name, "added"] == row.loc[name, "trainable"] + rows
        assert row.loc[name, "trainable"] > 0
    assert (row["total"] == row["pretrained"] + row["added"]).all()
    assert row.loc["Overall", "added"] == row.drop("Overall")["added"].sum()


def test_a_killed_fine_tune_resumes_to_the_same_adapters(base, data, tmp_path):
    import hashlib

    def sha(path):
        return hashlib.sha256(path.read_bytes()).hexdigest()

    def crash(step, _):
        if step == 3:  # after the checkpoint of step 2, inside step 3
            raise KeyboardInterrupt

    outputs = ("pytorch_lora_weights.safetensors", "train_log.csv", "parameters.csv")
    straight = _ft(base, data, tmp_path / "straight", max_steps=4, checkpoint_every=2)
    resumed = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        _ft(base, data, resumed, max_steps=4, checkpoint_every=2, step_callback=crash)
    assert [p.name for p in (resumed / "checkpoints").glob("step-*")] == ["step-0000002"]
    for name in outputs:  # what the workflow deletes before it reruns a failed job
        (resumed / name).unlink(missing_ok=True)
    _ft(base, data, resumed, max_steps=4, checkpoint_every=2)
    a = pd.read_csv(straight / "train_log.csv")
    b = pd.read_csv(resumed / "train_log.csv")
    assert list(b["step"]) == [1, 2, 3, 4]
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-6)
    lora = "pytorch_lora_weights.safetensors"
    assert sha(straight / lora) == sha(resumed / lora)
    # finished: one checkpoint, without the optimiser state
    assert [p.name for p in (resumed / "checkpoints").glob("step-*")] == ["step-0000004"]
    assert not (resumed / "checkpoints" / "step-0000004" / "training_state.json").exists()
    # a rerun of the finished job (a code change) writes the same outputs again
    for name in outputs:
        (resumed / name).unlink()
    _ft(base, data, resumed, max_steps=4, checkpoint_every=2)
    assert sha(straight / lora) == sha(resumed / lora)
    assert list(pd.read_csv(resumed / "train_log.csv")["step"]) == [1, 2, 3, 4]


def test_save_reload_fresh_process_identical_images(base, data, tmp_path):
    from microgen.generate.pipeline import generate_images, load_parameter_aware_pipeline

    out = _ft(
        base,
        data,
        tmp_path / "ft",
        max_steps=2,
        lora_alpha=4.0,
        prior_preservation=True,
        num_class_images=2,
        class_inference_steps=2,
    )
    assert len(list((out / "class_images").glob("*.png"))) == 2
    pipe, text = load_parameter_aware_pipeline(base, out, device="cpu")
    assert pipe.transformer.peft_config["default_0"].lora_alpha == 4.0
    conds = [COND, {**COND, "temperature": 970}]
    here = generate_images(
        pipe, conds, "full_text", [3, 3], steps=2, guidance=2.0, height=RES, width=RES, batch_size=2
    )
    code = (
        "import torch, numpy as np; torch.set_num_threads(1)\n"
        "from microgen.generate.pipeline import load_parameter_aware_pipeline, generate_images\n"
        f"pipe, _ = load_parameter_aware_pipeline({str(base)!r}, {str(out)!r}, device='cpu')\n"
        f"ims = generate_images(pipe, {conds!r}, 'full_text', [3, 3], steps=2, guidance=2.0, "
        f"height={RES}, width={RES}, batch_size=2)\n"
        f"np.save({str(tmp_path / 'ims.npy')!r}, np.stack(ims))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-2000:]
    there = np.load(tmp_path / "ims.npy")
    assert np.array_equal(np.stack(here), there)
    assert here[0].dtype == np.uint8 and here[0].shape == (RES, RES)
    # same seed, different temperature: the conditioner changes the image
    assert not np.array_equal(here[0], here[1])


def test_stock_loader_restores_every_trained_lora_weight(base, data, tmp_path):
    """The saved LoRA (denoiser and both CLIP encoders, injected with peft) loads through
    diffusers' own ``load_lora_weights``: every saved tensor arrives unchanged."""
    from diffusers import StableDiffusion3Pipeline
    from safetensors.torch import load_file

    from microgen.generate.adapters import LORA_WEIGHTS

    out = _ft(base, data, tmp_path / "ft", max_steps=2)
    saved = load_file(str(out / LORA_WEIGHTS))
    with open(out / LORA_WEIGHTS, "rb") as fh:  # the header, so equal tensors give equal bytes
        header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))["__metadata__"]
    adapters = json.loads(header["lora_adapter_metadata"])
    for part in ("transformer", "text_encoder", "text_encoder_2"):
        modules = adapters[f"{part}.target_modules"]
        assert modules == sorted(modules), part
    for part in ("transformer", "text_encoder", "text_encoder_2"):
        assert any(k.startswith(f"{part}.") for k in saved), part
    pipe = StableDiffusion3Pipeline.from_pretrained(str(base))
    pipe.load_lora_weights(str(out), weight_name=LORA_WEIGHTS)
    for part in ("transformer", "text_encoder", "text_encoder_2"):
        loaded = {
            name.replace(".default_0", ""): p
            for name, p in getattr(pipe, part).named_parameters()
            if "lora_" in name
        }
        keys = [k for k in saved if k.startswith(f"{part}.")]
        assert len(loaded) == len(keys), part
        for key in keys:
            name = key[len(part) + 1 :]
            match = [n for n in loaded if n == name or n.endswith("." + name) or name.endswith(n)]
            assert len(match) == 1, key
            assert torch.equal(loaded[match[0]].detach().float(), saved[key].float()), key


def test_sample_conditions_to_dir(base, data, tmp_path):
    from microgen.generate.pipeline import sample_conditions_to_dir

    out = _ft(base, data, tmp_path / "ft", max_steps=1)
    pd.DataFrame([COND]).to_csv(tmp_path / "conds.csv", index=False)
    table = sample_conditions_to_dir(
        base,
        out,
        tmp_path / "conds.csv",
        tmp_path / "samples",
        prompt_modes=("full_text", "parameter_only"),
        n_per_condition=2,
        seed=5,
        steps=2,
        resolution=RES,
    )
    assert len(table) == 4
    assert set(table["seed"]) == {5, 6}
    assert (tmp_path / "samples" / "parameter_only" / "800C-90M-1964x-Q-S" / "6.png").is_file()
    assert {"prompt_mode", "label", "temperature", "cooling", "seed", "path"} <= set(table)


def test_missing_base_fails_early(data, tmp_path, monkeypatch):
    from microgen.generate.finetune import fine_tune

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="stabilityai/stable-diffusion-3.5-large"):
        fine_tune(
            "stabilityai/stable-diffusion-3.5-large",
            data / "data",
            data / "split.csv",
            SCHEMA,
            tmp_path / "x",
            max_steps=1,
            device="cpu",
        )
    with pytest.raises(FileNotFoundError, match="local path"):
        fine_tune(
            tmp_path / "nothing",
            data / "data",
            data / "split.csv",
            SCHEMA,
            tmp_path / "y",
            max_steps=1,
            device="cpu",
        )


def test_max_sequence_length_reaches_training_and_sampling(base, data, tmp_path):
    """``max_sequence_length`` sets the T5 part of the prompt sequence (the paper's Eq. 7:
    77 CLIP + 77 T5 tokens at SD3.5 scale): the model records it and its sampler uses it."""
    from microgen.generate.pipeline import load_parameter_aware_pipeline

    lengths = {}
    for name, kw in (("own", {}), ("short", {"max_sequence_length": 8})):
        out = _ft(base, data, tmp_path / name, max_steps=1, **kw)
        saved = json.loads((out / "finetune_config.json").read_text())
        _, text = load_parameter_aware_pipeline(base, out, device="cpu")
        with torch.no_grad():
            embeds, _ = text.encode(["pearlite <micro>"], [COND], device="cpu")
        lengths[name] = (saved["max_sequence_length"], embeds.shape[1])
    assert lengths["own"][0] == 32  # the tiny base's own length
    assert lengths["short"][0] == 8
    assert lengths["own"][1] - lengths["short"][1] == 32 - 8


def test_t5_is_released_and_never_called_while_training(base, data, tmp_path, monkeypatch):
    """Once the T5 embeddings are cached, T5's weights leave memory (the meta device) and no
    training step (instance or class prompt) runs it again."""
    import microgen.generate.finetune as ft

    events = []
    release = ft.release_cached_encoders

    def release_and_watch(pipe, **kw):
        freed = release(pipe, **kw)
        events.append("released")
        pipe.text_encoder_3.register_forward_pre_hook(lambda *_: events.append("T5 called"))
        return freed

    def device_of_t5(step, state):
        events.append(next(state["pipe"].text_encoder_3.parameters()).device.type)

    monkeypatch.setattr(ft, "release_cached_encoders", release_and_watch)
    _ft(
        base, data, tmp_path / "ft", max_steps=2, prior_preservation=True, num_class_images=2,
        class_inference_steps=2, step_callback=device_of_t5,
    )  # fmt: skip
    assert events == ["released", "meta", "meta"]


def _lora_grads(store):
    """A step callback that keeps a copy of every LoRA gradient of the denoiser."""

    def keep(step, state):
        net = state["pipe"].transformer
        store[step] = {n: p.grad.clone() for n, p in net.named_parameters()
                       if "lora" in n and p.grad is not None}  # fmt: skip

    return keep


def test_gradient_accumulation_is_the_mean_of_its_batches(base, data, tmp_path):
    """One step accumulating two batches has the mean gradient of two single-batch steps that
    draw the same batches (learning rates 0, so the weights do not move between them)."""
    frozen = dict(learning_rate=0.0, text_encoder_lr=0.0, conditioner_lr=0.0, batch_size=1)
    accumulated, single = {}, {}
    _ft(base, data, tmp_path / "a", max_steps=1, gradient_accumulation_steps=2,
        step_callback=_lora_grads(accumulated), **frozen)  # fmt: skip
    _ft(base, data, tmp_path / "b", max_steps=2, step_callback=_lora_grads(single), **frozen)
    assert accumulated[1]
    for name, grad in accumulated[1].items():
        torch.testing.assert_close(grad, (single[1][name] + single[2][name]) / 2)
    losses = [pd.read_csv(tmp_path / d / "train_log.csv")["loss"] for d in ("a", "b")]
    assert losses[0][0] == pytest.approx(losses[1].mean(), rel=1e-5)


def test_schedule_follows_diffusers_and_resumes(base, data, tmp_path):
    """Cosine with one warm-up step over four steps: lr 0, 1, 1/2 (1+cos(pi/3)), 1/2
    (1+cos(2pi/3)) times the base rate, logged per step; a run killed after its step-2
    checkpoint resumes on the same schedule (same log, same adapters)."""
    settings = dict(max_steps=4, checkpoint_every=2, lr_scheduler="cosine", lr_warmup_steps=1,
                    gradient_accumulation_steps=2)  # fmt: skip
    straight = _ft(base, data, tmp_path / "straight", **settings)
    log = pd.read_csv(straight / "train_log.csv")
    expected = [0.0, 1.0, 0.5 * (1 + np.cos(np.pi / 3)), 0.5 * (1 + np.cos(2 * np.pi / 3))]
    np.testing.assert_allclose(log["lr"], 1e-3 * np.array(expected), atol=1e-12)

    def crash(step, _):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _ft(base, data, tmp_path / "resumed", step_callback=crash, **settings)
    resumed = _ft(base, data, tmp_path / "resumed", **settings)
    pd.testing.assert_frame_equal(
        log.drop(columns="seconds"), pd.read_csv(resumed / "train_log.csv").drop(columns="seconds")
    )
    lora = "pytorch_lora_weights.safetensors"
    assert (straight / lora).read_bytes() == (resumed / lora).read_bytes()
