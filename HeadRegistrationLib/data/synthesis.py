"""Cross-modal synthesis: a CT of the anatomy of a real MR, an MR of the anatomy of a real CT.

The paper trained on real same-patient CT/MR pairs ("Data augmentation"); none can be had
here, so the partner of each real volume is made. Both directions go through a map of
tissue classes on the source's own grid:

* MR -> classes: head mask, Otsu classes inside it, the brain as the largest mid-bright
  component well inside the head; bone from a real skull mask when there is one, else from
  a CT template carried onto the head by an MR-to-MR affine registration (``carry_template``),
  else from the dark shell between brain and scalp. The template also tells air (sinuses)
  from bone, which a T1 cannot.
* CT -> classes: Hounsfield ranges; the brain is what the skull encloses.

Classes are then rendered with what a scanner varies drawn from a random generator: tissue
values, point-spread (resolution and slice thickness), noise; for CT a head rest and table,
for MR a T1, T2 or PD-like contrast, a smooth bias field and Rician noise. The partner lies
in the source's physical space on the source's grid.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..core import geometry
from ..register import registration, symmetry
from ..core.errors import HeadRegError, one_line
from .tissues import AIR, BONE, BONE_HU, CSF, CT_HU, FAT, GREY, MARROW, MR_SIGNAL, RENDERED, SOFT, WHITE

WEIGHTINGS = ("t1", "t2", "pd")   # of a source MR whose tissues are found (classes_from_mr)


# ---------------------------------------------------------------- small helpers

def _array(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


def _image_like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image


def _mask_on(mask: sitk.Image, reference: sitk.Image) -> np.ndarray:
    """A binary mask resampled (nearest) onto ``reference``'s grid, as a bool array."""
    return _array(sitk.Resample(mask, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                sitk.sitkUInt8)).astype(bool)


def _morphology(mask: np.ndarray, reference: sitk.Image, operation, radius_mm: float) -> np.ndarray:
    radius = [max(1, int(round(radius_mm / s))) for s in reference.GetSpacing()]
    image = _image_like(mask.astype(np.uint8), reference)
    return _array(operation(image, radius, sitk.sitkBall)).astype(bool)


def _largest_component(mask: np.ndarray, reference: sitk.Image) -> np.ndarray:
    labels = sitk.RelabelComponent(sitk.ConnectedComponent(_image_like(mask.astype(np.uint8), reference)),
                                   sortByObjectSize=True)
    return _array(labels) == 1


def _blur(array: np.ndarray, reference: sitk.Image, sigma_mm) -> np.ndarray:
    """Gaussian blur in physical units along the image axes (x, y, z order)."""
    sigma = [max(float(s), 1e-3) for s in sigma_mm]
    return _array(sitk.SmoothingRecursiveGaussian(_image_like(array.astype(np.float32), reference), sigma))


def hounsfield_from_cormack(image: sitk.Image) -> sitk.Image:
    """Hounsfield units of a CT in Cormack units (Rorden et al. 2012; 0 is air, the range
    -100..100 HU stretched tenfold), as the ``scct`` template is stored."""
    c = _array(image).astype(np.float32)
    hu = c - 1000.0 - 0.9 * np.clip(c - 900.0, 0.0, 2000.0)
    return _image_like(hu, image)


def hounsfield_from_two_peaks(image: sitk.Image, soft_tissue_hu: float = 40.0) -> sitk.Image:
    """A linear Hounsfield calibration of a CT stored in arbitrary units (e.g. rescaled to
    uint8): its minimum is air (-1000 HU) and the mode of the head's voxels above the
    Otsu threshold is soft tissue."""
    values = _array(image).astype(np.float32)
    low = float(values.min())
    threshold = sitk.OtsuThresholdImageFilter()
    threshold.Execute(sitk.Cast(image, sitk.sitkFloat32))
    head = values[values > threshold.GetThreshold()]
    if head.size == 0:
        raise HeadRegError("cannot calibrate this CT: no voxels above the Otsu threshold")
    counts, edges = np.histogram(head, bins=64)
    soft = float((edges[np.argmax(counts)] + edges[np.argmax(counts) + 1]) / 2)
    if not soft > low:
        raise HeadRegError("cannot calibrate this CT: soft tissue is not brighter than air")
    scale = (soft_tissue_hu + 1000.0) / (soft - low)
    return _image_like((values - low) * scale - 1000.0, image)


