"""Where the shipped models are, and the PyTorch device the work runs on."""

from pathlib import Path

from .errors import HeadRegError


def models_folder() -> Path:
    """The shipped models (weights and model cards): installed inside the package, so that
    a wheel, an editable install, a checkout and the Slicer extension all find them."""
    return Path(__file__).resolve().parent.parent / "models"


def torch_device(device: str = "auto"):
    """The torch device of ``device`` (auto, cpu or cuda). PyTorch runs the search and the
    learned models: without it nothing can be registered (said so only when torch itself
    is missing; another ImportError is a bug and keeps its traceback)."""
    try:
        import torch
    except ModuleNotFoundError as error:
        if error.name != "torch":
            raise
        raise HeadRegError("PyTorch is not installed, and the registration runs on it: pip install torch "
                           "(in 3D Slicer: install the PyTorch extension)") from None
    if device not in ("auto", "cpu", "cuda"):
        raise HeadRegError(f"device must be auto, cpu or cuda, not {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise HeadRegError("--device cuda was asked for, but PyTorch sees no CUDA GPU")
    return torch.device(device)
