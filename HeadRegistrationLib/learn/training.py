"""Training of the registration DCNN (paper: "Registration of multi-modal images").

The paper's schedule: SGD with momentum 0.9, 30 epochs, learning rate 1e-3 then 1e-4 from
epoch 20, half mean squared error on the six parameters. Validation uses the held-out
subjects of the set (``dataset`` splits by subject). Every epoch ends with a checkpoint
(``checkpoint.pt``: weights, optimiser, epoch, history, settings), so an interrupted run
resumes where it stopped. On a GPU it uses mixed precision; under ``torchrun`` (WORLD_SIZE
> 1) it trains data-parallel, one process per GPU, with no change to the call.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from ..data import dataset
from ..register import network
from . import backbones
from ..core.errors import HeadRegError
from ..core.resources import torch_device

PAPER_SCHEDULE = {"epochs": 30, "learning_rate": 1e-3, "drop_epoch": 20, "drop_factor": 0.1, "momentum": 0.9}


class PairExamples(Dataset):
    """A split of a built set as (volumes float32 (2, z, y, x), scaled parameters (6,));
    ``pool`` > 1 averages blocks of pool^3 voxels (a coarser input grid from the same set)."""

    def __init__(self, folder, split: str, index: str = "index.csv", pool: int = 1):
        self.examples = dataset.TrainingSet(folder, split, index)
        self.targets = self.examples.parameters / np.array(network.PARAMETER_SCALE, dtype=np.float32)
        self.pool = pool

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int):
        volumes = torch.from_numpy(self.examples.volumes(i))
        if self.pool > 1:
            volumes = torch.nn.functional.avg_pool3d(volumes[None], self.pool)[0]
        return volumes, torch.from_numpy(self.targets[i])


def _save_atomically(state: dict, path: Path) -> None:
    temporary = path.with_name(f".{os.getpid()}.partial.{path.name}")
    torch.save(state, temporary)
    os.replace(temporary, path)


def train_registration(folder, out, epochs: int = PAPER_SCHEDULE["epochs"], batch_size: int = 8,
                       learning_rate: float = PAPER_SCHEDULE["learning_rate"],
                       drop_epoch: int = PAPER_SCHEDULE["drop_epoch"], widths=network.DEFAULT_WIDTHS,
                       seed: int = 0, device: str = "auto", index: str = "index.csv", pool: int = 1,
                       progress: bool = True, workers: int = 0, backbone: str = "dcnn",
                       width: float = 1.0, optimiser: str = "sgd") -> list[dict]:
    """Train (or resume) the registration DCNN on the set in ``folder``; checkpoints and
    the final weights (``model.pt``) go to ``out``; ``workers`` processes read the examples
    (0: this process). ``backbone``: another network of ``backbones.REGRESSORS`` (the
    paper's comparison, Tables 1-2) at ``width`` times its published channels, trained the
    same way. ``optimiser`` "adam": Adam at ``learning_rate`` with the same drop, instead
    of the paper's SGD. Returns the per-epoch history."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank = dist.get_rank()
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    else:
        rank = 0
    train, validation = PairExamples(folder, "train", index, pool), PairExamples(folder, "validation", index, pool)
    if len(train) == 0:
        raise HeadRegError(f"{folder} has no training examples")
    if backbone != "dcnn" and tuple(train[0][0].shape[1:]) != backbones.INPUT_SHAPE:
        raise HeadRegError(f"the compared networks read the pair on a {'x'.join(map(str, backbones.INPUT_SHAPE))} "
                           f"grid; {folder} pooled by {pool} gives {'x'.join(map(str, train[0][0].shape[1:]))}")
    place = torch_device(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"set": str(Path(folder).resolve()), "index": index, "batch_size": batch_size,
                "learning_rate": learning_rate, "drop_epoch": drop_epoch, "widths": list(widths), "seed": seed,
                "pool": pool,
                "momentum": PAPER_SCHEDULE["momentum"], "parameter_scale": list(network.PARAMETER_SCALE)}
    if backbone != "dcnn":
        settings.update(backbone=backbone, width=width)
    if optimiser != "sgd":
        settings.update(optimiser=optimiser)

    torch.manual_seed(seed)
    model = _network(settings).to(place)
    optimiser = (torch.optim.Adam(model.parameters(), lr=learning_rate) if optimiser == "adam" else
                 torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=PAPER_SCHEDULE["momentum"]))
    history, first_epoch = [], 0
    checkpoint_path = out / "checkpoint.pt"
    if checkpoint_path.exists():
        checkpoint = torch.load(checkpoint_path, map_location=place, weights_only=True)
        if checkpoint["settings"] != settings:
            raise HeadRegError(f"{checkpoint_path} was made with other settings; choose another --out")
        model.load_state_dict(checkpoint["model"])
        optimiser.load_state_dict(checkpoint["optimiser"])
        history, first_epoch = checkpoint["history"], checkpoint["epoch"] + 1
    trained = torch.nn.parallel.DistributedDataParallel(model) if distributed else model

    sampler = DistributedSampler(train, seed=seed) if distributed else None
    generator = torch.Generator().manual_seed(seed)
    use_amp = place.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    for epoch in range(first_epoch, epochs):
        for group in optimiser.param_groups:
            group["lr"] = learning_rate * (PAPER_SCHEDULE["drop_factor"] if epoch >= drop_epoch else 1.0)
        if sampler is not None:
            sampler.set_epoch(epoch)
        generator.manual_seed(seed * 1000 + epoch)   # the same order after a resume
        loader = DataLoader(train, batch_size=batch_size, shuffle=sampler is None, sampler=sampler,
                            generator=generator, drop_last=len(train) > batch_size, num_workers=workers,
                            pin_memory=place.type == "cuda")
        trained.train()
        losses = []
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", file=sys.stderr, leave=False,
                   disable=(rank != 0) or not progress)
        for volumes, targets in bar:
            volumes, targets = volumes.to(place), targets.to(place)
            with torch.autocast(place.type, dtype=torch.float16, enabled=use_amp):
                loss = network.half_mse(trained(volumes), targets)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses):.4f}")
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)),
                  "validation_loss": evaluate(model, validation, place, batch_size, workers) if len(validation)
                  else None,
                  "learning_rate": optimiser.param_groups[0]["lr"]}
        history.append(record)
        if rank == 0:
            _save_atomically({"model": model.state_dict(), "optimiser": optimiser.state_dict(), "epoch": epoch,
                              "history": history, "settings": settings}, checkpoint_path)
            if progress:
                print(f"epoch {epoch + 1}/{epochs}: train {record['train_loss']:.4f}, validation "
                      f"{record['validation_loss'] if record['validation_loss'] is None else round(record['validation_loss'], 4)}",
                      file=sys.stderr)
    if rank == 0:
        _save_atomically({"model": model.state_dict(), "settings": settings, "history": history}, out / "model.pt")
    if distributed:
        dist.barrier()   # every process returns once model.pt is written
        dist.destroy_process_group()
    return history