# ---------------------------------------------------------------- template

def carry_template(mr: sitk.Image, template_mr: sitk.Image, template_ct_hu: sitk.Image,
                   mr_mask: sitk.Image | None = None) -> sitk.Image:
    """The template CT (HU) on ``mr``'s grid, after an affine registration of the template
    MR (aligned with the template CT) onto ``mr``: a rigid start from the symmetry frames
    and MI (``groundtruth.reference.ground_truth``), then an affine MI refinement on 4 mm copies."""
    from ..groundtruth.reference import ground_truth
    mr_mask = symmetry.head_mask(mr) if mr_mask is None else mr_mask
    rigid = ground_truth(mr, template_mr, "accurate", use_symmetry=True).matrix
    fixed, moving = registration.coarse_copy(mr, 4.0), registration.coarse_copy(template_mr, 4.0)
    affine = sitk.AffineTransform(3)
    affine.SetMatrix(rigid[:3, :3].ravel().tolist())
    center = symmetry.symmetry_frame(mr, mr_mask).center
    affine.SetCenter(tuple(float(c) for c in center))   # the same mapping as ``rigid``, about the head
    affine.SetTranslation((rigid[:3, :3] @ center + rigid[:3, 3] - center).tolist())
    method = registration.mattes_method(32)
    method.SetMetricFixedMask(sitk.Resample(sitk.BinaryDilate(mr_mask, [3] * 3), fixed, sitk.Transform(),
                                            sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8))
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(2.0, 0.01, 150, relaxationFactor=0.7)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetInitialTransform(affine, inPlace=True)
    try:
        method.Execute(fixed, moving)
    except RuntimeError as error:
        raise HeadRegError(f"template registration failed: {one_line(error)}") from None
    return sitk.Resample(template_ct_hu, mr, affine, sitk.sitkLinear, -1000.0, sitk.sitkFloat32)


# ---------------------------------------------------------------- classes from a real volume

