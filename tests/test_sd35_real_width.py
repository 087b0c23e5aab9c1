"""SD3.5-Large at its real widths (random weights, two MM-DiT layers, two CLIP layers, one T5
layer, the 49 408-token CLIP vocabulary) through the project's fine-tuning, sampling and
loading, and reloaded by stock diffusers in a fresh process (issue 19, item 6).

The tiny base exercises the code paths at widths of 32-96; this base has every width and
vocabulary of the paper's model, so what depends on sizes (the placeholder ids above CLIP's
49 408 tokens and the legacy ``eos_token_id`` pooling, 2432-wide adapters, the 4096-wide
joint attention fed by 77 + 77 tokens, the 16-channel VAE's shift and scale, Table B3's
counting) runs at the sizes the paper ran.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO, SCHEMA, TOY_CONDITION, write_toy_prepared

from microgen.generate.finetune import TRANSFORMER_TARGETS, count_parameters
from microgen.generate.real_width import build_sd35_pipeline, sd35_configs

RES = 64  # 8 x 8 latents, 16 image tokens: the cost is in the weights, not the activations
SEED = 3
#: Two conditions of one seed that differ in temperature only.
CONDITIONS = [TOY_CONDITION, dict(TOY_CONDITION, temperature=970)]
PLAIN = "a micrograph of steel"  # a prompt without placeholders, which stock diffusers can read
#: Per component: the keyword of its depth in ``sd35_configs``, its depth here and in
#: SD3.5-Large, its Table B3 row.
DEPTHS = {
    "transformer": ("transformer_layers", 2, 38, "MM-DiT (transformer + LoRA)"),
    "text_encoder": ("clip_layers", 2, 12, "CLIP-L"),
    "text_encoder_2": ("clip_layers", 2, 32, "CLIP-G"),
    "text_encoder_3": ("t5_layers", 1, 24, "T5"),
}
SETTINGS = dict(prompt_mode="full_text", max_steps=2, batch_size=1, resolution=RES,
                mixed_precision="no", seed=0)  # fmt: skip
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "workflow")}


@dataclass(frozen=True)
class Base:
    """The saved real-width base and what was measured on its modules before saving."""

    path: Path
    counts: dict[str, int]  # parameters per component
    tokens: dict[str, int]  # tokenizer lengths
    rows: dict[str, int]  # embedding-table rows per text encoder


@pytest.fixture(scope="module")
def data(tmp_path_factory, schema):
    """Four 40-px training images over the four toy conditions."""
    return write_toy_prepared(tmp_path_factory.mktemp("realwidth"), schema, ["train"] * 4)


@pytest.fixture(scope="module")
def base(data, schema, tmp_path_factory) -> Iterator[Base]:
    """The real-width base saved as a diffusers folder (3.9 GB, removed after the module, as
    pytest keeps the temporary folders of its last three runs)."""
    metadata = pd.read_csv(data / "data" / "metadata.csv")
    texts = metadata["prompt_text_only"].tolist() + [
        schema.prompt(c, "text_only") for c in CONDITIONS
    ] + [PLAIN]  # fmt: skip
    pipe = build_sd35_pipeline(texts, "large", **{k: d for k, d, _, _ in DEPTHS.values()})
    path = tmp_path_factory.mktemp("sd35-large-2-layers") / "base"
    pipe.save_pretrained(path)
    names = ("transformer", "text_encoder", "text_encoder_2", "text_encoder_3", "vae")
    counts = {n: sum(p.numel() for p in getattr(pipe, n).parameters()) for n in names}
    tokens = {n: len(getattr(pipe, n)) for n in ("tokenizer", "tokenizer_2", "tokenizer_3")}
    rows = {n: getattr(pipe, n).get_input_embeddings().num_embeddings for n in names[1:4]}
    del pipe
    gc.collect()
    yield Base(path, counts, tokens, rows)
    shutil.rmtree(path)


@dataclass(frozen=True)
class Tuned:
    """The fine-tuned model folder and what the step callback saw."""

    path: Path
    initial: dict[str, dict[str, torch.Tensor]]  # trainable weights before the first update
    gradients: dict[str, float]  # gradient norm of each LoRA tensor at step 2


@pytest.fixture(scope="module")
def tuned(base, data, tmp_path_factory) -> Tuned:
    """Two steps of ``fine_tune``: LoRA on the MM-DiT and both CLIP encoders, the conditioner,
    full-text prompts."""
    from microgen.generate.adapters import lora_state
    from microgen.generate.finetune import fine_tune

    initial: dict[str, dict[str, torch.Tensor]] = {}
    gradients: dict[str, float] = {}

    def callback(step, state):
        pipe = state["pipe"]
        parts = {"transformer": pipe.transformer, "text_encoder": pipe.text_encoder,
                 "text_encoder_2": pipe.text_encoder_2}  # fmt: skip
        if step == 1:  # gradients present, weights not yet updated
            # lora_state's tensors are the parameters themselves on an fp32 CPU model
            initial.update({name: {k: v.clone() for k, v in lora_state(m).items()}
                            for name, m in parts.items()})  # fmt: skip
            initial["conditioner"] = {
                k: v.detach().clone() for k, v in state["conditioner"].state_dict().items()
            }
        if step == 2:  # lora_A has a gradient only once lora_B has left zero
            for name, m in parts.items():
                for k, p in m.named_parameters():
                    if "lora_" in k:
                        gradients[f"{name}.{k}"] = float(p.grad.norm())

    out = tmp_path_factory.mktemp("tuned") / "full_text"
    fine_tune(base.path, data / "data", data / "split.csv", SCHEMA, out, device="cpu",
              step_callback=callback, **SETTINGS)  # fmt: skip
    gc.collect()
    return Tuned(out, initial, gradients)


@dataclass(frozen=True)
class Sampled:
    """What the project's loader and sampler gave."""

    images: list[np.ndarray]
    inputs: Path  # safetensors of the fixed inputs handed to the stock reload
    velocity: torch.Tensor  # the project-loaded MM-DiT on the fixed input
    velocity_without_lora: torch.Tensor
    plain: tuple[torch.Tensor, torch.Tensor]  # (embeds, pooled) of PLAIN
    info: dict


