"""The classifier networks the paper compares its CT/MR classifier with (paper:
"Identification of image modality", Table 3: "AlexNet, VGG-19, SqueezeNet, GoogLeNet, and
ResNet-101 ... modified so that they could accept 3D images"), as 3D networks on the
classifier's input, one volume (B, 1, 32, 32, 32) -> logits over ("MR", "CT").

Each keeps the design that names it: AlexNet's five convolutions with large early kernels
and three fully connected layers with dropout (Krizhevsky et al. 2012); VGG-19's sixteen
3x3 convolutions in five pooled stages and its fully connected head (Simonyan and
Zisserman 2015; batch norm as in the common VGG-19-BN); SqueezeNet's eight Fire modules
(1x1 squeeze, 1x1 and 3x3 expand) and a convolutional classifier (Iandola et al. 2016);
GoogLeNet's Inception modules (1x1, 3x3, 5x5 and pooled branches) and global average
pooling (Szegedy et al. 2015); ResNet-101's bottleneck blocks (3, 4, 23, 3) (He et al.
2016), MONAI's 3D ResNet. The spatial strides are fitted to a 32^3 input (the published
networks start from 224^2); ``width`` scales every channel count: 1.0 is the published
width, the CPU-feasible runs use a fraction (the card and docs/BENCHMARKS.md say which).
Training only: nothing in ``register`` imports this.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..register import network

NAMES = ("dcnn", "alexnet", "vgg19", "squeezenet", "googlenet", "resnet101")
INPUT_SHAPE = (32, 32, 32)   # the network grid, 64^3 at 4 mm pooled by 2, as the shipped models read it


def _channels(count: int, width: float) -> int:
    return max(4, int(round(count * width)))


def _conv(a: int, b: int, kernel: int, stride: int = 1, batch_norm: bool = False) -> list[nn.Module]:
    layers = [nn.Conv3d(a, b, kernel, stride, kernel // 2, bias=not batch_norm)]
    return layers + ([nn.BatchNorm3d(b)] if batch_norm else []) + [nn.ReLU(inplace=True)]


def alexnet(width: float = 1.0) -> nn.Module:
    c = [_channels(n, width) for n in (64, 192, 384, 256, 256)]
    fc = _channels(4096, width)
    return nn.Sequential(
        *_conv(1, c[0], 7, 2), nn.MaxPool3d(2),                    # 32 -> 16 -> 8
        *_conv(c[0], c[1], 5), nn.MaxPool3d(2),                    # -> 4
        *_conv(c[1], c[2], 3), *_conv(c[2], c[3], 3), *_conv(c[3], c[4], 3), nn.MaxPool3d(2),   # -> 2
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(c[4] * 8, fc), nn.ReLU(inplace=True),
        nn.Dropout(0.5), nn.Linear(fc, fc), nn.ReLU(inplace=True), nn.Linear(fc, 2))


def _vgg(in_channels: int, convolutions: tuple[int, ...], width: float) -> tuple[nn.Sequential, int]:
    """VGG's five stages of 3x3 convolutions (batch norm), each pooled (32 -> 1), and
    their last channel count."""
    layers, previous = [], in_channels
    for count, repeats in zip((64, 128, 256, 512, 512), convolutions):
        for _ in range(repeats):
            layers += _conv(previous, _channels(count, width), 3, batch_norm=True)
            previous = _channels(count, width)
        layers.append(nn.MaxPool3d(2))
    return nn.Sequential(*layers), previous


def vgg19(width: float = 1.0) -> nn.Module:
    stages, channels = _vgg(1, (2, 2, 4, 4, 4), width)
    fc = _channels(4096, width)
    return nn.Sequential(stages, nn.Flatten(), nn.Linear(channels, fc), nn.ReLU(inplace=True), nn.Dropout(0.5),
                         nn.Linear(fc, fc), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(fc, 2))


class Fire(nn.Module):
    """SqueezeNet's module: a 1x1 squeeze, then 1x1 and 3x3 expands concatenated."""

    def __init__(self, a: int, squeeze: int, expand: int):
        super().__init__()
        self.squeeze = nn.Sequential(*_conv(a, squeeze, 1))
        self.expand1, self.expand3 = nn.Sequential(*_conv(squeeze, expand, 1)), nn.Sequential(*_conv(squeeze, expand, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze(x)
        return torch.cat([self.expand1(x), self.expand3(x)], 1)


def squeezenet(width: float = 1.0) -> nn.Module:
    w = lambda n: _channels(n, width)   # noqa: E731
    layers, previous = [*_conv(1, w(96), 7, 2), nn.MaxPool3d(2)], w(96)   # 32 -> 8
    for fire in ((16, 64), (16, 64), (32, 128), "pool", (32, 128), (48, 192), (48, 192), (64, 256), "pool",
                 (64, 256)):   # (squeeze, expand) of Fire 2-9, pooled after Fire 4 and 8
        if fire == "pool":
            layers.append(nn.MaxPool3d(2))
            continue
        layers.append(Fire(previous, w(fire[0]), w(fire[1])))
        previous = 2 * w(fire[1])
    final = nn.Conv3d(previous, 2, 1)
    model = nn.Sequential(*layers, nn.Dropout(0.5), final, nn.ReLU(inplace=True), nn.AdaptiveAvgPool3d(1),
                          nn.Flatten())
    for module in model.modules():   # SqueezeNet's own initialisation (without it, it does not start learning)
        if isinstance(module, nn.Conv3d):
            nn.init.normal_(module.weight, 0.0, 0.01) if module is final else nn.init.kaiming_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    return model


class Inception(nn.Module):
    """GoogLeNet's module: 1x1, 1x1 -> 3x3, 1x1 -> 5x5 and 3x3 pool -> 1x1 branches
    concatenated (batch norm as in torchvision's GoogLeNet)."""

    def __init__(self, a: int, b1: int, r3: int, b3: int, r5: int, b5: int, pool: int):
        super().__init__()
        self.branches = nn.ModuleList([
            nn.Sequential(*_conv(a, b1, 1, batch_norm=True)),
            nn.Sequential(*_conv(a, r3, 1, batch_norm=True), *_conv(r3, b3, 3, batch_norm=True)),
            nn.Sequential(*_conv(a, r5, 1, batch_norm=True), *_conv(r5, b5, 5, batch_norm=True)),
            nn.Sequential(nn.MaxPool3d(3, 1, 1), *_conv(a, pool, 1, batch_norm=True))])
        self.channels = b1 + b3 + b5 + pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], 1)