def classes_from_mr(mr: sitk.Image, weighting: str = "t1", skull: sitk.Image | None = None,
                    template_hu: sitk.Image | None = None) -> sitk.Image:
    """Tissue classes (uint8, ``CLASSES``) of an MR head on its own grid.

    ``skull``: a real bone mask (any grid in the same physical space) wins over everything;
    ``template_hu``: a template CT already on ``mr``'s grid (``carry_template``) gives bone
    and air where the MR is dark outside the brain; without either, the dark shell between
    brain and scalp is called bone.
    """
    if weighting not in WEIGHTINGS:
        raise HeadRegError(f"unknown MR weighting {weighting!r}: choose one of {', '.join(WEIGHTINGS)}")
    values = _array(mr).astype(np.float32)
    head = _mask_on(symmetry.head_mask(mr), mr)
    if head.sum() < 1000:
        raise HeadRegError("the MR holds too small a head to synthesise a partner from")
    head_found = head.copy()   # the MR's own head: where its intensities mean tissue
    if template_hu is not None:   # a faint scalp (e.g. T2) falls below Otsu: the template's head counts
        head |= _array(template_hu) > -300
    # Four intensity classes inside the head, darkest first.
    inside = values[head_found]
    clipped = np.clip(values, *np.percentile(inside, [0.5, 99.5]))
    otsu = sitk.OtsuMultipleThresholdsImageFilter()
    otsu.SetNumberOfThresholds(3)
    otsu.SetNumberOfHistogramBins(128)
    otsu.Execute(_image_like(np.where(head_found, clipped, inside.min()).astype(np.float32), mr))
    t1, t2, t3 = otsu.GetThresholds()
    # The brain: mid-bright voxels well inside the head, cut from the scalp and eyes by an
    # opening, largest piece, holes (ventricles) filled.
    deep = _morphology(head_found, mr, sitk.BinaryErode, 8.0)
    # T1: grey and white matter (muscle lies below grey matter's middle); T2/PD: all but the dark.
    tissue = values > ((t1 + t2) / 2 if weighting == "t1" else t1)
    brain = _morphology(tissue & deep, mr, sitk.BinaryMorphologicalOpening, 6.0)   # cuts the cord and neck off
    if not brain.any():
        raise HeadRegError("no brain found in the MR: is it a head?")
    brain = _largest_component(brain, mr)
    # Its edges back: the tissue connected to it within 6 mm (not the diploe across the skull).
    reach = _morphology(brain, mr, sitk.BinaryDilate, 6.0) & tissue & deep
    brain = _array(sitk.BinaryReconstructionByDilation(_image_like(brain.astype(np.uint8), mr),
                                                        _image_like(reach.astype(np.uint8), mr))).astype(bool)
    intracranial = symmetry.fill_holes_slicewise(_morphology(brain, mr, sitk.BinaryMorphologicalClosing, 4.0))

    classes = np.full(values.shape, AIR, dtype=np.uint8)
    classes[head] = SOFT
    dark, mid, bright = values <= t1, (values > t1) & (values <= t2), values > t2
    if weighting == "t1":
        classes[head & ~intracranial & (values > t3)] = FAT
        classes[intracranial & dark] = CSF
        classes[intracranial & mid] = GREY
        classes[intracranial & bright] = WHITE
    else:   # T2 and PD: CSF brightest, white matter darker than grey
        classes[head & ~intracranial & (values > t2) & (values <= t3)] = FAT
        classes[intracranial & (values > t3)] = CSF
        classes[intracranial & (values > t2) & (values <= t3)] = GREY
        classes[intracranial & (values <= t2)] = WHITE
    outside_brain = head & ~intracranial
    if skull is not None:
        bone = _mask_on(sitk.Cast(skull > 0, sitk.sitkUInt8), mr) & head
    elif template_hu is not None:
        template = _array(template_hu)
        if weighting == "t1":   # dark CSF looks like bone: trust the template outside the brain only
            bone = outside_brain & (template > BONE_HU) & ~bright
        else:                   # CSF is bright: template bone wherever the MR is not
            bone = head & (template > BONE_HU) & (values <= t2)
        classes[outside_brain & dark & (template < -400)] = AIR   # sinuses, mastoid air
    else:
        scalp = head & ~_morphology(head, mr, sitk.BinaryErode, 3.0)
        bone = outside_brain & dark & ~scalp & _morphology(intracranial, mr, sitk.BinaryDilate, 12.0)
    # Marrow: the bright core of thick bone (diploe) in T1.
    core = _morphology(bone, mr, sitk.BinaryErode, 1.5)
    classes[bone] = BONE
    if weighting == "t1":
        classes[core & (values > t2)] = MARROW
    return _image_like(classes, mr)


def classes_from_ct(ct_hu: sitk.Image) -> sitk.Image:
    """Tissue classes (uint8, ``CLASSES``) of a CT head (in HU) on its own grid: air,
    fat and bone by Hounsfield range, marrow where bone is less dense inside its outer layers; CSF, grey and white matter by smoothed HU
    inside the skull; soft tissue elsewhere in the head. The table is left out (not head)."""
    hu = _array(ct_hu).astype(np.float32)
    head = _mask_on(symmetry.head_mask(ct_hu), ct_hu)
    if head.sum() < 1000:
        raise HeadRegError("the CT holds too small a head to synthesise a partner from")
    bone = head & (hu > BONE_HU)
    # A closing of a few voxels seals a skull that partial volume leaves open on coarse grids.
    closing_mm = max(3.0, 2.0 * max(ct_hu.GetSpacing()))
    intracranial = symmetry.fill_holes_slicewise(_morphology(bone, ct_hu, sitk.BinaryMorphologicalClosing,
                                                             closing_mm))
    intracranial &= ~_morphology(bone, ct_hu, sitk.BinaryDilate, 1.0) & head
    smooth = _blur(hu, ct_hu, [1.5] * 3)   # grey and white matter differ by less than the noise
    classes = np.full(hu.shape, AIR, dtype=np.uint8)
    classes[head] = SOFT
    classes[head & (hu > -400) & (hu < -40)] = FAT
    classes[head & (hu <= -400)] = AIR
    soft = (hu > -40) & (hu < 120)
    classes[intracranial & soft & (smooth < 16)] = CSF
    classes[intracranial & soft & (smooth >= 16) & (smooth < 33)] = WHITE
    classes[intracranial & soft & (smooth >= 33)] = GREY
    classes[bone] = BONE
    classes[_morphology(bone, ct_hu, sitk.BinaryErode, 1.5) & (hu <= 800)] = MARROW   # diploe inside the tables
    return _image_like(classes, ct_hu)