def _network(settings: dict) -> torch.nn.Module:
    if settings.get("backbone", "dcnn") == "dcnn":
        return network.RegistrationNet(tuple(settings["widths"]))
    return backbones.regressor(settings["backbone"], settings["width"])


def load_registration(path, place: torch.device = torch.device("cpu")) -> tuple[torch.nn.Module, dict]:
    """A trained registration network (``model.pt`` of ``train_registration``) and its settings."""
    saved = torch.load(path, map_location=place, weights_only=True)
    model = _network(saved["settings"])
    model.load_state_dict(saved["model"])
    return model.to(place).eval(), saved["settings"]


@torch.no_grad()
def evaluate(model: torch.nn.Module, examples: PairExamples, place: torch.device, batch_size: int = 8,
             workers: int = 0) -> float:
    """Mean half-MSE of ``model`` over ``examples`` (scaled parameters)."""
    model.eval()
    total, count = 0.0, 0
    for volumes, targets in DataLoader(examples, batch_size=batch_size, num_workers=workers):
        prediction = model(volumes.to(place))
        total += float(network.half_mse(prediction, targets.to(place))) * len(targets)
        count += len(targets)
    return total / max(count, 1)


@torch.no_grad()
def predict(model: torch.nn.Module, examples: PairExamples, place: torch.device, batch_size: int = 8,
            features: bool = False, workers: int = 0) -> np.ndarray:
    """Parameters in degrees and mm (N, 6), or with ``features`` the trunk's (N, 2 x features)."""
    model.eval()
    outputs = []
    for volumes, _ in DataLoader(examples, batch_size=batch_size, num_workers=workers):
        volumes = volumes.to(place)
        outputs.append((model.features(volumes) if features else model(volumes)).float().cpu().numpy())
    result = np.concatenate(outputs) if outputs else np.zeros((0, 6), dtype=np.float32)
    return result if features else result * np.array(network.PARAMETER_SCALE, dtype=np.float32)
