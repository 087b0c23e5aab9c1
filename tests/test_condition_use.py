"""Condition use: paired denoising losses with conditions removed or changed."""

import numpy as np
import pytest
import torch
from conftest import TOY_COMBOS

from microgen.evaluate.condition_use import (
    REQUESTED,
    UNCONDITIONAL,
    changed_values,
    condition_variants,
    paired_losses,
    summarise,
)
from microgen.generate.pipeline import ParameterAwareText
from microgen.generate.tiny import TinyConfig, build_tiny_pipeline

VARIABLES = ["temperature", "time", "magnification", "cooling", "microconstituent"]
CONDITIONS = [dict(zip(VARIABLES, combo, strict=True)) for combo in TOY_COMBOS] * 2


def test_a_changed_value_always_differs_and_comes_from_the_choices():
    rng = np.random.default_rng(0)
    values = [800, 970, 800, 700] * 25
    new = changed_values(values, [700, 800, 970], rng)
    assert all(a != b for a, b in zip(values, new, strict=True))
    assert set(new) == {700, 800, 970}
    with pytest.raises(ValueError, match="no value other than 800"):
        changed_values([800], [800], rng)


def test_each_variant_changes_exactly_its_own_variable():
    train_values = {v: sorted({c[v] for c in CONDITIONS}, key=str) for v in VARIABLES}
    variants = condition_variants(CONDITIONS, VARIABLES, train_values, seed=3)
    assert variants[REQUESTED] == CONDITIONS and variants[UNCONDITIONAL] is None
    for name in VARIABLES:
        changed = variants[f"{name} changed"]
        for old, new in zip(CONDITIONS, changed, strict=True):
            assert new[name] != old[name]
            assert {k: v for k, v in new.items() if k != name} == {
                k: v for k, v in old.items() if k != name
            }


def test_summary_is_the_paired_increase_in_percent():
    requested = np.array([1.0, 2.0, 3.0])
    table = summarise({REQUESTED: requested, "x": requested + 0.2, "y": requested * 1.1})
    x = table.set_index("variant")
    assert x.loc["x", "increase_pct"] == pytest.approx(10.0)  # 0.2 of a mean loss of 2
    assert x.loc["x", "increase_se_pct"] == pytest.approx(0.0, abs=1e-12)
    assert x.loc["y", "increase_pct"] == pytest.approx(10.0)
    assert x.loc["y", "increase_se_pct"] == pytest.approx(5.0 / np.sqrt(3))  # diffs 5, 10, 15 %


@pytest.fixture(scope="module")
def tiny(schema):
    texts = [schema.prompt(c, "text_only") for c in CONDITIONS]
    pipe = build_tiny_pipeline(texts, 32, seed=0, config=TinyConfig())
    torch.manual_seed(0)
    latents = torch.randn(len(CONDITIONS), 4, 8, 8)
    text = ParameterAwareText(pipe, schema, None, None, 32)
    train_values = {v: sorted({c[v] for c in CONDITIONS}, key=str) for v in VARIABLES}
    return pipe, text, latents, condition_variants(CONDITIONS, VARIABLES, train_values)


def test_a_model_that_reads_its_prompt_shows_every_variant(tiny):
    pipe, text, latents, variants = tiny
    losses = paired_losses(pipe, text, latents, variants, "text_only", draws=2, batch_size=3)
    again = paired_losses(pipe, text, latents, variants, "text_only", draws=2, batch_size=3)
    for name in variants:
        np.testing.assert_array_equal(losses[name], again[name])  # the draws are shared
        if name != REQUESTED:
            assert np.abs(losses[name] - losses[REQUESTED]).max() > 1e-6, name


def test_a_model_blind_to_text_shows_no_use_of_any_condition(tiny):
    pipe, text, latents, variants = tiny
    transformer = pipe.transformer
    saved = {k: v.clone() for k, v in transformer.state_dict().items()}
    try:
        # Cut both text paths of SD3: the context tokens and the pooled embedding.
        with torch.no_grad():
            for module in (transformer.context_embedder,
                           transformer.time_text_embed.text_embedder):  # fmt: skip
                for p in module.parameters():
                    p.zero_()
        losses = paired_losses(pipe, text, latents, variants, "text_only", draws=2, batch_size=3)
    finally:
        transformer.load_state_dict(saved)
    for name in variants:
        np.testing.assert_array_equal(losses[name], losses[REQUESTED])
    assert (summarise(losses)["increase_pct"] == 0).all()
