"""Token-level replacement in the CLIP streams (paper eqs. 3-7) on the tiny SD3 base."""

from __future__ import annotations

import pytest
import torch
from conftest import TOY_CONDITION

from microgen.conditioning.conditioner import ParameterConditioner
from microgen.conditioning.encode import encode_prompts
from microgen.conditioning.normalize import RobustNormalizer
from microgen.conditioning.tokens import (
    PlaceholderInjector,
    add_placeholder_tokens,
    ensure_placeholders,
    tokenize,
)

COND = TOY_CONDITION


@pytest.fixture(scope="module")
def setup(schema):
    torch.set_num_threads(1)
    from microgen.generate.tiny import build_tiny_pipeline

    texts = [schema.prompt(COND, m) for m in ("full_text", "text_only")]
    pipe = build_tiny_pipeline(texts, resolution=32, seed=0)
    ids = {
        "clip_l": add_placeholder_tokens(pipe.tokenizer, pipe.text_encoder, schema.placeholders),
        "clip_g": add_placeholder_tokens(
            pipe.tokenizer_2, pipe.text_encoder_2, schema.placeholders
        ),
    }
    norm = RobustNormalizer.fit(
        schema,
        {
            "temperature": [700, 800, 900, 1000],
            "time": [5, 90, 1440, 5100],
            "magnification": [500, 1964, 4910, 10000],
        },
    )
    cond = ParameterConditioner(schema, {"clip_l": 32, "clip_g": 48}, norm)
    inj = {
        "clip_l": PlaceholderInjector(pipe.text_encoder, ids["clip_l"]),
        "clip_g": PlaceholderInjector(pipe.text_encoder_2, ids["clip_g"]),
    }
    return pipe, cond, inj, ids


def _embedding_outputs(pipe, inj, cond, prompt, condition):
    """Token-embedding-layer outputs (before position embeddings and layers) per encoder."""
    seen = {}
    handles = []
    for enc, te in (("clip_l", pipe.text_encoder), ("clip_g", pipe.text_encoder_2)):

        def grab(module, args, output, enc=enc):
            seen[enc] = output.detach().clone()

        # registered after the injector's hook, so it sees the replaced rows
        handles.append(te.get_input_embeddings().register_forward_hook(grab))
    with torch.no_grad():
        embeds, pooled = encode_prompts(
            pipe,
            [prompt],
            conditioner=cond,
            conditions=[condition],
            injectors=inj,
            max_sequence_length=16,
        )
    for h in handles:
        h.remove()
    return seen, embeds, pooled


def test_continuous_change_only_at_its_placeholders(setup, schema):
    pipe, cond, inj, ids = setup
    prompt = schema.prompt(COND, "full_text")
    a, ea, pa = _embedding_outputs(pipe, inj, cond, prompt, COND)
    b, eb, pb = _embedding_outputs(pipe, inj, cond, prompt, {**COND, "temperature": 970})
    tok_ids = tokenize(pipe.tokenizer, [prompt], schema.placeholders)[0]
    cont_ids = ids["clip_l"][: len(schema.continuous)]
    expected = torch.isin(tok_ids, torch.tensor(cont_ids))
    assert int(expected.sum()) == 3
    for enc in ("clip_l", "clip_g"):
        changed = (a[enc][0] != b[enc][0]).any(-1)
        assert torch.equal(changed, expected), enc
    assert not torch.allclose(pa[:, :32], pb[:, :32])  # pooled CLIP-L
    assert not torch.allclose(pa[:, 32:], pb[:, 32:])  # pooled CLIP-G
    # T5 part (after the 77 CLIP tokens) unchanged: T5 sees the same stripped text
    assert torch.equal(ea[:, 77:], eb[:, 77:])


def test_category_change_only_at_its_placeholder(setup, schema):
    pipe, cond, inj, ids = setup
    prompt = schema.prompt(COND, "full_text")
    a, _, _ = _embedding_outputs(pipe, inj, cond, prompt, COND)
    b, _, _ = _embedding_outputs(pipe, inj, cond, prompt, {**COND, "cooling": "FC"})
    tok_ids = tokenize(pipe.tokenizer, [prompt], schema.placeholders)[0]
    cool = schema.placeholders.index("<cool>")
    for enc in ("clip_l", "clip_g"):
        changed = (a[enc][0] != b[enc][0]).any(-1)
        assert torch.equal(changed, tok_ids == ids[enc][cool]), enc
        assert int(changed.sum()) == 1


def test_shapes_match_sd3(setup, schema):
    pipe, cond, inj, _ = setup
    prompt = schema.prompt(COND, "parameter_only")
    _, embeds, pooled = _embedding_outputs(pipe, inj, cond, prompt, COND)
    assert embeds.shape == (1, 77 + 16, pipe.transformer.config.joint_attention_dim)
    assert pooled.shape == (1, pipe.transformer.config.pooled_projection_dim)


def test_matches_stock_pipeline_without_placeholders(setup):
    pipe, *_ = setup
    with torch.no_grad():
        ours = encode_prompts(pipe, ["pearlite, 800 °C"], max_sequence_length=16)
        stock = pipe.encode_prompt(
            "pearlite, 800 °C",
            None,
            None,
            device="cpu",
            do_classifier_free_guidance=False,
            max_sequence_length=16,
        )
    assert torch.equal(ours[0], stock[0])
    assert torch.equal(ours[1], stock[2])


