"""The 3D DCNN of the paper ("Registration of multi-modal images", "Identification of
image modality"): blocks of 3D convolution -> batch norm -> leaky ReLU (0.1) -> 3D max
pooling, global average pooling and fully connected layers.

One trunk serves both volumes of a pair (shared weights). Registration concatenates the
two feature vectors (2 x ``features``, 128 each by default as in the paper) and regresses
the six rigid parameters (``geometry.PARAMETER_NAMES``, scaled by ``PARAMETER_SCALE``);
the modality classifier puts a softmax over (MR, CT) on one volume's features.
"""

from __future__ import annotations

import pickle

import torch
from torch import nn

from ..core.errors import HeadRegError

DEFAULT_WIDTHS = (16, 32, 64, 128)   # channels per block; the last is the feature count
PARAMETER_SCALE = (15.0, 15.0, 15.0, 5.0, 5.0, 5.0)   # degrees, mm: the paper's ranges -> about +-1


def block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm3d(out_channels), nn.LeakyReLU(0.1), nn.MaxPool3d(2))


class Trunk(nn.Module):
    """Convolution blocks and global average pooling: (B, 1, z, y, x) -> (B, features)."""

    def __init__(self, widths=DEFAULT_WIDTHS):
        super().__init__()
        channels = (1, *widths)
        self.blocks = nn.Sequential(*[block(a, b) for a, b in zip(channels[:-1], channels[1:])])
        self.features = widths[-1]

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        return self.blocks(volume).mean(dim=(2, 3, 4))


class RegistrationNet(nn.Module):
    """Fixed and moving volumes (B, 2, z, y, x) -> six scaled rigid parameters (B, 6)."""

    def __init__(self, widths=DEFAULT_WIDTHS, hidden: int = 128):
        super().__init__()
        self.trunk = Trunk(widths)
        self.head = nn.Sequential(nn.Linear(2 * self.trunk.features, hidden), nn.LeakyReLU(0.1),
                                  nn.Linear(hidden, 6))

    def features(self, pair: torch.Tensor) -> torch.Tensor:
        """The 2 x ``features`` values the ANN of the paper reads (fixed first)."""
        return torch.cat([self.trunk(pair[:, :1]), self.trunk(pair[:, 1:2])], dim=1)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(pair))


class ModalityNet(nn.Module):
    """One volume (B, 1, z, y, x) -> logits over ("MR", "CT")."""

    def __init__(self, widths=DEFAULT_WIDTHS):
        super().__init__()
        self.trunk = Trunk(widths)
        self.head = nn.Linear(self.trunk.features, 2)

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(volume))


def half_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The paper's regression loss: half the mean squared error."""
    return 0.5 * torch.mean((prediction - target) ** 2)


def load_weights(model: nn.Module, path) -> nn.Module:
    """``model`` with the state dict in ``path`` (read with ``weights_only=True``, never
    unpickling code), in float64 for inference: float32 convolutions differ in their last
    bits with the number of threads, and the search would carry that into the result, so
    the command line, Slicer and every batch executor give the same transform. A clear
    error when the file does not fit the network."""
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (RuntimeError, KeyError, EOFError, ValueError, pickle.UnpicklingError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise HeadRegError(f"{path} does not fit the network of its card: {first}") from None
    return model.double().eval()
