"""U-Net + ECA model: the ECA formula, where it sits, shapes, and save/load symmetry."""

from __future__ import annotations

import json

import pytest
import torch

from microgen.segment.model import (
    ECA,
    Segmenter,
    SegmenterConfig,
    build_segmenter,
    from_pretrained,
)

torch.set_num_threads(1)
SMALL = dict(decoder_channels=(64, 32, 32, 16, 16), classes=4)


def test_eca_matches_hand_computation():
    torch.manual_seed(0)
    eca = ECA(5)
    x = torch.randn(2, 7, 4, 3)
    w = eca.conv.weight.detach()[0, 0]  # (5,)
    gap = x.mean(dim=(2, 3))  # (2, 7)
    padded = torch.nn.functional.pad(gap, (2, 2))
    expected_att = torch.zeros_like(gap)
    for n in range(2):
        for c in range(7):
            expected_att[n, c] = sum(w[j] * padded[n, c + j] for j in range(5))
    expected = x * torch.sigmoid(expected_att)[:, :, None, None]
    assert eca.conv.bias is None
    torch.testing.assert_close(eca(x), expected, rtol=1e-6, atol=1e-6)
    # the weights really are per channel, not a constant scale
    assert not torch.allclose(eca(x) / x, (eca(x) / x)[:, :1])


@pytest.mark.parametrize("encoder", ["vgg16", "resnet101"])
def test_skips_are_taken_after_eca(encoder):
    torch.manual_seed(0)
    model = build_segmenter(SegmenterConfig(encoder=encoder, **SMALL)).eval()
    assert len(model.eca) == 5
    eca_out = {}
    for i, eca in enumerate(model.eca):
        eca.register_forward_hook(lambda m, inp, out, i=i: eca_out.__setitem__(i, out))
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        feats = model.encoder((x - 0.449) / 0.226)
    for i, idx in enumerate(model.eca_feature_index):
        assert feats[idx] is eca_out[i], f"feature {idx} is not the output of ECA {i}"
    # and the next stage consumes the reweighted map: zeroing ECA 0's attention changes the
    # next stage (it would not if ECA only touched the returned skip).
    with torch.no_grad():
        model.eca[0].conv.weight.fill_(-1e4)  # sigmoid -> ~0 for positive features
        feats2 = model.encoder((x - 0.449) / 0.226)
    nxt = model.eca_feature_index[1]
    before, after = feats[nxt], feats2[nxt]
    assert (after - before).abs().max() > 0.5 * before.abs().max()


def test_output_shape_and_eca_switch():
    x = torch.rand(2, 1, 64, 96)
    m = build_segmenter(SegmenterConfig(**SMALL)).eval()
    assert m(x).shape == (2, 4, 64, 96)
    assert sum(isinstance(mod, ECA) for mod in m.modules()) == 5
    plain = build_segmenter(SegmenterConfig(eca=False, **SMALL)).eval()
    assert plain(x).shape == (2, 4, 64, 96)
    assert not any(isinstance(mod, ECA) for mod in plain.modules())
    assert not any(mod._forward_hooks for mod in plain.encoder.modules())
    with pytest.raises(ValueError):
        m(torch.rand(1, 1, 50, 64))


def test_default_config_matches_paper():
    c = SegmenterConfig(classes=4)
    assert (c.encoder, c.eca, c.eca_kernel) == ("vgg16", True, 5)
    assert c.decoder_channels == (256, 128, 64, 32, 16) and c.groups == 8 and c.dropout == 0.3
    m = build_segmenter(c)
    gn = [mod for mod in m.decoder.modules() if isinstance(mod, torch.nn.GroupNorm)]
    assert len(gn) == 10 and all(g.num_groups == 8 for g in gn)
    with pytest.raises(ValueError):
        SegmenterConfig(encoder="alexnet", classes=4)


def test_the_number_of_classes_is_the_data_s_not_a_default():
    with pytest.raises(TypeError, match="classes"):
        SegmenterConfig()
    with pytest.raises(ValueError, match="at least 2 classes"):
        SegmenterConfig(classes=1)
    model = build_segmenter(SegmenterConfig(**{**SMALL, "classes": 7})).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 1, 64, 64)).shape == (1, 7, 64, 64)


def test_save_from_pretrained_round_trip(tmp_path):
    torch.manual_seed(1)
    m = build_segmenter(SegmenterConfig(**SMALL)).eval()
    m.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    assert json.loads((tmp_path / "m" / "config.json").read_text())["encoder"] == "vgg16"
    m2 = from_pretrained(tmp_path / "m")
    assert isinstance(m2, Segmenter) and not m2.training
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(m(x), m2(x), rtol=0, atol=0)
    # a freshly initialised model differs, so the comparison above means something
    torch.manual_seed(2)
    m3 = build_segmenter(SegmenterConfig(**SMALL)).eval()
    with torch.no_grad():
        assert not torch.allclose(m(x), m3(x))