# ---------------------------------------------------------------- scanner effects

def bias_field(shape, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A smooth multiplicative field (random quadratic polynomial over the array,
    exponentiated) within about 1 +- ``strength``."""
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape], indexing="ij")
    terms = [x, y, z, x * y, y * z, x * z, x * x - 1 / 3, y * y - 1 / 3, z * z - 1 / 3]
    log_bias = sum(c * t for c, t in zip(rng.uniform(-1, 1, len(terms)), terms))
    log_bias *= np.log1p(strength) / (np.abs(log_bias).max() + 1e-12)
    return np.exp(log_bias)


def rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of ``signal`` with complex Gaussian noise of standard deviation ``sigma``."""
    real = signal + sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    return np.hypot(real, sigma * rng.standard_normal(signal.shape, dtype=np.float32))


def outside_reconstruction_circle(image: sitk.Image, value: float) -> sitk.Image:
    """``image`` with ``value`` outside the circle (ellipse) inscribed in each axial slice,
    as CT scanners store what lies outside their reconstruction circle (-3024 or -2048)."""
    array = _array(image)
    _, y, x = np.indices(array.shape)
    ny, nx = array.shape[1:]
    array[((y - (ny - 1) / 2) / (ny / 2)) ** 2 + ((x - (nx - 1) / 2) / (nx / 2)) ** 2 > 1.0] = value
    return sitk.Cast(_image_like(array, image), image.GetPixelID())


def _point_spread(image: sitk.Image, rng: np.random.Generator) -> list[float]:
    """Blur (sigma, mm, x y z) of a random scanner: in-plane resolution 0.5-1.2 mm and a
    slice thickness of 1-5 mm along the image's third axis, over what the grid has."""
    in_plane, thickness = rng.uniform(0.5, 1.2), rng.uniform(1.0, 5.0)
    wanted = np.array([in_plane, in_plane, thickness]) / 2.355
    have = np.array(image.GetSpacing()) / 2.355
    return np.sqrt(np.maximum(wanted ** 2 - have ** 2, 0.0)).tolist()


def head_rest_hu(x: np.ndarray, y: np.ndarray, back: float, middle: float) -> np.ndarray:
    """HU of what holds a head in a CT scanner, at physical points (LPS mm, arrays that
    broadcast): a curved plastic cradle 4 mm under the head, a foam pad and a table with
    a foam core below it; NaN where there is none. ``back``: the head's most posterior y,
    ``middle``: its centre in x."""
    radius = 115.0
    center = back + 6.0 - radius
    r = np.hypot(x - middle, y - center)
    cradle = (np.abs(r - radius - 2.0) < 2.0) & (y > center + 0.45 * radius)
    table_top = back + 40.0
    table = (y > table_top) & (y < table_top + 12.0) & (np.abs(x - middle) < 230.0)
    foam = (y > back + 8.0) & (y < table_top) & (np.abs(x - middle) < 100.0) & (r > radius + 4.0)
    hu = np.full(np.broadcast(x, y).shape, np.nan, dtype=np.float32)
    hu[foam] = -900.0
    hu[cradle] = 180.0
    hu[table] = 250.0
    hu[table & (y > table_top + 2.0) & (y < table_top + 10.0)] = -850.0
    return hu


def _head_rest_on(image: sitk.Image, head: np.ndarray) -> np.ndarray:
    """:func:`head_rest_hu` at the voxels of ``image`` (posterior, +y, of its ``head``)."""
    points = geometry.physical_points(image).reshape(*head.shape, 3)
    head_points = points[head]
    return head_rest_hu(points[..., 0], points[..., 1], head_points[:, 1].max(), head_points[:, 0].mean())


def render_ct(classes: sitk.Image, rng: np.random.Generator, template_hu: sitk.Image | None = None,
              head_rest: bool = True) -> sitk.Image:
    """A CT (int16 HU) of ``classes`` on their grid: random tissue HU, template HU texture
    in bone when given, a head rest and table, scanner blur and correlated noise."""
    labels = _array(classes)
    hu = np.zeros(labels.shape, dtype=np.float32)
    for label, (low, high) in CT_HU.items():
        hu[labels == label] = rng.uniform(low, high)
    if template_hu is not None:   # bone density varies: follow the template's
        template = _array(template_hu)
        bone = labels == BONE
        hu[bone] = np.clip(hu[bone] * np.clip(template[bone] / 900.0, 0.5, 1.3), 400.0, 2200.0)
    if head_rest:
        support = _head_rest_on(classes, labels != AIR)
        hu = np.where((labels == AIR) & ~np.isnan(support), support, hu)
    hu = _blur(hu, classes, _point_spread(classes, rng))
    noise = _blur(rng.standard_normal(hu.shape).astype(np.float32), classes, [0.6, 0.6, 0.01])
    hu += noise * (rng.uniform(3.0, 20.0) / (noise.std() + 1e-12))
    return _image_like(np.clip(np.round(hu), -1024, 3071).astype(np.int16), classes)


def render_mr(classes: sitk.Image, rng: np.random.Generator, weighting: str | None = None) -> sitk.Image:
    """An MR (int16) of ``classes`` on their grid: the ``weighting`` (random when None)
    with each tissue's signal jittered by up to 15 % and a texture within tissues of
    3-10 % (real tissue is not one value), scanner blur, a bias field of up to 30 %,
    Rician noise of 1-5 % and a random overall scale."""
    weighting = weighting or RENDERED[rng.integers(len(RENDERED))]
    if weighting not in MR_SIGNAL:
        raise HeadRegError(f"unknown MR weighting {weighting!r}: choose one of {', '.join(RENDERED)}")
    labels = _array(classes)
    signal = np.zeros(labels.shape, dtype=np.float32)
    for label, value in MR_SIGNAL[weighting].items():
        signal[labels == label] = value * rng.uniform(0.85, 1.15)
    texture = _blur(rng.standard_normal(labels.shape).astype(np.float32), classes, [2.0, 2.0, 2.0])
    signal *= 1 + rng.uniform(0.03, 0.10) * texture / (texture.std() + 1e-12)
    signal = _blur(signal, classes, _point_spread(classes, rng))
    signal *= bias_field(signal.shape, rng, rng.uniform(0.05, 0.3))
    scale = rng.uniform(200.0, 2000.0)
    magnitude = rician(signal * scale, rng.uniform(0.01, 0.05) * scale, rng)
    return _image_like(np.clip(np.round(magnitude), 0, 32767).astype(np.int16), classes)


def synthesise(source: sitk.Image, to: str, rng: np.random.Generator, weighting: str = "t1",
               skull: sitk.Image | None = None, template_hu: sitk.Image | None = None,
               target_weighting: str | None = None) -> sitk.Image:
    """The partner of ``source`` in modality ``to`` ("ct" from an MR of ``weighting``; "mr"
    from a CT in HU), on the source's grid."""
    if to == "ct":
        return render_ct(classes_from_mr(source, weighting, skull, template_hu), rng, template_hu)
    if to == "mr":
        return render_mr(classes_from_ct(source), rng, target_weighting)
    raise HeadRegError(f"unknown target modality {to!r}: choose ct or mr")
