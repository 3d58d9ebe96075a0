"""Training sets on disk (paper: "Data augmentation"): real anatomy, a synthesised partner,
known rigid copies, network-ready arrays, and a manifest that makes a set reproducible.

A *subject* is one real head: an MR whose CT is synthesised, a CT whose MR is synthesised,
a real MR/CT pair (the MNI152 T1 and ``scct`` templates), or a phantom head (both rendered
from its labels). Each subject is prepared once (working copies at 2 mm, tissue classes,
the CT template carried onto it), then each copy ``k`` draws from its own seed
(``augmentation.copy_seed``) a scanner appearance for both volumes, a rigid misalignment
``T`` (fixed = MR -> moving = CT) about the network grid's centre, and fields of view.

On disk, under ``OUT``::

    copies/<subject>/<k>.npy    float16 (2, z, y, x): fixed MR, moving CT on the network grid
    copies/<subject>/<k>.tfm    the truth T as an ITK transform
    copies/<subject>/<k>.json   six parameters, matrix, seed, appearance (written last: done)
    qa/<subject>.png            copy 0 as MR with CT bone edges, for a person to judge
    manifest.json, index.csv    sources with checksums, settings, splits, every copy

A build is resumable (copies whose record exists are skipped) and each subject is an
independent task. Copy ``k`` of a subject does not depend on how many copies are asked
for, so a set can be grown, and its first n copies form the set of n copies.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import __version__
from ..core import batch, geometry, qa
from . import augmentation, phantom, synthesis, tissues
from ..register import preprocessing, symmetry
from ..core.errors import HeadRegError
from ..core.files import write_atomically
from ..core.transform_io import write_transform

WORKING_SPACING_MM = 2.0
FORMAT_VERSION = 1
MODALITIES = ("MR", "CT")   # channel 0 is the fixed MR, channel 1 the moving CT

def default_data_dir() -> Path:
    """``$HEADREG_DATA``, else ``../shared/data`` beside the source checkout."""
    return Path(os.environ.get("HEADREG_DATA") or Path(__file__).resolve().parents[2] / ".." / "shared" / "data")


def shared_subjects(data_dir) -> list[dict]:
    """The real heads of ``../shared/data`` (data/README.md) that are present."""
    catalogue = [
        {"id": "mni152", "kind": "pair", "mr": "templates/MNI152_T1_2mm.nii.gz", "ct": "templates/scct.nii.gz",
         "ct_units": "cormack"},
        {"id": "colin27", "kind": "mr", "mr": "templates/ch2.nii.gz", "weighting": "t1"},
        {"id": "seg3d-epilepsy", "kind": "mr", "mr": "seg3d_epilepsy/MR.nii.gz", "weighting": "t1",
         "skull": "seg3d_epilepsy/Skull.nrrd"},
        {"id": "rire-001", "kind": "mr", "mr": "rire_training_001/training_001_mr_T1.mha", "weighting": "t1"},
        {"id": "vtk-head-t2", "kind": "mr", "mr": "mr_small/HeadMRVolume.mhd", "weighting": "t2"},
        {"id": "ct-pitch-phantom", "kind": "ct", "ct": "ct_phantom/CT_pitch.nii.gz", "ct_units": "two_peaks"},
        {"id": "tcga-hnsc-0002", "kind": "ct", "ct": "tcga_hnsc_ct/0002.nii.gz", "ct_units": "hu_plus_1024"},
        {"id": "tcga-hnsc-0003", "kind": "ct", "ct": "tcga_hnsc_ct/0003.nii.gz", "ct_units": "hu_plus_1024"},
    ]
    data_dir = Path(data_dir)
    return [dict(s, data_dir=str(data_dir)) for s in catalogue
            if all((data_dir / s[key]).exists() for key in ("mr", "ct", "skull") if key in s)]


def phantom_subjects(count: int) -> list[dict]:
    """``count`` procedural heads (phantom seeds 0, 1, ...)."""
    return [{"id": f"phantom-{k}", "kind": "phantom", "seed": k} for k in range(count)]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_files(subject: dict) -> dict[str, str]:
    """Source file -> sha256 of a subject (nothing for a phantom)."""
    root = Path(subject.get("data_dir", "."))
    return {subject[key]: _sha256(root / subject[key]) for key in ("mr", "ct", "skull") if key in subject}


# ---------------------------------------------------------------- one subject

def _read(subject: dict, key: str) -> sitk.Image:
    return sitk.ReadImage(str(Path(subject["data_dir"]) / subject[key]), sitk.sitkFloat32)


def ct_in_hounsfield(image: sitk.Image, units: str) -> sitk.Image:
    """A CT in Hounsfield units from ``units``: "hu", "hu_plus_1024" (as many CTs are
    stored), "cormack" or "two_peaks"."""
    if units == "hu_plus_1024":
        return image - 1024.0
    if units == "cormack":
        return synthesis.hounsfield_from_cormack(image)
    if units == "two_peaks":
        return synthesis.hounsfield_from_two_peaks(image)
    if units == "hu":
        return image
    raise HeadRegError(f"unknown CT units {units!r}: choose hu, hu_plus_1024, cormack or two_peaks")


def at_working_spacing(image: sitk.Image) -> sitk.Image:
    """The image at ``WORKING_SPACING_MM`` where it is finer, as it is where it is not."""
    if min(image.GetSpacing()) >= WORKING_SPACING_MM:
        return sitk.Cast(image, sitk.sitkFloat32)
    return symmetry.resample_isotropic(image, WORKING_SPACING_MM)


def prepare_subject(subject: dict, templates: tuple[sitk.Image, sitk.Image] | None) -> dict:
    """What every copy of a subject shares: the real volume(s) and tissue classes at the
    working resolution, and the fixed head's centre. ``templates``: (template MR, template
    CT in HU), used to give a real MR its bone and air."""
    kind = subject["kind"]
    prepared = {"kind": kind}
    if kind == "phantom":
        labels = phantom.paint_head(subject["seed"], spacing=WORKING_SPACING_MM)
        lookup = np.zeros(256, dtype=np.uint8)
        for label, tissue_class, _ in tissues.PHANTOM_TISSUES.values():
            lookup[label] = tissue_class
        prepared["classes"] = sitk.GetImageFromArray(lookup[sitk.GetArrayViewFromImage(labels)])
        prepared["classes"].CopyInformation(labels)
        reference = prepared["classes"]
    elif kind == "mr":
        mr = at_working_spacing(_read(subject, "mr"))
        skull = sitk.ReadImage(str(Path(subject["data_dir"]) / subject["skull"])) if "skull" in subject else None
        template_hu = None
        if skull is None and templates is not None:
            template_hu = synthesis.carry_template(mr, *templates)
        prepared.update(mr=mr, template_hu=template_hu,
                        classes=synthesis.classes_from_mr(mr, subject["weighting"], skull, template_hu))
        reference = mr
    elif kind == "ct":
        ct = at_working_spacing(ct_in_hounsfield(_read(subject, "ct"), subject["ct_units"]))
        prepared.update(ct=ct, classes=synthesis.classes_from_ct(ct))
        reference = ct
    elif kind == "pair":
        mr = at_working_spacing(_read(subject, "mr"))
        ct = sitk.Resample(ct_in_hounsfield(_read(subject, "ct"), subject["ct_units"]), mr, sitk.Transform(),
                           sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
        prepared.update(mr=mr, ct=ct)
        reference = mr
    else:
        raise HeadRegError(f"unknown subject kind {kind!r}")
    if "classes" in prepared:
        head = sitk.Cast(prepared["classes"] != tissues.AIR, sitk.sitkUInt8)
    else:
        head = symmetry.head_mask(reference)
    prepared["head_center"] = symmetry.symmetry_frame(reference, head).center
    return prepared


def _mr_appearance(mr: sitk.Image, rng: np.random.Generator) -> sitk.Image:
    """A real MR as another scanner might give it: a power-law contrast change, a bias
    field of up to 20 % and extra Rician noise."""
    values = np.maximum(sitk.GetArrayFromImage(mr), 0.0)
    scale = float(np.percentile(values, 99)) or 1.0
    values = (values / scale) ** rng.uniform(0.8, 1.25) * synthesis.bias_field(values.shape, rng, rng.uniform(0, 0.2))
    out = sitk.GetImageFromArray(synthesis.rician(values, rng.uniform(0.0, 0.04), rng).astype(np.float32))
    out.CopyInformation(mr)
    return out


def _ct_appearance(ct: sitk.Image, rng: np.random.Generator) -> sitk.Image:
    """A real CT with extra noise of 0-15 HU."""
    values = sitk.GetArrayFromImage(ct)
    out = sitk.GetImageFromArray((values + rng.normal(0.0, rng.uniform(0.0, 15.0), values.shape)).astype(np.float32))
    out.CopyInformation(ct)
    return out


def render_copy_pair(prepared: dict, rng: np.random.Generator) -> tuple[sitk.Image, sitk.Image, dict]:
    """An aligned (MR, CT in HU) pair of the subject with a fresh scanner appearance."""
    kind = prepared["kind"]
    weighting = tissues.RENDERED[rng.integers(len(tissues.RENDERED))]
    if kind == "phantom":
        mr = synthesis.render_mr(prepared["classes"], rng, weighting)
        ct = synthesis.render_ct(prepared["classes"], rng)
        appearance = {"mr": f"synthesised {weighting}", "ct": "synthesised"}
    elif kind == "mr":
        mr = _mr_appearance(prepared["mr"], rng)
        ct = synthesis.render_ct(prepared["classes"], rng, prepared["template_hu"])
        appearance = {"mr": "real", "ct": "synthesised"}
    elif kind == "ct":
        mr = synthesis.render_mr(prepared["classes"], rng, weighting)
        ct = _ct_appearance(prepared["ct"], rng)
        appearance = {"mr": f"synthesised {weighting}", "ct": "real"}
    else:
        mr, ct = _mr_appearance(prepared["mr"], rng), _ct_appearance(prepared["ct"], rng)
        appearance = {"mr": "real", "ct": "real"}
    return mr, ct, appearance


def _field_of_view(array: np.ndarray, grid: sitk.Image, rng: np.random.Generator, background: float) -> dict:
    """Half the time, keep only an axial slab (100-200 mm thick, within 20 mm of the grid
    centre) of a volume on the network grid, as a scanner's field of view would."""
    if rng.uniform() < 0.5:
        return {"slab_mm": None}
    thickness, offset = rng.uniform(100.0, 200.0), rng.uniform(-20.0, 20.0)
    z = (np.arange(array.shape[0]) - (array.shape[0] - 1) / 2) * grid.GetSpacing()[2]
    array[np.abs(z - offset) > thickness / 2] = background
    return {"slab_mm": [float(offset - thickness / 2), float(offset + thickness / 2)]}


