"""The two compared registration methods that are not parameter regressors (paper:
"Related work" and Tables 1-2), trained and run on the same pairs as the DCNN (the pooled
network grid, fixed MR and moving CT, ``training.PairExamples``).

* Liu et al. (Med Biol Eng Comput 2019, "image synthesis-based multi-modal registration"):
  a CNN of ten convolutions with batch norm and ReLU maps the moving CT to an MR-like image
  (trained with the sum of squared differences against the fixed MR, the CT aligned by the
  known truth), then a mono-modal registration by optimisation (SimpleITK: mean squares,
  regular-step gradient descent) of that image to the fixed MR.
* Zou et al. (Comput Mater Contin 2019, "learning-based interest points and features"): a
  fully convolutional network per modality scores every voxel as an interest point and
  gives it a descriptor (trained contrastively on points the truth puts in
  correspondence); the strongest points are matched by mutual nearest descriptors and a
  rigid transform fitted to the matches by RANSAC.

Both return, like the regressors, the six parameters (degrees, mm) of the fixed -> moving
transform about the grid centre. Training only (nothing in ``register`` imports this).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..core import geometry
from ..core.resources import torch_device
from .backbones import _channels, _conv
from .shipping import grid_image, moved
from .training import PairExamples


def _aligned(examples: PairExamples, spacing: float):
    """(fixed MR, moving CT seen through the truth: aligned with the MR) of every example."""
    for i in range(len(examples)):
        volumes, _ = examples[i]
        truth = geometry.matrix_from_parameters(examples.examples.parameters[i])
        yield volumes[0].numpy(), moved(volumes[1].numpy(), truth, spacing)


# ---------------------------------------------------------------- Liu et al.: synthesis + optimisation

class SynthesisNet(nn.Module):
    """Ten 3x3 convolutions, batch norm and ReLU between them: CT (B, 1, ...) -> MR-like."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        c = _channels(64, width)
        layers = _conv(1, c, 3, batch_norm=True)
        for _ in range(8):
            layers += _conv(c, c, 3, batch_norm=True)
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Conv3d(c, 1, 3, padding=1)

    def forward(self, ct: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(ct))

    def features(self, pair: torch.Tensor) -> torch.Tensor:
        """The last hidden maps of each volume, averaged (what an ANN may read, Table 2)."""
        return torch.cat([self.hidden(pair[:, :1]).mean((2, 3, 4)), self.hidden(pair[:, 1:2]).mean((2, 3, 4))], 1)


def train_synthesis(examples: PairExamples, spacing: float, width: float, epochs: int, seed: int = 0,
                    batch_size: int = 8, device: str = "cpu") -> SynthesisNet:
    torch.manual_seed(seed)
    place = torch_device(device)
    model = SynthesisNet(width).to(place)
    pairs = [(torch.from_numpy(ct)[None], torch.from_numpy(mr)[None]) for mr, ct in _aligned(examples, spacing)]
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for ct, mr in DataLoader(pairs, batch_size=batch_size, shuffle=True, generator=generator):
            ct, mr = ct.to(place), mr.to(place)
            loss = torch.sum((model(ct) - mr) ** 2) / len(ct)   # the sum of squared differences
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    return model.cpu().eval()


def register_mono_modal(fixed: np.ndarray, moving_like_fixed: np.ndarray, spacing: float) -> np.ndarray:
    """Six parameters of the rigid transform that best maps the fixed MR onto the synthesised
    one (mean squares, two levels, from the identity)."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMeanSquares()
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=200)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([2, 1])
    method.SetSmoothingSigmasPerLevel([1, 0])
    method.SetInterpolator(sitk.sitkLinear)
    method.SetInitialTransform(sitk.Euler3DTransform(), inPlace=False)
    found = method.Execute(grid_image(fixed, spacing), grid_image(moving_like_fixed, spacing))
    return geometry.parameters_from_matrix(geometry.matrix_from_sitk(found))


@torch.no_grad()
def predict_liu(model: SynthesisNet, examples: PairExamples, spacing: float) -> np.ndarray:
    found = []
    for i in range(len(examples)):
        volumes, _ = examples[i]
        synthesised = model(volumes[1:2][None])[0, 0].numpy()
        found.append(register_mono_modal(volumes[0].numpy(), synthesised, spacing))
    return np.array(found)


# ---------------------------------------------------------------- Zou et al.: interest points + RANSAC

DESCRIPTOR = 16


class PointNet(nn.Module):
    """An FCN: each voxel's interest score and unit descriptor (B, 1, ...) -> (B, ...), (B, D, ...)."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        c = _channels(32, width)
        self.hidden = nn.Sequential(*_conv(1, c, 3, batch_norm=True), *_conv(c, c, 3, batch_norm=True),
                                    *_conv(c, 2 * c, 3, batch_norm=True), *_conv(2 * c, 2 * c, 3, batch_norm=True))
        self.score, self.describe = nn.Conv3d(2 * c, 1, 1), nn.Conv3d(2 * c, DESCRIPTOR, 1)

    def forward(self, volume: torch.Tensor):
        hidden = self.hidden(volume)
        return self.score(hidden)[:, 0], nn.functional.normalize(self.describe(hidden), dim=1)


