"""Oracles for behaviours that mutmut's run (issue 13) showed no test noticed.

Each test states a hand computation, a known value or an invariant; the survivors it kills
are named beside it (mutmut's names, in resnet_nb.probes / resnet_nb.data).
"""
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_nb import cifar_resnet, make_synthetic, readers, sources
from resnet_nb.data import CLASSES, DataError, load_cifar10, normalize
from resnet_nb.probes import (_local_minima, _loss_and_accuracy, gradient_correlation,
                              path_length_gradients, sampled_path_gradients,
                              with_batch_statistics)


# --- gradient_correlation: hand computations on f(x) = r . x^2 / 2 (gradient r * x) ----------

class _Square(nn.Module):
    """z(x) = x^2 / 2, flattened: df/dx = readout * x, by hand."""
    name = "square"

    def forward(self, x):
        return (x * x / 2).flatten(1)


class _Identity(nn.Module):                       # no `name`: the probe falls back on the class
    def forward(self, x):
        return x.flatten(1)


def _pearson_mean(grads, lag):
    return float(np.mean([np.corrcoef(grads[i], grads[i + lag])[0, 1]
                          for i in range(len(grads) - lag)]))


def test_gradient_correlation_equals_a_hand_computation_on_a_quadratic():
    # kills gradient_correlation 21, 22, 24, 25, 26 (the line x(t)), 72 (df/dt), 74, 75 (centring)
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(2, 3, 4, generator=g) + torch.tensor([[1.0], [-2.0]]).view(2, 1, 1)
    r = torch.randn(12, generator=g)
    points = 9
    res = gradient_correlation(_Square(), x0, x1, points, readout=r)
    ts = np.linspace(0, 1, points)
    a0, a1, rn = x0.double().flatten().numpy(), x1.double().flatten().numpy(), r.double().numpy()
    grads = [rn * ((1 - t) * a0 + t * a1) for t in ts]              # df/dx at x(t), by hand
    assert res.t == pytest.approx(tuple(ts), abs=1e-7)
    assert res.derivative == pytest.approx([float(gr @ (a1 - a0)) for gr in grads], rel=1e-5)
    assert res.lags == (1, 2, 4)
    assert res.correlation == pytest.approx([_pearson_mean(grads, l) for l in (1, 2, 4)],
                                            abs=1e-6)
    assert res.model_name == "square"                      # kills 115, 125, 131, 132


def test_gradient_correlation_default_readout_is_the_seeded_unit_vector():
    # f = readout . x: the gradient is the readout itself, at every point; kills 43, 45, 48, 50,
    # 51 (readout's shape), 54 (its norm), 58 (out / readout), 127, 133 (the fallback name)
    x0, x1 = torch.zeros(2, 2, 2), torch.ones(2, 2, 2)
    torch.manual_seed(12345)         # the readout must not come from torch's global generator
    res = gradient_correlation(_Identity(), x0, x1, points=5)
    r = torch.randn(8, generator=torch.Generator().manual_seed(0))
    r = r / r.norm()
    assert res.derivative == pytest.approx([float(r.sum())] * 5, rel=1e-5)
    assert res.correlation == pytest.approx([1.0, 1.0], abs=1e-9)
    assert res.model_name == "_Identity"


def test_gradient_correlation_lags_double_while_half_the_inputs_form_pairs():
    # points = 32: lag 16 would leave 16 of 32 inputs in pairs... 31 // 2 = 15 < 16; kills 100
    res = gradient_correlation(_Identity(), torch.zeros(4), torch.ones(4), points=32)
    assert res.lags == (1, 2, 4, 8)
    res = gradient_correlation(_Identity(), torch.zeros(4), torch.ones(4), points=33)
    assert res.lags == (1, 2, 4, 8, 16)


# --- sampled_path_gradients / path_length_gradients --------------------------------------------

def _resnet8_probe():
    data = make_synthetic(8, 10, seed=0)
    x, y = normalize(data.train.images), data.train.labels
    torch.manual_seed(0)
    model = cifar_resnet(8)
    for m in model.modules():               # give every block a residual branch that counts
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
    return with_batch_statistics(model, x), x, y