def make_copy(prepared: dict, seed, settings: dict) -> dict:
    """One training example: network-ready fixed and moving arrays (2, z, y, x float32),
    the truth ``T`` and its six parameters, and how it was drawn."""
    rng = np.random.default_rng(seed)
    mr, ct, appearance = render_copy_pair(prepared, rng)
    center = prepared["head_center"] + rng.uniform(-settings["center_jitter_mm"], settings["center_jitter_mm"], 3)
    grid = preprocessing.network_grid(center, settings["grid_size"], settings["grid_spacing_mm"])
    grid_center = geometry.grid_center(grid)
    truth = augmentation.random_pose(rng, grid_center, settings["max_angle_deg"], settings["max_shift_mm"])
    fixed = preprocessing.on_grid(mr, grid, background=0.0)
    moving = preprocessing.on_grid(ct, grid, geometry.invert(truth), background=-1000.0)  # the CT turned by T
    fov = {"fixed": _field_of_view(fixed, grid, rng, 0.0), "moving": _field_of_view(moving, grid, rng, -1000.0)}
    volumes = np.stack([preprocessing.normalise_mr(fixed), preprocessing.normalise_ct(moving)])
    return {"volumes": volumes, "truth": truth, "grid": grid, "mr": mr, "ct": ct,
            "record": {"parameters": geometry.parameters_from_matrix(truth, grid_center).tolist(),
                       "matrix": truth.tolist(), "grid_center": grid_center.tolist(),
                       "grid_origin": list(grid.GetOrigin()), "seed": [int(s) for s in seed],
                       "appearance": appearance, "field_of_view": fov}}