def googlenet(width: float = 1.0) -> nn.Module:
    w = lambda n: _channels(n, width)   # noqa: E731
    layers = [*_conv(1, w(64), 7, 2, True), *_conv(w(64), w(192), 3, batch_norm=True), nn.MaxPool3d(2)]  # 32 -> 8
    previous = w(192)
    for spec in ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64), "pool", (192, 96, 208, 16, 48, 64),
                 (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64), (112, 144, 288, 32, 64, 64),
                 (256, 160, 320, 32, 128, 128), "pool", (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)):
        if spec == "pool":
            layers.append(nn.MaxPool3d(2))
            continue
        module = Inception(previous, *map(w, spec))
        layers.append(module)
        previous = module.channels
    return nn.Sequential(*layers, nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Dropout(0.4), nn.Linear(previous, 2))


def resnet101(width: float = 1.0) -> nn.Module:
    from monai.networks.nets import ResNet   # MONAI's 3D ResNet (bottleneck blocks, He et al. 2016)
    return ResNet(block="bottleneck", layers=(3, 4, 23, 3), block_inplanes=[_channels(n, width) for n in
                                                                             (64, 128, 256, 512)],
                  spatial_dims=3, n_input_channels=1, conv1_t_size=7, conv1_t_stride=2, num_classes=2)


def dcnn(width: float = 1.0) -> nn.Module:
    """The paper's own DCNN classifier (``network.ModalityNet``; width 1.0: 16-32-64-128)."""
    return network.ModalityNet(tuple(_channels(n, width) for n in network.DEFAULT_WIDTHS))


BUILDERS: dict[str, Callable[[float], nn.Module]] = {
    "dcnn": dcnn, "alexnet": alexnet, "vgg19": vgg19, "squeezenet": squeezenet, "googlenet": googlenet,
    "resnet101": resnet101}


def classifier(name: str, width: float = 1.0) -> nn.Module:
    """The 3D classifier ``name`` (one of ``NAMES``) at ``width`` times its published channels."""
    if name not in BUILDERS:
        raise ValueError(f"unknown backbone {name!r}: choose one of {', '.join(NAMES)}")
    return BUILDERS[name](width)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- registration networks (Tables 1-2)
#
# Each maps the pair on the network grid, (B, 2, 32, 32, 32) (fixed MR, moving CT), to the six
# scaled rigid parameters (``network.PARAMETER_SCALE``) and has ``features(pair)``: what the
# paper's ANN reads when the network serves as a feature extractor (Table 2).

FEATURES = 128   # per volume for the two-branch networks, as the paper's DCNN


