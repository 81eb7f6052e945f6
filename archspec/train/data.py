"""Datasets for training and evaluation, named on the command line as ``--data KIND[:PATH]``:

=================  =========================================================================
``cifar10:DIR``    CIFAR-10, python version (``data_batch_1`` .. ``_5``, ``test_batch``)
``cifar100:DIR``   CIFAR-100, python version (``train``, ``test``)
``imagefolder:DIR`` ``DIR/train/<class>/*.jpg`` and ``DIR/val/<class>/*.jpg`` (needs Pillow)
``digits``         scikit-learn's 8x8 digits, upscaled to the model's resolution (no download)
``synthetic[:N]``  N random images (default 2048) whose class sets their mean pattern
=================  =========================================================================

Nothing is downloaded. In-memory sets (CIFAR, digits, synthetic) are augmented a batch at
a time on the training device; ImageFolder decodes and augments per image in DataLoader
workers. Every random choice (order, crop, flip) is a function of (seed, epoch, sample
index), so a resumed run and a run on N processes see exactly the same images.
"""
from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import ArchspecError, did_you_mean

KINDS = ("cifar10", "cifar100", "imagefolder", "digits", "synthetic")
NEEDS_PATH = {"cifar10", "cifar100", "imagefolder"}
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"}
CIFAR_LAYOUT = {
    "cifar10": (["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                 "data_batch_5"], ["test_batch"], b"labels", 10,
                "the python version of CIFAR-10: data_batch_1 .. data_batch_5 and test_batch "
                "(cifar-10-python.tar.gz extracted, the cifar-10-batches-py folder)"),
    "cifar100": (["train"], ["test"], b"fine_labels", 100,
                 "the python version of CIFAR-100: train and test "
                 "(cifar-100-python.tar.gz extracted, the cifar-100-python folder)"),
}


class DataError(ArchspecError):
    """A dataset is missing, malformed or does not fit the model."""


@dataclass(frozen=True)
class Source:
    """A parsed ``--data`` value."""

    kind: str
    path: Path | None = None
    size: int | None = None  # synthetic only

    def __str__(self) -> str:
        if self.path is not None:
            return f"{self.kind}:{self.path}"
        return f"{self.kind}:{self.size}" if self.size else self.kind


def parse_source(text: str) -> Source:
    """``cifar10:/data/cifar-10-batches-py`` -> Source("cifar10", Path(...))."""
    kind, sep, rest = str(text).partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise DataError(f"--data {text}: unknown dataset `{kind}` ({did_you_mean(kind, KINDS)}; "
                        "write KIND or KIND:PATH, e.g. cifar10:/data/cifar-10-batches-py)")
    if kind in NEEDS_PATH:
        if not rest:
            raise DataError(f"--data {text}: {kind} needs the folder it is in, "
                            f"e.g. --data {kind}:/data/{kind}")
        return Source(kind, Path(rest).expanduser())
    if kind == "synthetic" and rest:
        try:
            size = int(rest)
        except ValueError:
            size = 0
        if size < 2:
            raise DataError(f"--data {text}: synthetic:N needs a whole number N >= 2")
        return Source(kind, size=size)
    if rest:
        raise DataError(f"--data {text}: {kind} takes no path")
    return Source(kind)


# ---- augmentation (torch ops) -------------------------------------------------------------
def generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded from integers (seed, epoch, index...), stable across runs."""
    value = 0x9E3779B97F4A7C15
    for k in keys:
        value = (value * 6364136223846793005 + int(k) + 1442695040888963407) % (1 << 63)
    return torch.Generator().manual_seed(value)


def pad_crop_flip(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor,
                  padding: int) -> torch.Tensor:
    """Random crop after zero padding, and horizontal flip, for a batch (N, C, H, W):
    sample i is cut at ``offsets[i] = (dy, dx)`` from the padded image, flipped if
    ``flips[i]``."""
    n, _, h, w = images.shape
    if padding:
        images = F.pad(images, (padding,) * 4)
        rows = offsets[:, :1] + torch.arange(h, device=images.device)  # (N, H)
        cols = offsets[:, 1:] + torch.arange(w, device=images.device)  # (N, W)
        batch = torch.arange(n, device=images.device)[:, None, None]
        images = images[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    return torch.where(flips[:, None, None, None], images.flip(-1), images)


def resized_crop_box(height: int, width: int, scale, ratio, gen: torch.Generator):
    """Inception-style random-resized-crop box (top, left, h, w), torchvision's algorithm:
    ten tries at a random area and aspect ratio, then the centre crop as a fallback."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        u = torch.rand(4, generator=gen).tolist()
        target = area * (scale[0] + (scale[1] - scale[0]) * u[0])
        aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u[1])
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(u[2] * (height - h + 1)), int(u[3] * (width - w + 1)), h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def resize(image: torch.Tensor, size) -> torch.Tensor:
    """Bilinear, antialiased resize of a float (C, H, W) or (N, C, H, W) tensor."""
    batched = image.dim() == 4
    x = image if batched else image[None]
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return x if batched else x[0]


