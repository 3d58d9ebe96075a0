"""Benchmark pairs as users meet them: real anatomy in several contrasts, fields of view
that differ between the two scanners, thick slices, slabs cut at an angle, and any
orientation (issue 16, item 3).

A case is built in three steps, each with a known effect on the truth:

1. A *source*: an MR and a CT of one head, aligned in one physical space (a real MR with a
   synthesised CT, a real CT with a synthesised MR, the MNI152/scct templates, or the
   phantom). Sources are cached under ``$HEADREG_CASES`` (default ``/tmp/headreg-cases``).
2. A *view*: each volume resliced onto the grid a scanner would give it (slice thickness,
   gantry tilt, field of view: a slab, the head only, head and neck, down to the chest).
   Reslicing keeps physical space, so the two still line up.
3. A *motion* of the CT through its header (origin and direction): the CT given in another
   orientation, every voxel as scanned. ``truth`` (fixed MR -> moving CT) is that motion.

    from cases import make_case, DATASETS
    fixed, moving, truth = make_case("colin-t2/mr-slab", seed=3, angle=40.0, distance=20.0)

Datasets are "<source>/<view>"; ``DATASETS`` lists those the benchmarks use.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from HeadRegistrationLib.core import geometry
from HeadRegistrationLib.data import dataset, phantom, synthesis
from HeadRegistrationLib.register import symmetry

DATA = dataset.default_data_dir()
CACHE = Path(os.environ.get("HEADREG_CASES", "/tmp/headreg-cases"))
BINS = ((0, 15), (15, 45), (45, 90), (90, 180))

# Real MRs (``kind`` mr: CT synthesised) and real CTs (``kind`` ct: MR synthesised).
REAL = {
    "seg3d": {"kind": "mr", "path": "seg3d_epilepsy/MR.nii.gz", "skull": "seg3d_epilepsy/Skull.nrrd"},
    "colin": {"kind": "mr", "path": "templates/ch2.nii.gz"},
    "rire": {"kind": "mr", "path": "rire_training_001/training_001_mr_T1.mha"},
    "tcga2": {"kind": "ct", "path": "tcga_hnsc_ct/0002.nii.gz", "offset": 1024.0},
    "tcga3": {"kind": "ct", "path": "tcga_hnsc_ct/0003.nii.gz", "offset": 1024.0},
}


# ---------------------------------------------------------------- sources

def _cached(name: str, build) -> tuple[sitk.Image, sitk.Image]:
    folder = CACHE / name
    paths = folder / "mr.nii.gz", folder / "ct.nii.gz"
    if not all(p.exists() for p in paths):
        folder.mkdir(parents=True, exist_ok=True)
        mr, ct = build()
        for image, path in zip((mr, ct), paths):
            sitk.WriteImage(image, str(path.with_suffix(".tmp.nii.gz")))
            os.replace(path.with_suffix(".tmp.nii.gz"), path)
    return tuple(sitk.ReadImage(str(p), sitk.sitkFloat32) for p in paths)


def _templates():
    return dataset.read_templates(DATA)


def _real_mr_source(name: str, weighting: str):
    spec = REAL[name]
    mr = sitk.ReadImage(str(DATA / spec["path"]), sitk.sitkFloat32)
    skull = sitk.ReadImage(str(DATA / spec["skull"])) if "skull" in spec else None
    template_hu = None if skull is not None else synthesis.carry_template(mr, *_templates())
    classes = synthesis.classes_from_mr(mr, "t1", skull, template_hu)
    rng = np.random.default_rng([3, *name.encode()])
    ct = synthesis.render_ct(classes, rng, template_hu)
    if weighting != "t1":   # the real anatomy in another contrast
        mr = synthesis.render_mr(classes, np.random.default_rng([7, *name.encode()]), weighting)
    return sitk.Cast(mr, sitk.sitkFloat32), sitk.Cast(ct, sitk.sitkFloat32)


def _real_ct_source(name: str, weighting: str):
    spec = REAL[name]
    ct = sitk.ReadImage(str(DATA / spec["path"]), sitk.sitkFloat32) - spec["offset"]
    rng = np.random.default_rng([11, *name.encode(), *weighting.encode()])
    mr = synthesis.render_mr(synthesis.classes_from_ct(ct), rng, weighting)
    return sitk.Cast(mr, sitk.sitkFloat32), ct


def _mni_source():
    mr, ct_hu = _templates()
    return mr, sitk.Resample(ct_hu, mr, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkFloat32)


def _phantom_source():
    pair = phantom.make_phantom_pair(0, 0.0, 0.0, **phantom.WHOLE_HEAD_GRIDS)
    return sitk.Cast(pair.mr, sitk.sitkFloat32), geometry.moved_header(sitk.Cast(pair.ct, sitk.sitkFloat32),
                                                              geometry.invert(pair.truth))


@lru_cache(maxsize=4)
def source(name: str) -> tuple[sitk.Image, sitk.Image]:
    """(MR, CT in HU) of one head, aligned: "<real>-<t1|t2|pd>", "mni" or "phantom"."""
    if name == "mni":
        return _cached(name, _mni_source)
    if name == "phantom":
        return _cached(name, _phantom_source)
    real, weighting = name.rsplit("-", 1)
    build = _real_mr_source if REAL[real]["kind"] == "mr" else _real_ct_source
    return _cached(name, lambda: build(real, weighting))


# ---------------------------------------------------------------- views

def head_box(image: sitk.Image, height_mm: float = 200.0) -> tuple[np.ndarray, np.ndarray]:
    """Low and high LPS corners of the head: the mask's points (4 mm mask) within
    ``height_mm`` of the vertex (the neck and chest below do not count)."""
    mask = symmetry.head_mask(image, 4.0)
    points = geometry.physical_points(mask, sitk.GetArrayViewFromImage(mask) > 0)
    points = points[points[:, 2] > points[:, 2].max() - height_mm]
    return points.min(axis=0), points.max(axis=0)


def reslice(image: sitk.Image, center, tilt_deg: float, extent_mm, spacing, background: float) -> sitk.Image:
    """``image`` on an axial scanner grid (slices normal to the head's z, tilted by
    ``tilt_deg`` about x as a gantry tilts) of ``extent_mm`` (x, y, z) around ``center``,
    each slice the average over its thickness (a Gaussian of the slice's FWHM)."""
    spacing = np.asarray(spacing, dtype=float)
    direction = geometry.rotation_about_axis((1, 0, 0), tilt_deg)
    size = np.maximum(1, np.round(np.asarray(extent_mm) / spacing)).astype(int)
    grid = sitk.Image([int(n) for n in size], sitk.sitkFloat32)
    grid.SetSpacing(spacing.tolist())
    grid.SetDirection(direction.ravel().tolist())
    grid.SetOrigin((np.asarray(center) - direction @ ((size - 1) / 2 * spacing)).tolist())
    have = np.array(image.GetSpacing())
    # The slice profile: blur along the slices' normal (close to the source's z) beyond what the source has.
    sigma = np.sqrt(np.maximum((np.array([spacing[0], spacing[1], spacing[2]]) / 2.355) ** 2 - (have / 2.355) ** 2,
                               0.0))
    smooth = sitk.SmoothingRecursiveGaussian(image, np.maximum(sigma, 0.01).tolist()) if sigma.max() > 0.2 else image
    return sitk.Resample(smooth, grid, sitk.Transform(), sitk.sitkLinear, background, sitk.sitkFloat32)


def view(mr: sitk.Image, ct: sitk.Image, name: str, rng: np.random.Generator) -> tuple[sitk.Image, sitk.Image]:
    """The two volumes as two scanners would give them (module docstring); half the CTs a
    view reslices are padded outside the reconstruction circle (-3024 or -2048). ``name``:

    whole      the MR as it is; the CT on a 0.6-0.8 mm x 2-5 mm axial grid over the head, gantry tilt 0-20 deg
    thick      both in 5 mm slices (MR 1 mm in-plane, CT 0.5 mm), CT tilted 0-20 deg
    mr-slab    a 100-110 mm MR slab (1 x 1 x 2-5 mm), tilted 0-20 deg, at a random height; the CT whole
    ct-upper   the CT cut to the upper 80-100 mm of the head; the MR whole
    hn-mr      MR from the vertex down 260-300 mm (head, neck and shoulders); CT from the vertex down 120-140 mm
    chest-ct   CT as it is (down to the chest); MR from the vertex down 170-190 mm
    slabs      both slabs (MR 104 mm, 1.25 x 1.25 x 4; CT 116 mm, 0.65 x 0.65 x 4), the head turned 15-40 deg
               inside the CT scanner (the CT slab cuts it obliquely)
    fine       a 0.9 mm isotropic MR and a 0.5 x 0.5 x 0.6 mm CT of the whole head (for speed)
    """
    low, high = head_box(mr)
    center = (low + high) / 2
    vertex = high[2]
    width = np.minimum(high - low + 40.0, 260.0)   # a head's field of view; shoulders are cut at the sides
    air = -1000.0
    mr_air = float(np.percentile(sitk.GetArrayViewFromImage(mr), 1))

    def ct_grid(z_top, z_bottom, slice_mm, tilt, in_plane=None):
        in_plane = in_plane or rng.uniform(0.6, 0.8)
        middle = np.array([center[0], center[1], (z_top + z_bottom) / 2])
        scan = reslice(ct, middle, tilt, (max(width[0], 230.0), max(width[1], 230.0), z_top - z_bottom),
                       (in_plane, in_plane, slice_mm), air)
        if rng.uniform() < 0.5:   # the scanner's padding outside its reconstruction circle
            scan = synthesis.outside_reconstruction_circle(scan, float(rng.choice([-3024.0, -2048.0])))
        return scan

    def mr_grid(z_top, z_bottom, spacing, tilt):
        middle = np.array([center[0], center[1], (z_top + z_bottom) / 2])
        return reslice(mr, middle, tilt, (width[0] + 10, width[1] + 10, z_top - z_bottom), spacing, mr_air)

    full_top, full_bottom = vertex + 10.0, low[2] - 10.0
    if name == "whole":
        return mr, ct_grid(full_top, full_bottom, rng.uniform(2.0, 5.0), rng.uniform(0, 20))
    if name == "thick":
        return (mr_grid(full_top, full_bottom, (1.0, 1.0, 5.0), 0.0),
                ct_grid(full_top, full_bottom, 5.0, rng.uniform(0, 20), 0.5))
    if name == "mr-slab":
        thickness = rng.uniform(100, 110)
        middle = rng.uniform(low[2] + thickness / 2 + 10, vertex - thickness / 2 + 10)
        return (mr_grid(middle + thickness / 2, middle - thickness / 2, (1.0, 1.0, rng.uniform(2, 5)),
                        rng.uniform(-20, 20)), ct_grid(full_top, full_bottom, 2.5, 0.0))
    if name == "ct-upper":
        return mr, ct_grid(vertex + 10, vertex - rng.uniform(80, 100), 2.5, 0.0)
    if name == "hn-mr":
        return (mr_grid(vertex + 10, vertex - rng.uniform(260, 300), (1.6, 1.6, 1.6), 0.0),
                ct_grid(vertex + 10, vertex - rng.uniform(120, 140), 3.0, rng.uniform(0, 15)))
    if name == "chest-ct":
        return mr_grid(vertex + 10, vertex - rng.uniform(170, 190), (1.0, 1.0, 2.0), 0.0), ct
    if name == "fine":
        return (mr_grid(full_top, full_bottom, (0.9, 0.9, 0.9), 0.0),
                ct_grid(full_top, full_bottom, 0.6, rng.uniform(0, 20), 0.5))
    if name == "slabs":
        mr_slab = mr_grid(vertex - 10, vertex - 114, (1.25, 1.25, 4.0), 0.0)
        tilt = rng.uniform(15, 40) * rng.choice([-1, 1])
        return mr_slab, ct_grid(vertex - 2, vertex - 118, 4.0, tilt, 0.65)
    raise ValueError(f"unknown view {name!r}")


# ---------------------------------------------------------------- cases

def make_case(dataset_name: str, seed: int, angle: float, distance: float):
    """(fixed MR, moving CT, truth fixed -> moving) of one benchmark case."""
    source_name, view_name = dataset_name.split("/")
    mr, ct = source(source_name)
    rng = np.random.default_rng([seed, 5])
    fixed, moving = view(mr, ct, view_name, rng)
    motion = geometry.random_rigid(np.random.default_rng([seed, 8]), angle, distance, geometry.grid_center(moving))
    moving = sitk.Cast(sitk.Round(geometry.moved_header(moving, motion)), sitk.sitkInt16)
    fixed = sitk.Cast(sitk.Round(fixed), sitk.sitkInt16)
    return fixed, moving, motion


def case_list(datasets, pairs_per_bin: int, first_seed: int = 0) -> list[dict]:
    """Cases spread over the rotation bins: angle uniform in the bin, distance 10-40 mm."""
    cases = []
    for name in datasets:
        for b, (lo, hi) in enumerate(BINS):
            for k in range(pairs_per_bin):
                seed = first_seed + 100 * b + k
                rng = np.random.default_rng([seed, 1])
                cases.append({"id": f"{name.replace('/', '_')}-{seed}", "dataset": name, "bin": f"{lo}-{hi}",
                              "seed": seed, "angle": float(rng.uniform(lo, hi)),
                              "distance": float(rng.uniform(10, 40))})
    return cases


DATASETS = ("seg3d-t1/whole", "colin-t1/whole", "rire-t1/whole", "colin-t2/whole", "seg3d-pd/whole",
            "seg3d-flair/whole", "colin-pd/mr-slab", "seg3d-t2/mr-slab", "seg3d-t1/thick", "colin-t2/thick",
            "tcga2-t1/hn-mr", "tcga3-t2/hn-mr", "tcga3-t2/chest-ct", "tcga2-pd/chest-ct", "seg3d-pd/ct-upper",
            "colin-t1/slabs", "seg3d-t2/slabs", "mni/whole")