def test_sampled_paths_depend_on_the_seed_alone_and_keep_the_lengths_asked_for():
    # kills sampled_path_gradients 1 (default seed), 15, 21 (lengths), 22, 42, 44 (generator), 64
    model, x, y = _resnet8_probe()
    torch.manual_seed(1)
    a = sampled_path_gradients(model, x, y, samples=2, lengths=(1, 2))
    torch.manual_seed(2)
    b = sampled_path_gradients(model, x, y, samples=2, lengths=(1, 2), seed=0)
    assert a.lengths == (1, 2) and len(a.per_path) == 2
    assert a.per_path == b.per_path                # the paths come from `seed`, not torch's RNG
    c = sampled_path_gradients(model, x, y, samples=2, lengths=(1, 2), seed=1)
    assert c.per_path != a.per_path                # ... and another seed picks other paths
    assert a.model_name == model.name


def test_path_probes_leave_the_model_as_it_was():
    # _eval_copy 3: a shallow copy would put the caller's model in eval mode and freeze it
    model, x, y = _resnet8_probe()
    model.train()
    exact = path_length_gradients(model, x, y)
    assert model.training and all(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    assert exact.model_name == model.name and exact.images == 8   # path_length_gradients 8, 12


def test_with_batch_statistics_restores_the_default_momentum():
    # with_batch_statistics 7, 8: the copy trains on like any other model (momentum 0.1)
    model = cifar_resnet(8)
    probe = with_batch_statistics(model, torch.randn(4, 3, 32, 32))
    assert {m.momentum for m in probe.modules() if isinstance(m, nn.BatchNorm2d)} == {0.1}


# --- _loss_and_accuracy: the mean over images, in chunks, of a known linear model -------------

class _Fixed(nn.Module):
    def __init__(self, dtype=None):
        super().__init__()
        self.w = torch.randn(12, 10, generator=torch.Generator().manual_seed(3))
        self.dtype = dtype

    def forward(self, x):
        out = x.flatten(1) @ self.w
        return out.to(self.dtype) if self.dtype else out


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_loss_and_accuracy_is_the_mean_over_all_images(dtype):
    # kills _loss_and_accuracy 3, 21 (half-precision outputs), 22, 34, 35, 37, 40, 42
    g = torch.Generator().manual_seed(4)
    x = torch.randn(7, 3, 2, 2, generator=g)
    model = _Fixed(dtype)
    out = model(x).float()
    y = out.argmax(1)
    y[:3] = (y[:3] + 1) % 10                            # 4 of 7 right, by construction
    loss, acc = _loss_and_accuracy(model, x, y, F.cross_entropy, batch_size=3)
    assert loss == pytest.approx(float(F.cross_entropy(out, y)), rel=1e-5)
    assert acc == pytest.approx(4 / 7)


def test_local_minima_are_strict_and_look_along_rows_too():
    # _local_minima 17 (the row neighbours skipped), 26 (ties counted as minima)
    assert _local_minima(np.zeros((3, 3))) == 0
    z = np.array([[5.0, 5.0, 5.0], [0.0, 1.0, 0.5], [5.0, 5.0, 5.0]])
    assert _local_minima(z) == 2       # (1, 0) and (1, 2); (1, 1) is above its row neighbours


# --- data: torchvision batches and archives ---------------------------------------------------

def _batch(n=2, labels=None, data=None):
    rng = np.random.default_rng(0)
    return pickle.dumps({"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)
                         if data is None else data,
                         "labels": [1] * n if labels is None else labels})


def _tv_tar(path, extra=(), replace=None):
    """A torchvision archive: cifar-10-batches-py/ with its six batches and batches.meta."""
    files = {f"cifar-10-batches-py/{name}": _batch() for name in readers.TV_FILES[:-1]}
    files["cifar-10-batches-py/batches.meta"] = pickle.dumps({"label_names": list(CLASSES)})
    files.update(replace or {})
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in list(files.items()) + list(extra):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


@pytest.mark.parametrize("twice", ["data_batch_1", "batches.meta"])
def test_an_archive_holding_a_batch_twice_is_refused(tmp_path, twice):
    # _read_archive 36, 40, 41
    blob = (pickle.dumps({"label_names": list(CLASSES)}) if twice == "batches.meta"
            else _batch())
    archive = _tv_tar(tmp_path / "c.tar.gz", extra=[(f"copy/{twice}", blob)])
    with pytest.raises(DataError, match=f"holds {twice} twice"):
        load_cifar10(archive, cache_dir=tmp_path / "cache", verbose=False)


def test_a_bad_batch_in_an_archive_is_named(tmp_path):
    # _read_archive 55; _unpickle_batch 47, 51, 52 (the labels' check names "its labels")
    archive = _tv_tar(tmp_path / "c.tar.gz",
                      replace={"cifar-10-batches-py/data_batch_3": _batch(labels=[1, 10])})
    with pytest.raises(DataError, match=r"cifar-10-batches-py/data_batch_3 in .*its labels "
                                        r"are not all in 0\.\.9"):
        load_cifar10(archive, cache_dir=tmp_path / "cache", verbose=False)


@pytest.mark.parametrize("data, why", [
    (np.zeros((2, 3000), np.uint8), "uint8 array of shape \\(2, 3000\\)"),     # 18
    (np.zeros((2, 3072), np.float64), "float64 array of shape \\(2, 3072\\)"),  # 19
])
def test_batches_of_the_wrong_shape_or_type_are_refused(data, why):
    with pytest.raises(DataError, match=why):
        readers._unpickle_batch(io.BytesIO(_batch(data=data)), "data_batch_1")


def test_batch_labels_stored_as_a_small_integer_array_load_as_int64():
    # _unpickle_batch 12, 14: labels saved as an int32 / uint8 array (numpy's choice on Windows)
    for dt in (np.int32, np.uint8):
        batch = io.BytesIO(_batch(labels=np.array([3, 9], dt)))
        images, labels = readers._unpickle_batch(batch, "b")
        assert labels.dtype == torch.int64 and labels.tolist() == [3, 9]


def test_image_folders_keep_the_archive_order_within_a_class(tmp_path):
    # _read_archive 125, 127: sorted by class only, stably (names in reverse order stay so)
    from PIL import Image
    archive = tmp_path / "c.tar.gz"
    shades = {}
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            for ci, c in enumerate(reversed(CLASSES)):
                for i, name in enumerate(("b.png", "a.png")):
                    buf = io.BytesIO()
                    shade = 20 * ci + 10 * i + (1 if split == "test" else 0)
                    Image.fromarray(np.full((32, 32, 3), shade, np.uint8)).save(buf, "PNG")
                    info = tarfile.TarInfo(f"{split}/{c}/{name}")
                    info.size = len(buf.getvalue())
                    tar.addfile(info, io.BytesIO(buf.getvalue()))
                    shades.setdefault(split, {}).setdefault(c, []).append(shade)
    data = load_cifar10(archive, cache_dir=tmp_path / "cache", verbose=False)
    want = [s for c in CLASSES for s in shades["train"][c]]
    assert data.train.images[:, 0, 0, 0].tolist() == want
    assert data.train.labels.tolist() == [i for i in range(10) for _ in range(2)]


def test_two_copies_of_an_image_folder_name_the_top_level(tmp_path):
    # _read_archive 102, 103
    from PIL import Image
    archive = tmp_path / "c.tar.gz"
    buf = io.BytesIO()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(buf, "PNG")
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("train/cat/1.png", "copy/train/cat/1.png"):
            info = tarfile.TarInfo(name)
            info.size = len(buf.getvalue())
            tar.addfile(info, io.BytesIO(buf.getvalue()))
    with pytest.raises(DataError, match=r"2 copies of an image folder \(\(top level\)/, copy/\)"):
        load_cifar10(archive, cache_dir=tmp_path / "cache", verbose=False)


# --- data: checks on arrays, caches, splits ---------------------------------------------------

@pytest.mark.parametrize("images, labels, what", [
    (torch.zeros(2, 3, 32, 31, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64), "images"),
    (torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.int64), "images"),          # float
    (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.tensor([0, 10]), "labels"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.tensor([-1, 3]), "labels"),
])
def test_check_set_refuses_wrong_shapes_types_and_labels(images, labels, what):
    # _check_set 2, 3, 4, 22, 27
    with pytest.raises(ValueError, match=f"x {what} are not"):
        readers.check_set(images, labels, "x")
    readers.check_set(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.tensor([0, 9]), "x")