# ---- in-memory sets -----------------------------------------------------------------------
class TensorImages:
    """Images held as one uint8 tensor (N, C, H, W) with int64 labels. ``batch(indices)``
    returns normalised float images at ``resolution``, augmented for training."""

    batched = True

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: int, mean, std,
                 name: str):
        self.images, self.labels, self.classes, self.name = images, labels, classes, name
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)
        self.augment, self.resolution, self.seed, self._params = None, None, 0, None

    def __len__(self) -> int:
        return len(self.labels)

    def configure(self, *, augment, resolution: int, seed: int, device) -> TensorImages:
        self.augment, self.resolution, self.seed = augment, resolution, seed
        self.images, self.labels = self.images.to(device), self.labels.to(device)
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's crop offsets and flips for every sample at once."""
        a = self.augment
        if a is None or (a.crop != "pad" and not a.flip):
            self._params = None
            return
        gen = generator(self.seed, epoch, 1)
        n = len(self)
        pad = a.padding if a.crop == "pad" else 0
        offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=gen)
        flips = torch.rand(n, generator=gen) < 0.5 if a.flip else torch.zeros(n, dtype=bool)
        self._params = (offsets.to(self.images.device), flips.to(self.images.device), pad)

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, device=self.images.device)
        x = self.images[idx].float().div_(255)
        if self._params is not None:
            offsets, flips, pad = self._params
            x = pad_crop_flip(x, offsets[idx], flips[idx], pad)
        if self.resolution and x.shape[-1] != self.resolution:
            x = resize(x, (self.resolution, self.resolution))
        return (x - self.mean) / self.std, self.labels[idx]


def _cifar(source: Source, split: str) -> TensorImages:
    train_files, test_files, label_key, classes, layout = CIFAR_LAYOUT[source.kind]
    root = source.path
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (expected {layout})")
    images, labels = [], []
    for name in train_files if split == "train" else test_files:
        path = root / name
        if not path.is_file():
            raise DataError(f"{root}: {name} is missing (expected {layout})")
        batch = _read_cifar_batch(path, layout)
        data, lab = batch.get(b"data"), batch.get(label_key)
        if data is None or lab is None or getattr(data, "ndim", 0) != 2 \
                or data.shape[1] != 3072 or len(lab) != data.shape[0]:
            raise DataError(f"{path}: not a CIFAR batch (expected a dict with b'data' "
                            f"N x 3072 uint8 and {label_key!r}; expected {layout})")
        images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))
        labels.append(torch.as_tensor(list(lab), dtype=torch.int64))
    x, y = torch.cat(images), torch.cat(labels)
    if y.min() < 0 or y.max() >= classes:
        raise DataError(f"{root}: labels outside 0..{classes - 1} (is this {source.kind}?)")
    return TensorImages(x, y, classes, CIFAR_MEAN, CIFAR_STD, f"{source.kind} {split}")


class _NumpyOnly(pickle.Unpickler):
    """Unpickles the CIFAR files (dicts of numpy arrays, lists, bytes) and nothing that
    could run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray",
               "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_cifar_batch(path: Path, layout: str) -> dict:
    try:
        with open(path, "rb") as f:
            batch = _NumpyOnly(f, encoding="bytes").load()
    except Exception as e:
        raise DataError(f"{path}: not a readable CIFAR batch ({type(e).__name__}: {e}; "
                        f"expected {layout})") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path}: not a CIFAR batch (expected a dict; expected {layout})")
    return batch


def _digits(split: str, resolution: int) -> TensorImages:
    """scikit-learn's 1,797 8x8 digits, 80/20 split (fixed), upscaled to ``resolution``
    and repeated over three channels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("--data digits needs scikit-learn: pip install 'archspec[train]'") \
            from None
    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0  # (N, 1, 8, 8)
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * len(y))
    idx = order[:cut] if split == "train" else order[cut:]
    x = resize(x[idx], (resolution, resolution)).clamp_(0, 1)
    x = (x * 255).round_().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    mean, std = x.float().div(255).mean().item(), x.float().div(255).std().item()
    return TensorImages(x, y[idx], 10, (mean,) * 3, (std,) * 3, f"digits {split}")