# ---------------------------------------------------------------- a build

def copy_paths(out, subject: str, k: int) -> dict[str, Path]:
    folder = Path(out) / "copies" / subject
    return {name: folder / f"{k:03d}.{name}" for name in ("npy", "tfm", "json")}


def read_templates(data_dir: Path) -> tuple[sitk.Image, sitk.Image] | None:
    """(MNI152 T1, scct in HU) from ``data_dir/templates``, or None where they are missing."""
    mr_path, ct_path = data_dir / "templates" / "MNI152_T1_2mm.nii.gz", data_dir / "templates" / "scct.nii.gz"
    if not (mr_path.exists() and ct_path.exists()):
        return None
    return (sitk.ReadImage(str(mr_path), sitk.sitkFloat32),
            synthesis.hounsfield_from_cormack(sitk.ReadImage(str(ct_path), sitk.sitkFloat32)))


def build_subject(task: dict) -> dict:
    """All copies of one subject not yet on disk (a task of ``batch.run_tasks``)."""
    subject, settings, out = task["subject"], task["settings"], Path(task["out"])
    pending = [k for k in range(settings["copies"]) if not copy_paths(out, subject["id"], k)["json"].exists()]
    if pending:
        templates = read_templates(Path(subject.get("data_dir", default_data_dir())))
        prepared = prepare_subject(subject, templates)
        for k in pending:
            paths = copy_paths(out, subject["id"], k)
            paths["npy"].parent.mkdir(parents=True, exist_ok=True)
            example = make_copy(prepared, augmentation.copy_seed(settings["seed"], subject["id"], k), settings)
            write_atomically(paths["npy"], lambda p: np.save(p, example["volumes"].astype(np.float16)))
            write_transform(example["truth"], paths["tfm"])
            if k == 0:
                (out / "qa").mkdir(exist_ok=True)
                qa.bone_edge_figure(example["mr"], example["ct"], out / "qa" / f"{subject['id']}.png",
                                    example["truth"], title=f"{subject['id']}, copy 0: MR with CT bone edges / CT",
                                    center=geometry.grid_center(example["grid"]))
            batch.write_json({"subject": subject["id"], "copy": k, "split": task["split"], **example["record"]},
                             paths["json"])
    return {"id": subject["id"], "status": "ok", "built": len(pending)}