def test_a_cache_of_another_version_is_not_read(tmp_path):
    # _read_cache 7: a dict of another version must be refused, not read
    data = make_synthetic(20, 10)
    cache = tmp_path / "c.pt"
    sources._write_cache(cache, data)
    assert torch.equal(sources._read_cache(cache, "x").train.images, data.train.images)
    d = torch.load(cache, weights_only=True)
    d["version"] = sources._CACHE_VERSION + 1
    torch.save(d, cache)
    with pytest.raises(ValueError, match="not a cache file of this version"):
        sources._read_cache(cache, "x")


def test_the_default_validation_split_is_the_papers_5000_images_with_seed_0():
    # CifarData.split_validation 1, 2, 4
    data = make_synthetic(5010, 10)
    split = data.split_validation()
    assert len(split.val) == 5000 and len(split.train) == 10
    assert torch.equal(split.val.images, data.split_validation(5000, seed=0).val.images)
    assert len(data.split_validation(1).val) == 1



# --- train: the divergence message and what a failed save carries ---------------------------

def test_the_divergence_message_counts_the_saved_epochs_and_suggests_a_rate():
    from pathlib import Path
    from resnet_nb.runs import History, _diverged_message
    from resnet_nb.train import recipe, suggest_lr
    cfg = recipe("fast", lr=30.0)
    two, one = History(), History()
    two.epochs, one.epochs = [{"epoch": 1}, {"epoch": 2}], [{"epoch": 1}]
    err = ValueError("loss nan at step 5")
    msg = _diverged_message(err, 2, suggest_lr(cfg), Path("runs/x"), two)
    assert msg.startswith("training diverged: loss nan at step 5 in epoch 3. ")
    assert "e.g. lr=0.2, the 'fast' recipe's default (in a new output folder)" in msg
    assert msg.endswith("; epochs 1-2, whose numbers are all finite, are saved in runs/x/")
    assert _diverged_message(err, 1, suggest_lr(cfg), Path("runs/x"), one).endswith(
        "; epoch 1, whose numbers are all finite, is saved in runs/x/")
    bare = _diverged_message(err, 0, suggest_lr(cfg), None, History())
    assert bare.endswith("e.g. lr=0.2, the 'fast' recipe's default")  # nothing saved, no folder