class InterestPoints(nn.Module):
    """One ``PointNet`` per modality (MR, CT): the two are told apart by their appearance."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        self.mr, self.ct = PointNet(width), PointNet(width)

    def features(self, pair: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.mr.hidden(pair[:, :1]).mean((2, 3, 4)), self.ct.hidden(pair[:, 1:2]).mean((2, 3, 4))], 1)


def _positions(indices: torch.Tensor, shape, spacing: float) -> torch.Tensor:
    """(N, 3: z, y, x) voxel indices -> (N, 3: x, y, z) mm about the grid centre."""
    centre = (torch.tensor(shape, dtype=torch.float32, device=indices.device) - 1) / 2
    return ((indices.float() - centre) * spacing).flip(-1)


def _sample(maps: torch.Tensor, points_mm: torch.Tensor, spacing: float) -> torch.Tensor:
    """Trilinear values of (C, z, y, x) ``maps`` at (N, 3: x, y, z) mm points: (N, C)."""
    size = torch.tensor(maps.shape[1:][::-1], dtype=torch.float32, device=maps.device)   # x, y, z
    grid = points_mm / spacing / ((size - 1) / 2)
    values = nn.functional.grid_sample(maps[None], grid.reshape(1, -1, 1, 1, 3), align_corners=True)
    return values[0, :, :, 0, 0].T


def train_points(examples: PairExamples, spacing: float, width: float, epochs: int, seed: int = 0,
                 points: int = 256, temperature: float = 0.1, device: str = "cpu") -> InterestPoints:
    """InfoNCE on the descriptors of fixed head points and of their true moving positions;
    the scores learn where the nearest descriptor is the right one."""
    torch.manual_seed(seed)
    place = torch_device(device)
    model = InterestPoints(width).to(place)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for i in torch.randperm(len(examples), generator=generator).tolist():
            volumes, _ = examples[i]
            volumes = volumes.to(place)
            truth = torch.from_numpy(geometry.matrix_from_parameters(examples.examples.parameters[i])).float().to(place)
            fixed_score, fixed_descriptors = model.mr(volumes[None, :1])
            moving_score, moving_descriptors = model.ct(volumes[None, 1:2])
            head = torch.nonzero(volumes[0] > 0.2)
            chosen = head[torch.randint(len(head), (points,), generator=generator).to(place)]
            at_fixed = _positions(chosen, volumes.shape[1:], spacing)
            at_moving = at_fixed @ truth[:3, :3].T + truth[:3, 3]
            f = fixed_descriptors[0, :, chosen[:, 0], chosen[:, 1], chosen[:, 2]].T
            m = nn.functional.normalize(_sample(moving_descriptors[0], at_moving, spacing), dim=1)
            logits = f @ m.T / temperature
            target = torch.arange(points, device=place)
            right = (logits.argmax(1) == target).float().detach()
            scores = torch.cat([fixed_score[0, chosen[:, 0], chosen[:, 1], chosen[:, 2]],
                                _sample(moving_score, at_moving, spacing)[:, 0]])
            loss = nn.functional.cross_entropy(logits, target) + nn.functional.binary_cross_entropy_with_logits(
                scores, torch.cat([right, right]))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    return model.cpu().eval()


def _kabsch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """4x4 rigid transform taking points ``a`` (N, 3) onto ``b`` in the least-squares sense."""
    ca, cb = a.mean(0), b.mean(0)
    u, _, vt = np.linalg.svd((a - ca).T @ (b - cb))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rotation = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    matrix = np.eye(4)
    matrix[:3, :3], matrix[:3, 3] = rotation, cb - rotation @ ca
    return matrix


def ransac_rigid(a: np.ndarray, b: np.ndarray, threshold_mm: float, iterations: int = 1000,
                 seed: int = 0) -> np.ndarray:
    """The rigid transform with the most matches (``a`` -> ``b``) within ``threshold_mm``,
    refitted on them; the identity with fewer than three matches."""
    if len(a) < 3:
        return np.eye(4)
    rng = np.random.default_rng(seed)
    best = np.zeros(len(a), bool)
    for _ in range(iterations):
        pick = rng.choice(len(a), 3, replace=False)
        matrix = _kabsch(a[pick], b[pick])
        inliers = np.linalg.norm(a @ matrix[:3, :3].T + matrix[:3, 3] - b, axis=1) < threshold_mm
        if inliers.sum() > best.sum():
            best = inliers
    return _kabsch(a[best], b[best]) if best.sum() >= 3 else np.eye(4)


@torch.no_grad()
def predict_zou(model: InterestPoints, examples: PairExamples, spacing: float, keypoints: int = 300) -> np.ndarray:
    found = []
    for i in range(len(examples)):
        volumes, _ = examples[i]
        described = []
        for net, volume, inside in ((model.mr, volumes[:1], volumes[0] > 0.2), (model.ct, volumes[1:2], volumes[1] > 0.5)):
            score, descriptors = net(volume[None])
            candidates = torch.nonzero(inside)
            strongest = candidates[score[0][inside].argsort(descending=True)[:keypoints]]
            described.append((_positions(strongest, volumes.shape[1:], spacing).numpy(),
                              descriptors[0, :, strongest[:, 0], strongest[:, 1], strongest[:, 2]].T.numpy()))
        (fixed_mm, fixed_d), (moving_mm, moving_d) = described
        similarity = fixed_d @ moving_d.T
        forward, backward = similarity.argmax(1), similarity.argmax(0)
        mutual = np.flatnonzero(backward[forward] == np.arange(len(forward)))
        matrix = ransac_rigid(fixed_mm[mutual], moving_mm[forward[mutual]], threshold_mm=1.5 * spacing, seed=i)
        found.append(geometry.parameters_from_matrix(matrix))
    return np.array(found)
