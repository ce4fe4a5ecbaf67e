"""Fast paths against slow, obvious references: whitening, augmentation, EMA."""
import copy

import numpy as np
import pytest
import torch

from speedrun import TrainConfig
from speedrun.ema import EMA
from speedrun.model import Net
from speedrun.train import augment_batch, draw_augmentation
from speedrun.whiten import chunk_average_filters, chunk_eigen, patch_covariance, pooled_filters, whitening_filters


def naive_patches(images: np.ndarray) -> np.ndarray:
    rows = []
    for img in images:
        for i in range(img.shape[1] - 1):
            for j in range(img.shape[2] - 1):
                rows.append(img[:, i:i + 2, j:j + 2].reshape(-1))
    return np.array(rows)


def test_patch_covariance_matches_numpy():
    images = torch.randn(7, 3, 9, 9) * torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1)
    expected = np.cov(naive_patches(images.numpy().astype(np.float64)), rowvar=False)
    got = patch_covariance(images, chunk=3).numpy()  # chunks of 3 images: accumulation across chunks
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)


def test_whitened_patches_have_predicted_covariance():
    """Filter k = v_k / sqrt(lambda_k + eps) makes output covariance diag(lambda / (lambda + eps))."""
    torch.manual_seed(0)
    mix = torch.randn(3, 3)
    images = torch.einsum("ij,njhw->nihw", mix, torch.randn(40, 3, 12, 12))
    images = images + 0.5 * torch.roll(images, 1, dims=-1)  # spatial correlation
    filters = whitening_filters(images, eps=1e-2, chunk=16)
    assert filters.shape == (12, 3, 2, 2)
    out = torch.nn.functional.conv2d(images, filters).permute(0, 2, 3, 1).reshape(-1, 12).double()
    cov = torch.cov(out.T)
    eig = torch.linalg.eigvalsh(patch_covariance(images)).flip(0)
    torch.testing.assert_close(cov, torch.diag(eig / (eig + 1e-2)), atol=1e-4, rtol=1e-4)