def build(out, subjects: list[dict], settings: dict, workers: int = 1, split_fractions=(0.6, 0.2, 0.2),
          fixed_splits: dict | None = None, scheduler: str | None = None) -> dict:
    """Build (or resume) a training set under ``out``, one task per subject (``workers``
    and ``scheduler`` as ``core.batch.run_tasks``); returns the manifest."""
    out = Path(out)
    ids = [s["id"] for s in subjects]
    if len(set(ids)) != len(ids):
        raise HeadRegError("subject ids must be unique")
    manifest_path = out / "manifest.json"
    fixed_splits = dict(fixed_splits or {})
    if manifest_path.exists():
        previous = json.loads(manifest_path.read_text())
        if {**previous["settings"], "copies": None} != {**settings, "copies": None}:   # more copies is fine
            raise HeadRegError(f"{out} holds a set built with other settings; choose another folder")
        # Subjects already in the set keep their split; only new ones are assigned.
        fixed_splits = {**{s: v["split"] for s, v in previous["subjects"].items() if s in ids}, **fixed_splits}
    splits = augmentation.split_subjects(ids, split_fractions, settings["seed"], fixed_splits)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [{"id": s["id"], "subject": s, "settings": settings, "split": splits[s["id"]], "out": str(out)}
             for s in subjects]
    records, _ = batch.run_tasks(
        tasks, build_subject,
        lambda t: all(copy_paths(out, t["id"], k)["json"].exists() for k in range(settings["copies"])),
        workers, "subjects", "subject", scheduler)
    failed = [r for r in records if r.get("status") != "ok"]
    manifest = write_manifest(out, subjects, settings, splits)
    manifest["failed"] = [{"id": r["id"], "error": r.get("error")} for r in failed]
    return manifest