class TwoBranch(nn.Module):
    """One encoder for both volumes (shared weights), features concatenated, then a head:
    AIRNet and both networks of Sloan et al."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head

    def features(self, pair: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.encoder(pair[:, :1]).flatten(1), self.encoder(pair[:, 1:2]).flatten(1)], 1)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.encoder(pair[:, :1]), self.encoder(pair[:, 1:2])], 1))


class EarlyFusion(nn.Module):
    """Both volumes as two channels of one CNN, then fully connected layers: Miao et al. and
    Zheng et al. (their regressors read one image built from both)."""

    def __init__(self, convolutions: nn.Module, flat: int, hidden: int):
        super().__init__()
        self.convolutions = convolutions
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(inplace=True))
        self.out = nn.Linear(hidden, 6)

    def features(self, pair: torch.Tensor) -> torch.Tensor:
        return self.hidden(self.convolutions(pair))

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(pair))


def airnet(width: float = 1.0) -> nn.Module:
    """AIRNet (Chee and Wu 2018, arXiv:1810.02583): a 3D DenseNet encoder per volume (MONAI's
    DenseNet: dense blocks of batch norm -> ReLU -> convolution with transitions), the two
    feature vectors concatenated and regressed by fully connected layers (six rigid
    parameters here where AIRNet gives twelve affine ones)."""
    from monai.networks.nets import DenseNet
    encoder = DenseNet(spatial_dims=3, in_channels=1, out_channels=FEATURES, init_features=_channels(32, width),
                       growth_rate=_channels(16, width), block_config=(4, 4, 4))
    return TwoBranch(encoder, nn.Sequential(nn.Linear(2 * FEATURES, _channels(512, width)), nn.ReLU(inplace=True),
                                            nn.Linear(_channels(512, width), 6)))


def _sloan_encoder(width: float) -> nn.Sequential:
    """Sloan et al.'s feature layers: 3x3 convolutions with batch norm, pooled four times."""
    layers, previous = [], 1
    for count in (32, 64, 128, 256):
        layers += _conv(previous, _channels(count, width), 3, batch_norm=True) + [nn.MaxPool3d(2)]
        previous = _channels(count, width)
    return nn.Sequential(*layers)   # 32 -> 2


def sloan_cnn(width: float = 1.0) -> nn.Module:
    """Sloan, Goatman and Siebert 2018 (BIOIMAGING), CNN: per-volume feature layers,
    concatenated, more convolutions, then fully connected layers to the six parameters."""
    c = _channels(256, width)
    head = nn.Sequential(*_conv(2 * c, c, 3, batch_norm=True), nn.Flatten(), nn.Linear(c * 8, _channels(512, width)),
                         nn.ReLU(inplace=True), nn.Linear(_channels(512, width), 6))
    return _PooledFeatures(TwoBranch(_sloan_encoder(width), head))


def sloan_fcn(width: float = 1.0) -> nn.Module:
    """Sloan et al. 2018, FCN: the same feature layers, then convolutions only, the last with
    six channels, globally averaged (no fully connected layer)."""
    c = _channels(256, width)
    head = nn.Sequential(*_conv(2 * c, c, 3, batch_norm=True), nn.Conv3d(c, 6, 1), nn.AdaptiveAvgPool3d(1),
                         nn.Flatten())
    return _PooledFeatures(TwoBranch(_sloan_encoder(width), head))


class _PooledFeatures(nn.Module):
    """A two-branch network whose ANN features are its encoder's maps averaged globally."""

    def __init__(self, model: TwoBranch):
        super().__init__()
        self.model = model

    def features(self, pair: torch.Tensor) -> torch.Tensor:
        encode = self.model.encoder
        return torch.cat([encode(pair[:, :1]).mean((2, 3, 4)), encode(pair[:, 1:2]).mean((2, 3, 4))], 1)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        return self.model(pair)


def miao(width: float = 1.0) -> nn.Module:
    """Miao, Wang and Liao 2016 (IEEE TMI 35:1352), CNN regression: two 5x5 convolution +
    max-pool stages (20 and 50 channels) and fully connected layers (1024) to the parameters."""
    c1, c2 = _channels(20, width), _channels(50, width)
    convolutions = nn.Sequential(*_conv(2, c1, 5), nn.MaxPool3d(2), *_conv(c1, c2, 5), nn.MaxPool3d(2),
                                 nn.MaxPool3d(2))   # 32 -> 4 (a third pooling keeps the FC layer small in 3D)
    return EarlyFusion(convolutions, c2 * 64, _channels(1024, width))


def zheng(width: float = 1.0) -> nn.Module:
    """Zheng et al. 2018 (J. Med. Imaging 5:021204), a VGG-type regression: VGG-16's thirteen
    3x3 convolutions in five pooled stages and fully connected layers to the parameters."""
    stages, channels = _vgg(2, (2, 2, 3, 3, 3), width)
    return EarlyFusion(stages, channels, _channels(1024, width))


def dcnn_registration(width: float = 1.0) -> nn.Module:
    """The paper's own DCNN (``network.RegistrationNet``; width 1.0: 16-32-64-128)."""
    return network.RegistrationNet(tuple(_channels(n, width) for n in network.DEFAULT_WIDTHS))


REGRESSORS: dict[str, Callable[[float], nn.Module]] = {
    "dcnn": dcnn_registration, "airnet": airnet, "sloan-cnn": sloan_cnn, "sloan-fcn": sloan_fcn, "miao": miao,
    "zheng": zheng}


def regressor(name: str, width: float = 1.0) -> nn.Module:
    """The registration network ``name`` (one of ``REGRESSORS``) at ``width`` times its
    published channels."""
    if name not in REGRESSORS:
        raise ValueError(f"unknown registration backbone {name!r}: choose one of {', '.join(REGRESSORS)}")
    return REGRESSORS[name](width)