def test_a_rate_for_a_recipe_of_ones_own_is_a_tenth():
    """suggest_lr knows the defaults of the named recipes only; another name gets lr/10."""
    from resnet_nb.train import TrainConfig, suggest_lr
    assert suggest_lr(TrainConfig(recipe="mine", lr=5.0)) == "lr=0.5"
    assert suggest_lr(TrainConfig(recipe="paper", lr=0.05)) == "lr=0.005"


def test_a_failed_save_carries_the_history_so_far():
    from resnet_nb.runs import History, SaveFailed
    h = History()
    h.status = "failed"
    e = SaveFailed("could not save epoch 2", h)
    assert e.history is h and str(e) == "could not save epoch 2" and isinstance(e, OSError)


def test_predict_passes_its_precision_on():
    """predict(precision=...) reaches the autocast: bf16 on a CPU is refused, as in fit."""
    import torch
    from resnet_nb import cifar_resnet
    from resnet_nb.data import Batches, ImageSet
    from resnet_nb.train import predict
    images = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    batches = Batches(ImageSet(images, torch.zeros(4, dtype=torch.long)), 2)
    with pytest.raises(ValueError, match="bf16 mixed precision needs a CUDA GPU"):
        predict(cifar_resnet(8), batches, precision="bf16")
    assert predict(cifar_resnet(8), batches, precision="fp32").shape == (4,)