def _synthetic(source: Source, split: str, resolution: int, classes: int) -> TensorImages:
    """Learnable noise: each class has a fixed random low-resolution pattern; an image is
    its class pattern, upscaled, plus noise. Train and val are disjoint draws."""
    n = source.size or 2048
    n = n if split == "train" else max(classes, n // 4)
    gen = torch.Generator().manual_seed(12345)
    patterns = torch.rand(classes, 3, 4, 4, generator=gen)
    gen = torch.Generator().manual_seed(1 if split == "train" else 2)
    y = torch.randint(0, classes, (n,), generator=gen)
    x = resize(patterns[y], (resolution, resolution))
    x = (0.6 * x + 0.4 * torch.rand(x.shape, generator=gen)).clamp_(0, 1)
    x = (x * 255).round_().to(torch.uint8)
    return TensorImages(x, y, classes, (0.5,) * 3, (0.25,) * 3, f"synthetic {split}")


# ---- image folders ------------------------------------------------------------------------
class FolderImages(torch.utils.data.Dataset):
    """``root/<class>/<image>`` decoded with Pillow; random-resized-crop and flip for
    training, resize-and-centre-crop (ratio 0.875) for evaluation."""

    batched = False

    def __init__(self, root: Path, classes: list[str], name: str):
        self.root, self.class_names, self.classes, self.name = root, classes, len(classes), name
        self.samples = [(p, i) for i, c in enumerate(classes)
                        for p in sorted((root / c).rglob("*")) if p.suffix.lower() in
                        IMAGE_SUFFIXES]
        self.mean = torch.tensor(IMAGENET_MEAN).view(-1, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(-1, 1, 1)
        self.augment, self.resolution, self.seed, self.epoch = None, 224, 0, 0

    def __len__(self) -> int:
        return len(self.samples)

    def configure(self, *, augment, resolution: int, seed: int, device) -> FolderImages:
        self.augment, self.resolution, self.seed = augment, resolution, seed
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch  # workers get a fresh copy of the dataset every epoch

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        x = _decode(path)
        res, a = self.resolution, self.augment
        if a is not None and a.crop == "resized":
            gen = generator(self.seed, self.epoch, index)
            top, left, h, w = resized_crop_box(x.shape[1], x.shape[2], a.scale, a.ratio, gen)
            x = resize(x[:, top:top + h, left:left + w], (res, res))
            if a.flip and torch.rand(1, generator=gen).item() < 0.5:
                x = x.flip(-1)
        else:
            short = round(res / 0.875)
            h, w = x.shape[1:]
            x = resize(x, (short, max(short, round(w * short / h))) if h <= w
                       else (max(short, round(h * short / w)), short))
            top, left = (x.shape[1] - res) // 2, (x.shape[2] - res) // 2
            x = x[:, top:top + res, left:left + res]
        return (x.clamp(0, 1) - self.mean) / self.std, label


def _decode(path: Path) -> torch.Tensor:
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as im:
            array = np.asarray(im.convert("RGB"))
    except Exception as e:
        raise DataError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255)


def _imagefolder(source: Source, split: str) -> FolderImages:
    layout = ("an ImageNet-style folder: ROOT/train/<class>/<images> and "
              "ROOT/val/<class>/<images>, one sub-folder per class")
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise DataError("--data imagefolder needs Pillow to decode images: pip install pillow") \
            from None
    root = source.path
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (expected {layout})")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir()) \
        if (root / "train").is_dir() else []
    folder = root / split
    if not classes or not folder.is_dir():
        missing = "train" if not classes else split
        raise DataError(f"{root}: no class folders in {root / missing} (expected {layout})")
    extra = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in classes)
    if extra:
        raise DataError(f"{folder}: class folder `{extra[0]}` is not in {root / 'train'} "
                        f"(expected {layout})")
    ds = FolderImages(folder, classes, f"imagefolder {split}")
    if not ds.samples:
        raise DataError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) "
                        f"(expected {layout})")
    return ds


def load_split(source: Source, split: str, *, resolution: int, classes: int):
    """The ``train`` or ``val`` split of ``source`` (CIFAR's test set serves as val)."""
    if source.kind in CIFAR_LAYOUT:
        return _cifar(source, split)
    if source.kind == "digits":
        return _digits(split, resolution)
    if source.kind == "synthetic":
        return _synthetic(source, split, resolution, classes)
    return _imagefolder(source, split)


def class_count(source: Source, default: int) -> int:
    """How many classes ``source`` has (``default`` for synthetic data: the model's)."""
    if source.kind in CIFAR_LAYOUT:
        return CIFAR_LAYOUT[source.kind][3]
    if source.kind == "digits":
        return 10
    if source.kind == "imagefolder":
        train = source.path / "train"
        if train.is_dir():
            return len([p for p in train.iterdir() if p.is_dir()]) or default
    return default


# ---- loaders ------------------------------------------------------------------------------
def batches(dataset, *, batch_size: int, train: bool, epoch: int, seed: int, rank: int,
            world: int, workers: int = 0, pin_memory: bool = False):
    """This rank's batches for one epoch. Training: a permutation of the whole set drawn
    from (seed, epoch), cut into global batches of ``batch_size * world`` of which this rank
    takes every ``world``-th sample (DistributedSampler), incomplete batches dropped.
    Evaluation: every sample once, in order, split over the ranks."""
    from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

    dataset.set_epoch(epoch)
    if train:
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                                     seed=seed, drop_last=False)
        sampler.set_epoch(epoch)
    else:
        sampler = range(rank, len(dataset), world)
    if dataset.batched:
        return (dataset.batch(list(b)) for b in BatchSampler(sampler, batch_size, train))
    return iter(DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                           num_workers=workers, pin_memory=pin_memory, drop_last=train,
                           persistent_workers=False))


def steps_per_epoch(dataset, batch_size: int, world: int) -> int:
    """Training steps in one epoch (DistributedSampler pads to a multiple of ``world``)."""
    per_rank = math.ceil(len(dataset) / world)
    return per_rank // batch_size