def _mixed_images(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    mix = torch.randn(3, 3, generator=gen)
    images = torch.einsum("ij,njhw->nihw", mix, torch.randn(n, 3, 12, 12, generator=gen))
    return images + 0.5 * torch.roll(images, 1, dims=-1)


def test_chunk_average_is_the_mean_of_per_chunk_decompositions():
    """The seed's algorithm against a plain loop: numpy covariance and eigh per chunk (a short last chunk
    weighing as much as a full one), then the mean. eigh fixes a vector only up to sign, and the seed averages
    whatever signs it returns, so numpy's vectors are oriented as torch's eigh returned them per chunk."""
    images = _mixed_images(50)
    values, vectors = [], []
    for start in range(0, 50, 16):  # 16, 16, 16, 2 images
        part = images[start:start + 16]
        lam, vec = np.linalg.eigh(np.cov(naive_patches(part.numpy().astype(np.float64)), rowvar=False))
        rows = vec[:, ::-1].T
        torch_rows = chunk_eigen(part)[1].double().numpy()
        values.append(lam[::-1])
        vectors.append(rows * np.sign((rows * torch_rows).sum(1, keepdims=True)))
    lam, vec = np.mean(values, axis=0), np.mean(vectors, axis=0)
    expected = (vec / np.sqrt(lam + 1e-2)[:, None]).reshape(12, 3, 2, 2)
    got = chunk_average_filters(images, eps=1e-2, chunk=16).double().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


def test_one_chunk_gives_the_pooled_filters():
    images = _mixed_images(40)
    pooled = pooled_filters(images).flatten(1).double()
    one = chunk_average_filters(images, chunk=40).flatten(1).double()
    cos = (pooled * one).sum(1).abs() / (pooled.norm(dim=1) * one.norm(dim=1))
    assert cos.min() > 1 - 1e-6
    torch.testing.assert_close(one.norm(dim=1), pooled.norm(dim=1), rtol=1e-4, atol=0)


def test_chunk_order_comes_from_the_seed():
    images = _mixed_images(60)
    a = whitening_filters(images, chunk=16, method="chunk_average", seed=1)
    assert torch.equal(a, whitening_filters(images, chunk=16, method="chunk_average", seed=1))
    assert not torch.equal(a, whitening_filters(images, chunk=16, method="chunk_average", seed=2))
    assert torch.equal(whitening_filters(images, chunk=16, seed=1), whitening_filters(images, chunk=16, seed=2)), \
        "pooled does not depend on the order"


def test_crop_offsets_quirk():
    cfg = TrainConfig()
    gen = torch.Generator().manual_seed(0)
    perm, dy, dx, flip = draw_augmentation(50_000, cfg, gen)
    assert sorted(perm.tolist()) == list(range(50_000))
    assert dy.min() == 0 and dy.max() == 5 and dx.min() == 0 and dx.max() == 5, "reference offsets are 0..5"
    assert 0.48 < flip.float().mean() < 0.52
    _, dy, _, _ = draw_augmentation(50_000, cfg.replace(crop_quirk=False), gen)
    assert dy.max() == 6


def test_augment_batch_matches_slicing():
    torch.manual_seed(0)
    padded = torch.randn(20, 3, 38, 38)
    idx = torch.randperm(20)[:8]
    dy, dx = torch.randint(0, 6, (8,)), torch.randint(0, 6, (8,))
    flip = torch.rand(8) < 0.5
    got = augment_batch(padded, idx, dy, dx, flip)
    for k in range(8):
        crop = padded[idx[k], :, dy[k]:dy[k] + 32, dx[k]:dx[k] + 32]
        expected = crop.flip(-1) if flip[k] else crop
        torch.testing.assert_close(got[k], expected, rtol=0, atol=0)


def _perturb(net):
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
        for name, buf in net.named_buffers():
            if buf.is_floating_point():
                buf.add_(torch.rand_like(buf))
            else:
                buf.add_(1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_ema_rounds_exactly_as_the_seed(dtype):
    """The seed's NetworkEMA.update, entry by entry: ema.mul_(d).add_(live.mul(1 - d)) on fp16/fp32 entries
    only; bit for bit in fp32 and fp16. Integer entries keep their value from the copy."""
    torch.manual_seed(0)
    net = Net(TrainConfig(width=4)).to(dtype)
    ema = EMA(net)
    reference = copy.deepcopy(net.state_dict())
    decay = 0.986 ** 2
    for _ in range(5):
        _perturb(net)
        ema.update(decay)
        with torch.no_grad():
            for key, live in net.state_dict().items():
                if live.dtype in (torch.half, torch.float):
                    reference[key].mul_(decay).add_(live.detach().mul(1.0 - decay))
    for key, value in ema.net.state_dict().items():
        torch.testing.assert_close(value, reference[key], rtol=0, atol=0, msg=key)
    assert ema.updates == 5
    assert not any(p.requires_grad for p in ema.net.parameters())
    counters = [v for k, v in ema.net.state_dict().items() if k.endswith("num_batches_tracked")]
    assert counters and all(int(c) == 0 for c in counters), "integer entries are not blended"


def test_ema_is_not_a_lerp_in_fp16():
    """The two roundings matter: one lerp gives different fp16 values (this is what the test above guards)."""
    torch.manual_seed(0)
    ema, live = torch.randn(10_000).half(), torch.randn(10_000).half()
    d = 0.986 ** 2
    seed_way = ema.clone().mul_(d).add_(live.mul(1 - d))
    lerp_way = torch.lerp(ema, live, 1 - d)
    assert not torch.equal(seed_way, lerp_way)


def test_a_run_can_whiten_as_the_seed():
    """whiten_method='chunk_average' trains, and its run_id differs from the pooled run's."""
    from speedrun import run_id, train
    from tests.conftest import tiny_config

    cfg = tiny_config(whiten_method="chunk_average", whiten_chunk=128)  # 4 chunks of the 512 images
    record = train(cfg)
    assert record["status"] == "ok" and record["config"]["whiten_method"] == "chunk_average"
    assert record["run_id"] != run_id(cfg.replace(whiten_method="pooled"))