def test_pooling_at_eos_not_at_placeholder(setup):
    pipe, *_ = setup
    assert pipe.text_encoder.text_model.eos_token_id == pipe.tokenizer.eos_token_id
    assert pipe.text_encoder_2.config.eos_token_id == pipe.tokenizer_2.eos_token_id


def test_unknown_category_and_missing_values(setup, schema):
    pipe, cond, inj, _ = setup
    with pytest.raises(ValueError, match="cooling.*'XX'"):
        cond([{**COND, "cooling": "XX"}])
    with pytest.raises(ValueError, match="magnification"):
        cond([{k: v for k, v in COND.items() if k != "magnification"}])


def test_placeholders_added_when_absent_and_truncation_guard(setup, schema):
    pipe, cond, inj, _ = setup
    assert ensure_placeholders("pearlite <temp>", schema.placeholders) == (
        "pearlite <temp> <time> <mag> <cool> <micro>"
    )
    # a prompt without placeholders still gets conditioned (auto-added)
    a, _, _ = _embedding_outputs(pipe, inj, cond, "pearlite", COND)
    b, _, _ = _embedding_outputs(pipe, inj, cond, "pearlite", {**COND, "time": 5000})
    assert (a["clip_l"] != b["clip_l"]).any()
    long = " ".join(["steel"] * 90)
    with pytest.raises(ValueError, match="would be cut by truncation"):
        encode_prompts(
            pipe, [long], conditioner=cond, conditions=[COND], injectors=inj, max_sequence_length=16
        )
    # placeholders early in a long prompt survive
    encode_prompts(
        pipe,
        [schema.prompt(COND, "parameter_only") + " " + long],
        conditioner=cond,
        conditions=[COND],
        injectors=inj,
        max_sequence_length=16,
    )
    # placeholder ids without active conditioning are refused
    with pytest.raises(RuntimeError, match="no conditioner values"):
        encode_prompts(pipe, ["pearlite <temp>"], max_sequence_length=16)


def test_conditioner_save_load(setup, tmp_path):
    _, cond, _, _ = setup
    cond.save_pretrained(tmp_path)
    again = ParameterConditioner.from_pretrained(tmp_path)
    a, b = cond([COND]), again([COND])
    for enc in a:
        assert torch.equal(a[enc], b[enc])
    assert again.schema.placeholders == cond.schema.placeholders


def test_initial_vectors_start_at_the_token_rows_scale(setup, schema):
    """At step 0 a frozen CLIP must see placeholder vectors of its own rows' size: the default
    MLP's are several times larger, a 0.02-std table row far smaller."""
    from microgen.conditioning.tokens import token_row_norm

    pipe, _, _, ids = setup
    extremes = [(700, 500, "Q"), (900, 1964, "AR"), (1000, 10000, "FC")]
    conditions = [dict(COND, temperature=t, magnification=m, cooling=c) for t, m, c in extremes]
    cond = ParameterConditioner(schema, {"clip_l": 32, "clip_g": 48}, setup[1].normalizer)
    norms = {"clip_l": token_row_norm(pipe.text_encoder, ids["clip_l"]),
             "clip_g": token_row_norm(pipe.text_encoder_2, ids["clip_g"])}  # fmt: skip
    with torch.no_grad():
        before = {enc: v.norm(dim=-1) for enc, v in cond(conditions).items()}
    assert any(abs(float(b.mean()) / norms[enc] - 1) > 0.5 for enc, b in before.items())
    cond.match_token_scale(norms, conditions)
    n_cont = len(schema.continuous)
    with torch.no_grad():
        after = {enc: v.norm(dim=-1) for enc, v in cond(conditions).items()}
    for enc, target in norms.items():
        assert torch.isclose(after[enc][:, :n_cont].mean(), torch.tensor(target), rtol=1e-4)
        assert torch.allclose(after[enc][:, n_cont:], torch.tensor(target), rtol=1e-4)
    # the placeholders' zero rows are not counted: the mean is that of the real rows
    weight = pipe.text_encoder.get_input_embeddings().weight
    real = [i for i in range(weight.shape[0]) if i not in ids["clip_l"]]
    assert norms["clip_l"] == pytest.approx(float(weight[real].norm(dim=1).mean()))


def test_paper_conditioner_has_table_b3_parameter_count(schema):
    """Table B3: 26.9 M for the parameter encoder of SD3.5-Large (CLIP-L 768, CLIP-G 1280);
    the eq. 3 MLP with the hidden width of config/uhcs-sd35-large.yaml gives it."""
    import yaml
    from conftest import REPO

    cfg = yaml.safe_load((REPO / "config" / "uhcs-sd35-large.yaml").read_text())
    hidden = cfg["generate"]["models"]["sd35-large"]["conditioner_hidden"]
    norm = RobustNormalizer.fit(schema, {v.name: [1.0, 10.0] for v in schema.continuous})
    with torch.device("meta"):
        cond = ParameterConditioner(schema, {"clip_l": 768, "clip_g": 1280}, norm, hidden=hidden)
    count = sum(p.numel() for p in cond.parameters())
    assert round(count / 1e6, 1) == 26.9