@pytest.fixture(scope="module")
def sampled(base, tuned, tmp_path_factory) -> Sampled:
    """The project's loader and sampler on the fine-tuned model, and the tensors the stock
    reload is compared on (the pipeline is freed before the stock process starts)."""
    from safetensors.torch import save_file

    from microgen.generate.pipeline import generate_images, load_parameter_aware_pipeline

    pipe, text = load_parameter_aware_pipeline(base.path, tuned.path, device="cpu")
    images = generate_images(pipe, CONDITIONS, "full_text", [SEED, SEED], steps=2,
                             guidance=2.0, height=RES, width=RES, batch_size=2)  # fmt: skip
    prompts = text.prompts(CONDITIONS, "full_text")
    with torch.no_grad():
        embeds, pooled = text.encode(prompts, CONDITIONS, device="cpu")
        negative, negative_pooled = text.negative(len(prompts), device="cpu")
        plain = text.encode([PLAIN], device="cpu")
        gen = torch.Generator().manual_seed(0)
        latents = torch.randn(1, 16, RES // 8, RES // 8, generator=gen)
        timestep = torch.tensor([500.0])
        fixed = dict(hidden_states=latents, timestep=timestep, encoder_hidden_states=embeds[:1],
                     pooled_projections=pooled[:1], return_dict=False)  # fmt: skip
        velocity = pipe.transformer(**fixed)[0]
        pipe.transformer.disable_adapters()
        velocity_without_lora = pipe.transformer(**fixed)[0]
        pipe.transformer.enable_adapters()
        # CLIP-L's pooled output of a conditioned prompt, recomputed at its EOS token.
        tokenizer, encoder = pipe.tokenizer, pipe.text_encoder
        ids = tokenizer(prompts[:1], padding="max_length", max_length=77,
                        return_tensors="pt").input_ids  # fmt: skip
        values = text.conditioner(CONDITIONS[:1])["clip_l"]
        with text.injectors["clip_l"].active(values):
            out = encoder(ids, output_hidden_states=True)
        eos = int((ids[0] == tokenizer.eos_token_id).nonzero()[0])
        placeholder_ids = text.injectors["clip_l"].placeholder_ids
        at_eos = encoder.text_projection(out.last_hidden_state[0, eos])
    inputs = tmp_path_factory.mktemp("stock") / "inputs.safetensors"
    tensors = dict(latents=latents, timestep=timestep, embeds=embeds, pooled=pooled,
                   negative=negative, negative_pooled=negative_pooled)  # fmt: skip
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(inputs))
    info = {
        "tokens": len(tokenizer),
        "rows": encoder.get_input_embeddings().num_embeddings,
        "placeholder_ids": {e: inj.placeholder_ids for e, inj in text.injectors.items()},
        "eos_token_id": int(encoder.config.eos_token_id),
        "pooled_at_eos": bool(torch.allclose(out.text_embeds[0], at_eos, atol=1e-5)),
        "last_placeholder": int(torch.isin(ids[0], torch.tensor(placeholder_ids)).nonzero().max()),
        "eos_position": eos,
        "max_sequence_length": text.max_sequence_length,
        "embeds_shape": list(embeds.shape),
    }
    del pipe, text, encoder
    gc.collect()
    return Sampled(images, inputs, velocity, velocity_without_lora, plain, info)


