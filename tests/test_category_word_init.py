"""Category vectors initialised from the words of the text-only prompts."""

import pandas as pd
import torch
from conftest import TOY_COMBOS

from microgen.conditioning.conditioner import ParameterConditioner
from microgen.conditioning.normalize import RobustNormalizer
from microgen.conditioning.tokens import PlaceholderInjector, add_placeholder_tokens
from microgen.generate.tiny import _tiny_clip, build_tokenizers

VARIABLES = ["temperature", "time", "magnification", "cooling", "microconstituent"]


def _setup(schema):
    rows = pd.DataFrame([dict(zip(VARIABLES, c, strict=True)) for c in TOY_COMBOS])
    tokenizer, _ = build_tokenizers(
        [schema.prompt(r, "text_only") for r in rows.to_dict("records")]
    )
    encoder = _tiny_clip(tokenizer, 32, "gelu", 2)
    ids = add_placeholder_tokens(tokenizer, encoder, schema.placeholders)
    conditioner = ParameterConditioner(schema, {"clip_l": 32}, RobustNormalizer.fit(schema, rows))
    conditioner.init_from_words({"clip_l": tokenizer}, {"clip_l": encoder})
    return rows, tokenizer, encoder, ids, conditioner


def test_each_row_is_the_mean_embedding_of_its_words(schema):
    _, tokenizer, encoder, _, conditioner = _setup(schema)
    rows = encoder.get_input_embeddings().weight
    for c in schema.categorical:
        table = conditioner.tables["clip_l"][c.name].weight
        for k, category in enumerate(c.categories):
            ids = tokenizer(c.text(category), add_special_tokens=False).input_ids
            torch.testing.assert_close(table[k], rows[ids].mean(0), rtol=0, atol=0)


def test_a_one_token_word_encodes_as_its_placeholder_does(schema):
    records, tokenizer, encoder, ids, conditioner = _setup(schema)
    micro = schema.variable("microconstituent")
    condition = records.to_dict("records")[0]
    word = micro.text(condition["microconstituent"])
    assert len(tokenizer(word, add_special_tokens=False).input_ids) == 1, word
    injector = PlaceholderInjector(encoder, ids)

    def encode(text):
        batch = tokenizer([text], padding="max_length", max_length=16, return_tensors="pt")
        return encoder(batch.input_ids).text_embeds

    with torch.no_grad(), injector.active(conditioner([condition])["clip_l"]):
        injected = encode(f"a {micro.placeholder} micrograph")
    with torch.no_grad():
        written = encode(f"a {word} micrograph")
    torch.testing.assert_close(injected, written, rtol=0, atol=0)