def write_manifest(out: Path, subjects: list[dict], settings: dict, splits: dict[str, str],
                   copies: int | None = None, suffix: str = "") -> dict:
    """``manifest<suffix>.json`` and ``index<suffix>.csv`` over the first ``copies`` copies
    of every subject (all of them when None) that are on disk."""
    copies = settings["copies"] if copies is None else copies
    rows = []
    for subject in subjects:
        for k in range(copies):
            record = batch.read_json(copy_paths(out, subject["id"], k)["json"])
            if record is None:
                continue
            rows.append({"split": splits[subject["id"]], "subject": subject["id"], "copy": k,
                         "volumes": str(copy_paths(out, subject["id"], k)["npy"].relative_to(out)),
                         **dict(zip(geometry.PARAMETER_NAMES, record["parameters"]))})
    manifest = {
        "format": FORMAT_VERSION, "headregistration": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": settings, "copies_per_subject": copies, "modalities": list(MODALITIES),
        "parameters": list(geometry.PARAMETER_NAMES),
        "subjects": {s["id"]: {"split": splits[s["id"]], "kind": s["kind"], "seed": s.get("seed"),
                               "files": source_files(s)} for s in subjects},
        "examples": len(rows),
    }

    def write_index(path):
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["split", "subject", "copy", "volumes",
                                                        *geometry.PARAMETER_NAMES])
            writer.writeheader()
            writer.writerows(rows)

    write_atomically(out / f"index{suffix}.csv", write_index)
    write_atomically(out / f"manifest{suffix}.json", lambda p: Path(p).write_text(json.dumps(manifest, indent=2)))
    return manifest


# ---------------------------------------------------------------- reading back

class TrainingSet:
    """The examples of one split of a built set: ``volumes(i)`` (2, z, y, x float32) and
    ``parameters`` (N, 6). Volumes are memory-mapped, so reading is cheap."""

    def __init__(self, folder, split: str = "train", index: str = "index.csv"):
        self.folder = Path(folder)
        if not (self.folder / index).exists():
            raise HeadRegError(f"{self.folder} holds no {index}: build the set first")
        with open(self.folder / index, newline="") as handle:
            self.rows = [r for r in csv.DictReader(handle) if r["split"] == split]
        self.parameters = np.array([[float(r[name]) for name in geometry.PARAMETER_NAMES] for r in self.rows],
                                   dtype=np.float32).reshape(-1, 6)
        self.subjects = sorted({r["subject"] for r in self.rows})

    def __len__(self) -> int:
        return len(self.rows)

    def volumes(self, i: int) -> np.ndarray:
        return np.load(self.folder / self.rows[i]["volumes"], mmap_mode="r").astype(np.float32)


def splits_from(manifest_path) -> dict[str, str]:
    """Subject -> split of another set's manifest.json, or of the set a model card names."""
    try:
        record = json.loads(Path(manifest_path).read_text())
        subjects = record["subjects"] if "subjects" in record else record["data"]["subjects"]
        return {s: v["split"] for s, v in subjects.items()}
    except OSError as error:
        raise HeadRegError(f"cannot read {manifest_path}: {error.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise HeadRegError(f"{manifest_path} is neither a training set's manifest.json nor a model card") from None