# --------------------------------------------------------------------------------- the base


def test_the_base_has_sd35_large_widths_and_vocabularies(base):
    """Every published width, CLIP's 49 408 tokens in tokenizer and table, T5's 32 100
    tokens in a 32 128-row table; the saved folder is a diffusers SD3 pipeline."""
    from diffusers import SD3Transformer2DModel

    index = json.loads((base.path / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusion3Pipeline"
    assert index["tokenizer"] == ["transformers", "CLIPTokenizer"]
    config = SD3Transformer2DModel.load_config(base.path / "transformer")
    expected = dict(attention_head_dim=64, num_attention_heads=38, joint_attention_dim=4096,
                    pooled_projection_dim=2048, caption_projection_dim=2432, in_channels=16,
                    patch_size=2, pos_embed_max_size=192, qk_norm="rms_norm",
                    num_layers=2)  # fmt: skip
    assert {k: config[k] for k in expected} == expected
    vae = json.loads((base.path / "vae" / "config.json").read_text())
    assert vae["latent_channels"] == 16 and vae["block_out_channels"] == [128, 256, 512, 512]
    assert (vae["scaling_factor"], vae["shift_factor"]) == (1.5305, 0.0609)
    clip_l = json.loads((base.path / "text_encoder" / "config.json").read_text())
    clip_g = json.loads((base.path / "text_encoder_2" / "config.json").read_text())
    t5 = json.loads((base.path / "text_encoder_3" / "config.json").read_text())
    assert (clip_l["hidden_size"], clip_l["projection_dim"]) == (768, 768)
    # the published configs' legacy ids: pooling at argmax(input_ids), fine until tokens are added
    assert clip_l["eos_token_id"] == clip_g["eos_token_id"] == 2
    assert (clip_g["hidden_size"], clip_g["projection_dim"]) == (1280, 1280)
    assert clip_l["projection_dim"] + clip_g["projection_dim"] == config["pooled_projection_dim"]
    assert (t5["d_model"], t5["d_ff"], t5["num_heads"], t5["d_kv"]) == (4096, 10240, 64, 64)
    assert t5["d_model"] == config["joint_attention_dim"]
    assert base.tokens == {"tokenizer": 49408, "tokenizer_2": 49408, "tokenizer_3": 32100}
    assert base.rows == {"text_encoder": 49408, "text_encoder_2": 49408, "text_encoder_3": 32128}


def test_full_size_tokenizers_have_the_stock_layout_and_read_prompts_as_words(schema):
    """CLIP's special ids (49 406, 49 407; the second tokenizer pads with ``!`` = 0), T5's
    (pad 0, eos 1, unk 2, sentinels after the 32 000 pieces); words of the training texts
    are single tokens although 48 000 filler merges rank after them; two builds agree."""
    from microgen.generate.tiny import build_full_size_tokenizers

    texts = [schema.prompt(c, "text_only") for c in CONDITIONS]
    clip, clip_2, t5 = build_full_size_tokenizers(texts)
    assert (clip.bos_token_id, clip.eos_token_id, clip.pad_token_id) == (49406, 49407, 49407)
    assert (clip_2.pad_token, clip_2.pad_token_id) == ("!", 0)
    assert (t5.pad_token_id, t5.eos_token_id, t5.unk_token_id) == (0, 1, 2)
    assert t5.convert_tokens_to_ids("<extra_id_0>") >= 32000
    assert clip.tokenize("spheroidite quenched") == ["spheroidite</w>", "quenched</w>"]
    assert t5.tokenize("spheroidite, quenched") == ["▁spheroidite,", "▁quenched"]
    again = build_full_size_tokenizers(texts)
    assert clip.get_vocab() == again[0].get_vocab() and t5.get_vocab() == again[2].get_vocab()
    assert clip("an unseen wordy prompt").input_ids == again[0]("an unseen wordy prompt").input_ids


def test_the_base_counts_table_b3_once_its_depth_is_restored(base):
    """Each component's parameters, counted on the real modules here, plus the missing
    layers (one layer's count from the same configs on the meta device) are SD3.5-Large's
    as Table B3 prints them: the real-width base differs from the paper's in depth only."""
    from microgen.generate.paper_values import TABLE_B3
    from microgen.generate.parameter_counts import build_components

    for name, (keyword, depth, full, row) in DEPTHS.items():
        counts = [
            count_parameters(build_components({name: sd35_configs(**{keyword: d})[name]})[name])[0]
            for d in (depth, depth + 1)
        ]
        assert counts[0] == base.counts[name]  # the meta count of this depth is the real one
        total = base.counts[name] + (full - depth) * (counts[1] - counts[0])
        paper = TABLE_B3[row].get("pretrained", TABLE_B3[row]["total"])  # CLIP: without LoRA
        tolerance = 0.05 if name == "transformer" else 0.5  # printed to 0.1 M, the rest to 1 M
        assert abs(total / 1e6 - paper) < tolerance, (row, total / 1e6, paper)
    assert abs(base.counts["vae"] / 1e6 - TABLE_B3["VAE"]["total"]) < 0.05


# ------------------------------------------------------------------------------ fine-tuning


def test_two_steps_train_every_adapter_and_the_conditioner(tuned):
    """Both losses finite; after two steps every LoRA tensor (A and B, of all eight MM-DiT
    targets and both CLIP encoders) and the conditioner differ from their initial values,
    and at step 2 every LoRA tensor had a non-zero gradient, except the last block's
    ``add_q_proj``: that block is ``context_pre_only``, so the queries of the text tokens
    feed an output it discards (the same dead adapter sits in SD3.5-Large's 38th block)."""
    from safetensors.torch import load_file

    from microgen.generate.adapters import LORA_WEIGHTS

    log = pd.read_csv(tuned.path / "train_log.csv")
    assert log["step"].tolist() == [1, 2] and np.isfinite(log["loss"]).all()
    dead = "transformer_blocks.1.attn.add_q_proj."
    zero = {k for k, g in tuned.gradients.items() if g == 0}
    assert zero == {k for k in tuned.gradients if dead in k} and len(zero) == 2
    assert all(np.isfinite(g) for g in tuned.gradients.values())
    saved = load_file(str(tuned.path / LORA_WEIGHTS))
    for part in ("transformer", "text_encoder", "text_encoder_2"):
        initial = tuned.initial[part]
        keys = [k for k in saved if k.startswith(f"{part}.")]
        assert len(keys) == len(initial) > 0, part
        for key in keys:
            name = key[len(part) + 1 :]
            match = [n for n in initial if n == name or n.endswith("." + name)]
            assert len(match) == 1, key
            assert saved[key].shape == initial[match[0]].shape
            trained = not torch.equal(saved[key], initial[match[0]])
            assert trained != (dead in key), key
    # All eight attention projections, to_add_out only in the first block (the last one is
    # context_pre_only).
    adapted = {k.split(".attn.")[1].split(".lora_")[0] for k in saved if ".attn." in k}
    assert adapted == set(TRANSFORMER_TARGETS)
    assert not any(k.startswith("transformer.transformer_blocks.1.attn.to_add_out") for k in saved)
    lora_b = saved["transformer.transformer_blocks.0.attn.to_q.lora_B.weight"]
    assert lora_b.shape == (2432, 4)  # the adapters are at the real width
    from microgen.conditioning.conditioner import ParameterConditioner

    conditioner = ParameterConditioner.from_pretrained(tuned.path).state_dict()
    initial = tuned.initial["conditioner"]
    changed = [k for k, v in conditioner.items() if not torch.equal(v, initial[k])]
    assert changed and any("clip_g" in k for k in changed) and any("clip_l" in k for k in changed)


def test_the_fine_tunes_parameter_table_is_table_b3s_count_of_its_base(base, tuned, schema):
    """``parameters.csv``, counted on the modules being trained (T5 and the VAE already
    released to the meta device), equals the Table B3 rule's count of the same base and
    settings from the saved folder's configs on the meta device, and the base's own counts."""
    from microgen.generate.parameter_counts import fine_tune_parameters, read_component_configs

    trained = pd.read_csv(tuned.path / "parameters.csv")
    counted = fine_tune_parameters(read_component_configs(base.path), SETTINGS, schema)
    columns = ["component", "pretrained", "added", "total", "trainable"]
    pd.testing.assert_frame_equal(trained[columns], counted[columns], check_dtype=False)
    rows = trained.set_index("component")
    assert rows.loc["CLIP-L", "pretrained"] == base.counts["text_encoder"]
    assert rows.loc["MM-DiT (transformer + LoRA)", "pretrained"] == base.counts["transformer"]
    # released to meta, T5's tied token table (132 M here as in T5-XXL) is counted once
    assert rows.loc["T5", "pretrained"] == base.counts["text_encoder_3"]
    assert rows.loc["CLIP-L", "added"] - rows.loc["CLIP-L", "trainable"] == 5 * 768
    # rank 4 on 8 + 7 projections (the last block has no to_add_out), each 2432 -> 2432
    assert rows.loc["MM-DiT (transformer + LoRA)", "added"] == 15 * 4 * (2432 + 2432)


# -------------------------------------------------------------------------------- sampling


def test_project_sampling_draws_condition_dependent_images(sampled):
    """Two guided steps per image at 64 px: gray uint8 images that are not flat, and the
    temperature alone (same seed) changes the image; the placeholders took ids above CLIP's
    49 408 tokens and the pooled output is still read at the EOS token."""
    a, b = sampled.images
    assert a.dtype == np.uint8 and a.shape == (RES, RES) and a.std() > 0
    assert not np.array_equal(a, b)
    info = sampled.info
    assert info["tokens"] == info["rows"] == 49408 + 5
    assert info["placeholder_ids"] == {"clip_l": list(range(49408, 49413)),
                                       "clip_g": list(range(49408, 49413))}  # fmt: skip
    # The published configs' eos_token_id 2 pools at argmax(ids): a placeholder here.
    assert info["eos_token_id"] == 49407 and info["pooled_at_eos"]
    assert info["last_placeholder"] < info["eos_position"]
    assert info["max_sequence_length"] == 77 and info["embeds_shape"] == [2, 154, 4096]


def test_stock_diffusers_reload_equals_the_project_loader(base, tuned, sampled, tmp_path):
    """A fresh process with stock diffusers (``from_pretrained`` + ``load_lora_weights``, no
    microgen) gives the project loader's MM-DiT output on a fixed input bit for bit (the
    LoRA's own effect is orders of magnitude larger), its CLIP-LoRA text embeddings of a
    plain prompt, and, fed the conditioner's embeddings, the project sampler's images."""
    from microgen.generate.adapters import LORA_WEIGHTS
    from microgen.generate.common import to_gray_uint8

    out = tmp_path / "stock.safetensors"
    code = f"""
import sys, torch
torch.set_num_threads({torch.get_num_threads()})
from diffusers import StableDiffusion3Pipeline
from safetensors.torch import load_file, save_file
base, model, inputs, out = sys.argv[1:]
pipe = StableDiffusion3Pipeline.from_pretrained(base)
pipe.load_lora_weights(model, weight_name={LORA_WEIGHTS!r})
x = load_file(inputs)
with torch.no_grad():
    v = pipe.transformer(hidden_states=x["latents"], timestep=x["timestep"],
                         encoder_hidden_states=x["embeds"][:1],
                         pooled_projections=x["pooled"][:1], return_dict=False)[0]
    e, _, p, _ = pipe.encode_prompt({PLAIN!r}, {PLAIN!r}, {PLAIN!r}, device="cpu",
                                    do_classifier_free_guidance=False, max_sequence_length=77)
    images = pipe(prompt_embeds=x["embeds"], pooled_prompt_embeds=x["pooled"],
                  negative_prompt_embeds=x["negative"],
                  negative_pooled_prompt_embeds=x["negative_pooled"],
                  num_inference_steps=2, guidance_scale=2.0, height={RES}, width={RES},
                  generator=[torch.Generator("cpu").manual_seed({SEED}) for _ in range(2)],
                  output_type="np").images
save_file(dict(velocity=v, embeds=e, pooled=p, images=torch.from_numpy(images)), out)
"""
    args = [str(base.path), str(tuned.path), str(sampled.inputs), str(out)]
    res = subprocess.run([sys.executable, "-c", code, *args], env=ENV, capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    from safetensors.torch import load_file

    stock = load_file(str(out))
    lora_effect = (sampled.velocity - sampled.velocity_without_lora).abs().max()
    # two steps at the paper's learning rate move the output by ~0.2 % of its range, a
    # thousand times float32 rounding: equality below is equality of the trained LoRA
    assert lora_effect > 1e-4 * sampled.velocity.abs().max()
    torch.testing.assert_close(stock["velocity"], sampled.velocity, rtol=0, atol=0)
    torch.testing.assert_close(stock["embeds"], sampled.plain[0], rtol=0, atol=0)
    torch.testing.assert_close(stock["pooled"], sampled.plain[1], rtol=0, atol=0)
    images = to_gray_uint8(stock["images"].numpy())
    assert all(np.array_equal(s, p) for s, p in zip(images, sampled.images, strict=True))
