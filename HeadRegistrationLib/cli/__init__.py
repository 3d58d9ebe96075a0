"""The ``headreg`` command line (DESIGN.md, "The command line")."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from .. import __version__
from ..core import batch, geometry, qa, transform_io, volume_io
from ..data import augmentation, dataset, phantom, synthesis
from ..evaluate import metrics, rire
from ..groundtruth import reference
from ..register import autoregister, modality, preprocessing, symmetry
from ..core.errors import HeadRegError, one_line
from ..core.files import IMAGE_SUFFIXES, JSON_SUFFIXES, PICTURE_SUFFIXES, check_outputs, write_all, write_atomically, write_image

LOW_CONFIDENCE = 3   # exit code: the result was written but the quality check failed (DESIGN.md)

MAX_VOXELS = 1024 ** 3  # refuse phantom grids larger than this


def _progress(total: int, description: str):
    """A progress bar on stderr (hidden when stderr is not a terminal and HEADREG_PROGRESS is unset)."""
    return tqdm(total=total, desc=description, unit="step", file=sys.stderr, leave=False,
                disable=None if "HEADREG_PROGRESS" not in os.environ else False)


def _grid(size, spacing, name) -> dict:
    if any(n < 2 for n in size):
        raise HeadRegError(f"--{name}-size must be at least 2 voxels along each axis")
    if not all(np.isfinite(spacing)) or any(s <= 0 for s in spacing):
        raise HeadRegError(f"--{name}-spacing must be positive millimetres")
    if np.prod(size, dtype=float) > MAX_VOXELS:
        raise HeadRegError(f"--{name}-size {size} is too large (more than {MAX_VOXELS} voxels)")
    return {"size": tuple(size), "spacing": tuple(spacing)}


def write_phantom(outdir: Path, seed: int, rotation: float | None, translation: float | None,
                  ct_grid: dict, mr_grid: dict, labels: bool, overwrite: bool) -> phantom.PhantomPair:
    """Generate a phantom pair and write mr.nii.gz, ct.nii.gz, truth.tfm (and label maps)
    into ``outdir``; all files appear together, or none does."""
    names = ["mr.nii.gz", "ct.nii.gz", "truth.tfm"] + (["mr_labels.nii.gz", "ct_labels.nii.gz"] if labels else [])
    if outdir.exists() and not outdir.is_dir():
        raise HeadRegError(f"{outdir} exists and is not a folder")
    existing = [n for n in names if (outdir / n).exists()]
    if existing and not overwrite:
        raise HeadRegError(f"{outdir} already holds {', '.join(existing)} (use --overwrite to replace)")
    with _progress(len(phantom.STAGES) + len(names), "phantom") as bar:
        def advance(stage):
            bar.set_postfix_str(stage)
            bar.update(1)

        pair = phantom.make_phantom_pair(seed, rotation, translation, ct_grid, mr_grid, progress=advance)
        outdir.mkdir(parents=True, exist_ok=True)
        staging = outdir / f".partial-{os.getpid()}"
        staging.mkdir(exist_ok=True)
        try:
            images = {"mr.nii.gz": pair.mr, "ct.nii.gz": pair.ct,
                      "mr_labels.nii.gz": pair.mr_labels, "ct_labels.nii.gz": pair.ct_labels}
            for name in names:
                if name == "truth.tfm":
                    transform_io.write_transform(pair.truth, staging / name, center=pair.rotation_center)
                else:
                    write_image(images[name], staging / name)
                advance(f"wrote {name}")
            for name in names:
                os.replace(staging / name, outdir / name)
        finally:
            for leftover in staging.glob("*"):
                leftover.unlink()
            staging.rmdir()
    return pair


def _describe_truth(pair: phantom.PhantomPair) -> str:
    angle = geometry.rotation_error_deg(pair.truth, np.eye(4))
    shift = geometry.translation_error_mm(pair.truth, np.eye(4), pair.rotation_center)
    return (f"truth: in physical space the CT lies {angle:.1f} deg turned and {shift:.1f} mm displaced "
            f"(at the MR centre) from the MR")


def _read(path: Path, args) -> sitk.Image:
    """A volume given on the command line; ``--series`` picks the series of a DICOM folder."""
    series = getattr(args, "series", None)
    if series and Path(path).is_dir():
        found = [uid for uid in series if uid in volume_io.series_in(path)]
        return volume_io.read_volume(path, found[0] if found else series[0])
    return volume_io.read_volume(path)


def _add_series(parser) -> None:
    parser.add_argument("--series", action="append", metavar="UID",
                        help="the DICOM series to read from a folder that holds several (repeat for each folder)")


def command_phantom(args) -> int:
    pair = write_phantom(args.outdir, args.seed, args.rotation, args.translation,
                         _grid(args.ct_size, args.ct_spacing, "ct"), _grid(args.mr_size, args.mr_spacing, "mr"),
                         args.labels, args.overwrite)
    print(f"wrote {args.outdir}/mr.nii.gz (fixed), ct.nii.gz (moving), truth.tfm (MR -> CT, LPS mm)"
          + (", mr_labels.nii.gz, ct_labels.nii.gz" if args.labels else ""))
    print(_describe_truth(pair))
    return 0


def command_info(args) -> int:
    image = _read(args.file, args)
    description = volume_io.describe_volume(image)
    evidence = modality.rule_based_modality(image)
    description["modality_guess"] = {"modality": evidence.modality, "confidence": evidence.confidence,
                                     "reason": evidence.reason}
    if args.json:
        print(json.dumps({"file": str(args.file), **description}, indent=2))
        return 0
    print(f"{'file:':<14}{args.file}")
    for key, value in description.items():
        if key == "modality_guess":
            continue
        if key == "direction":
            value = "  ".join(" ".join(f"{v:+.4f}" for v in row) for row in value)
        elif isinstance(value, dict):
            value = ", ".join(f"{k} {'none' if v is None else format(v, 'g')}" for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            value = " x ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        elif isinstance(value, float):
            value = f"{value:g}"
        print(f"{key + ':':<14}{value}")
    guess = evidence.modality or "unknown"
    print(f"{'modality:':<14}{guess} (rule-based guess, confidence {evidence.confidence:.2f}: {evidence.reason})")
    return 0


def command_demo(args) -> int:
    outdir = args.out
    pair = write_phantom(outdir, args.seed, None, None, phantom.CT_GRID, phantom.MR_GRID, True, True)
    print(f"demo pair in {outdir}/: mr.nii.gz (fixed), ct.nii.gz (moving), truth.tfm, label maps")
    print(_describe_truth(pair))
    mr, ct = (volume_io.read_volume(outdir / name) for name in ("mr.nii.gz", "ct.nii.gz"))
    truth = transform_io.read_transform(outdir / "truth.tfm")
    result = autoregister.register_volumes(ct, mr)   # CT first: the pipeline finds the roles itself
    seconds = sum(result.seconds.values())
    transform_io.write_transform(result.matrix, outdir / "registered.tfm")
    qa.overlay_figure(mr, ct, result.matrix, outdir / "qa.png", "headreg demo: MR (grey) + CT (colour), registered")
    record = autoregister.report(result, (outdir / "ct.nii.gz", outdir / "mr.nii.gz"),
                                 {"refine": True, "device": "auto"})
    write_atomically(outdir / "report.json", lambda p: Path(p).write_text(json.dumps(record, indent=2)))
    mr_labels = sitk.ReadImage(str(outdir / "mr_labels.nii.gz"))
    tre = geometry.mean_displacement_in_mask(result.matrix, truth, sitk.Cast(mr_labels > 0, sitk.sitkUInt8))
    print(f"registered in {seconds:.1f} s (roles found: {record['fixed']['path']} is the MR, "
          f"{record['moving']['path']} the CT): error against the truth {tre:.2f} mm mean over the head, "
          f"{geometry.rotation_error_deg(result.matrix, truth):.2f} deg; bone Dice "
          f"{phantom.bone_dice(ct, mr_labels, result.matrix):.2f} "
          f"(truth: {phantom.bone_dice(ct, mr_labels, truth):.2f})")
    print(f"wrote {outdir}/registered.tfm, report.json and qa.png")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0 if result.confident else LOW_CONFIDENCE


def _groundtruth_pair(args) -> int:
    if args.output is None:
        raise HeadRegError("give -o OUT.tfm for one pair (or --pairs CSV --out DIR for a batch)")
    check_outputs([(args.output, transform_io.TRANSFORM_SUFFIXES), (args.record, JSON_SUFFIXES),
                   (args.qa, PICTURE_SUFFIXES)], (args.fixed, args.moving))   # before the work, not after it
    fixed, moving = _read(args.fixed, args), _read(args.moving, args)
    for path, image in ((args.fixed, fixed), (args.moving, moving)):
        volume_io.check_volume_content(image, str(path))
    with _progress(1, "groundtruth") as bar:
        truth = reference.ground_truth(fixed, moving, args.preset, not args.no_symmetry)
        bar.update(1)
    record = {"fixed": str(args.fixed), "moving": str(args.moving), **truth.record()}
    write_all([(args.output, lambda p: transform_io.write_transform(truth.matrix, p))]
              + ([(args.qa, lambda p: qa.overlay_figure(fixed, moving, truth.matrix, p,
                                                        f"{args.fixed.name} (grey) + {args.moving.name}"))]
                 if args.qa else [])
              + ([(args.record, lambda p: batch.write_json(record, p))] if args.record else []))
    angles_and_shifts = geometry.parameters_from_matrix(truth.matrix)
    print(f"wrote {args.output} (fixed -> moving, LPS mm): angles {np.round(angles_and_shifts[:3], 2).tolist()} deg, "
          f"translation {np.round(angles_and_shifts[3:], 2).tolist()} mm about the origin")
    print(f"preset {args.preset}, symmetry alignment {'off' if args.no_symmetry else 'on'}: "
          f"MI {-truth.metric:.4f}, {truth.seconds:.1f} s, {'confident' if truth.confident else 'LOW CONFIDENCE'}")
    for warning in truth.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0 if truth.confident else LOW_CONFIDENCE


def _groundtruth_batch(args) -> int:
    if args.out is None:
        raise HeadRegError("give --out DIR for the batch's outputs")
    if args.workers < 1:
        raise HeadRegError("--workers must be at least 1")
    pairs = batch.read_pairs(args.pairs)
    args.out.mkdir(parents=True, exist_ok=True)
    for leftover in args.out.glob(".*.partial.*"):  # from an interrupted run
        leftover.unlink()
    tasks = [{**pair, "out": str(args.out.resolve()), "preset": args.preset, "symmetry": not args.no_symmetry,
              "retry_failed": args.retry_failed} for pair in pairs]
    _, skipped = batch.run_tasks(tasks, reference.run_pair, reference.pair_done, args.workers)
    summary = [batch.read_json(reference.pair_outputs(t)["record"]) or {**t, "status": "not run"} for t in tasks]
    failed = [r for r in summary if r.get("status") != "ok"]
    columns = ["id", "status", "fixed", "moving", "metric", "confident", "seconds", "warnings", "error"]

    def write_summary(path):
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for r in summary:
                writer.writerow([r.get("id"), r.get("status"), r.get("fixed"), r.get("moving"), r.get("metric"),
                                 r.get("quality", {}).get("confident"), r.get("seconds"),
                                 "; ".join(r.get("warnings", [])), r.get("error", "")])

    write_atomically(args.out / "summary.csv", write_summary)
    doubtful = [r for r in summary if r.get("status") == "ok" and not r.get("quality", {}).get("confident")]
    print(f"{len(summary) - len(failed)} pairs registered ({skipped} done before), {len(failed)} failed, "
          f"{len(doubtful)} LOW CONFIDENCE; outputs and summary.csv in {args.out}")
    for r in failed:
        print(f"failed: {r['id']}: {r.get('error')}", file=sys.stderr)
    if failed and not args.retry_failed:
        print("failed pairs are skipped on a rerun; give --retry-failed to try them again", file=sys.stderr)
    return 1 if failed else LOW_CONFIDENCE if doubtful else 0


def command_groundtruth(args) -> int:
    if args.pairs is not None:
        if args.fixed or args.moving or args.output:
            raise HeadRegError("give either FIXED MOVING -o OUT.tfm or --pairs CSV --out DIR, not both")
        return _groundtruth_batch(args)
    if not (args.fixed and args.moving):
        raise HeadRegError("give FIXED MOVING -o OUT.tfm, or --pairs CSV --out DIR")
    return _groundtruth_pair(args)


def command_synth(args) -> int:
    check_outputs([(args.output, IMAGE_SUFFIXES), (args.qa, PICTURE_SUFFIXES)],
                  [args.source] + ([args.skull] if args.skull else []))
    source = sitk.Cast(_read(args.source, args), sitk.sitkFloat32)
    volume_io.check_volume_content(source, str(args.source))
    evidence = modality.rule_based_modality(source)
    if evidence.modality == ("MR" if args.to == "mr" else "CT") and evidence.confidence >= 0.9:
        raise HeadRegError(f"{args.source} already looks like {evidence.modality} ({evidence.reason}): "
                           f"--to {args.to} makes the partner of the other modality")
    rng = np.random.default_rng(args.seed)
    note = ""
    if args.to == "ct":
        skull = volume_io.read_volume(args.skull) if args.skull else None
        if skull is not None:
            labels = np.unique(sitk.GetArrayViewFromImage(skull))
            if labels.size != 2:
                raise HeadRegError(f"{args.skull} has {labels.size} distinct values: --skull needs a binary bone "
                                   "mask (0 outside the bone, one value inside)")
        template_hu = None
        templates = None if (skull is not None or args.no_template) else dataset.read_templates(args.data)
        if templates is not None:
            template_hu = synthesis.carry_template(source, *templates)
            note = ", bone and air from the MNI152/scct templates"
        elif skull is not None:
            note = f", bone from {args.skull.name}"
        else:
            note = ", bone from the dark shell around the brain (no templates)"
        mr, ct = source, synthesis.synthesise(source, "ct", rng, args.weighting, skull, template_hu)
        partner = ct
    else:
        lowest = float(sitk.GetArrayViewFromImage(source).min())
        if args.ct_units == "hu" and lowest > -500:
            raise HeadRegError(f"{args.source.name} does not look like a CT in Hounsfield units (its minimum is "
                               f"{lowest:g}, air is -1000): give --ct-units hu-plus-1024, cormack or two-peaks")
        ct = dataset.ct_in_hounsfield(source, args.ct_units.replace("-", "_"))
        mr = synthesis.synthesise(ct, "mr", rng, target_weighting=args.mr_weighting)
        partner = mr
    write_all([(args.output, lambda p: write_image(partner, p))]
              + ([(args.qa, lambda p: qa.bone_edge_figure(mr, ct, p, title=f"{args.source.name} -> "
                                                          f"{args.to.upper()} (seed {args.seed})"))]
                 if args.qa else []))
    print(f"wrote {args.output}: {'a CT' if args.to == 'ct' else 'an MR'} of the anatomy of {args.source.name} on its grid "
          f"(seed {args.seed}{note})")
    return 0


def _counts(text: str) -> list[int]:
    """'4:124:5' -> 4, 9, ..., 124; '10,20' -> 10, 20."""
    try:
        if ":" in text:
            start, stop, step = (int(v) for v in text.split(":"))
            counts = list(range(start, stop + 1, step))
        else:
            counts = [int(v) for v in text.split(",")]
    except ValueError:
        raise HeadRegError(f"--counts must be START:STOP:STEP or a comma list of integers, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise HeadRegError(f"--counts must give copy counts of at least 1, got {text!r}")
    return sorted(set(counts))


def _split_fractions(text: str) -> tuple[float, float, float]:
    """'0.6,0.2,0.2' -> shares of train, validation and test."""
    try:
        fractions = tuple(float(v) for v in text.split(","))
    except ValueError:
        fractions = ()
    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
        raise HeadRegError(f"--fractions must be three shares TRAIN,VALIDATION,TEST (e.g. 0.6,0.2,0.2), got {text!r}")
    return fractions


def _splits_from(manifest_path) -> dict[str, str]:
    """Subject -> split of another set's manifest.json, or of the set a model card names."""
    try:
        record = json.loads(Path(manifest_path).read_text())
        subjects = record["subjects"] if "subjects" in record else record["data"]["subjects"]
        return {s: v["split"] for s, v in subjects.items()}
    except OSError as error:
        raise HeadRegError(f"cannot read {manifest_path}: {error.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise HeadRegError(f"{manifest_path} is neither a training set's manifest.json nor a model card") from None


def command_dataset(args) -> int:
    if args.workers < 1:
        raise HeadRegError("--workers must be at least 1")
    counts = _counts(args.counts) if args.action == "sweep" else [args.copies]
    if min(counts) < 1:
        raise HeadRegError("--copies must be at least 1")
    fractions = _split_fractions(args.fractions)
    fixed_splits = _splits_from(args.splits_from) if args.splits_from else {}
    if not args.no_shared and not args.data.is_dir():
        raise HeadRegError(f"--data {args.data}: no such folder (give the shared head volumes, or --no-shared)")
    subjects = dataset.phantom_subjects(args.phantoms)
    if not args.no_shared:
        shared = dataset.shared_subjects(args.data)
        if not shared:
            print(f"note: no shared head volumes under {args.data}; phantom subjects only", file=sys.stderr)
        subjects += shared
    if args.subjects:
        wanted = args.subjects.split(",")
        unknown = sorted(set(wanted) - {s["id"] for s in subjects})
        if unknown:
            raise HeadRegError(f"unknown subject(s) {', '.join(unknown)}; known: "
                               f"{', '.join(s['id'] for s in subjects)}")
        subjects = [s for s in subjects if s["id"] in wanted]
    if not subjects:
        raise HeadRegError("no subjects: give --phantoms N or shared data")
    preprocessing.network_grid((0, 0, 0), args.grid_size, args.grid_spacing)   # checks the grid
    augmentation.random_pose(np.random.default_rng(0), (0, 0, 0), args.max_angle, args.max_shift)  # checks ranges
    settings = {"copies": max(counts), "seed": args.seed, "grid_size": list(args.grid_size),
                "grid_spacing_mm": args.grid_spacing, "max_angle_deg": args.max_angle,
                "max_shift_mm": args.max_shift, "center_jitter_mm": 5.0}
    ids = {s["id"] for s in subjects}
    fixed_splits = {s: split for s, split in fixed_splits.items() if s in ids}   # only subjects of this build
    manifest = dataset.build(args.out, subjects, settings, args.workers, fractions, fixed_splits)
    splits = {s: manifest["subjects"][s]["split"] for s in manifest["subjects"]}
    if args.action == "sweep":
        for n in counts:
            dataset.write_manifest(args.out, subjects, settings, splits, n, f"-n{n:03d}")
        print(f"sweep: index-nNNN.csv and manifest-nNNN.json for n = {', '.join(map(str, counts))}")
    for split in augmentation.SPLITS:
        names = [s for s, where in splits.items() if where == split]
        print(f"{split}: {len(names)} subjects ({', '.join(names)})")
    print(f"{manifest['examples']} examples in {args.out} (index.csv, manifest.json, qa/)")
    for failure in manifest["failed"]:
        print(f"failed: {failure['id']}: {failure['error']}", file=sys.stderr)
    return 1 if manifest["failed"] else 0


def command_modality(args) -> int:
    from ..register import classifier
    model = classifier.load_model()
    failed = 0
    for path in args.files:
        try:
            image = _read(path, args)
            volume_io.check_volume_content(image, str(path))
            mask = symmetry.head_mask(image, autoregister.MASK_SPACING_MM)
            autoregister.check_head(image, mask, str(path))
            decision = classifier.decide(image, model, head_mask=mask)
        except HeadRegError as error:   # one bad file does not stop the others
            message = str(error) if str(path) in str(error) else f"{path}: {error}"
            print(f"headreg modality: error: {message}", file=sys.stderr)
            failed += 1
            continue
        print(f"{path} {decision.modality} {decision.probability:.3f}", flush=True)
        for warning in decision.warnings:
            print(f"warning: {path}: {warning}", file=sys.stderr)
    return 1 if failed else 0


def command_register(args) -> int:
    check_outputs([(args.output, transform_io.TRANSFORM_SUFFIXES), (args.report, JSON_SUFFIXES),
                   (args.resampled, IMAGE_SUFFIXES), (args.qa, PICTURE_SUFFIXES)], (args.a, args.b))
    began = time.perf_counter()
    images = [_read(path, args) for path in (args.a, args.b)]
    reading = time.perf_counter() - began
    result = autoregister.register_volumes(*images, refine=not args.no_refine, device=args.device,
                                           model_folder=args.model, names=(str(args.a), str(args.b)))
    result.seconds["reading"] = reading
    fixed, moving = (images[0], images[1]) if result.fixed_index == 0 else (images[1], images[0])
    began = time.perf_counter()
    settings = {"refine": not args.no_refine, "device": args.device,
                "model": None if args.model is None else str(args.model)}
    writes = [(args.output, lambda p: transform_io.write_transform(result.matrix, p))]
    if args.resampled:
        writes.append((args.resampled, lambda p: write_image(sitk.Resample(
            moving, fixed, geometry.sitk_from_matrix(result.matrix), sitk.sitkLinear,
            float(sitk.GetArrayViewFromImage(moving).min()), moving.GetPixelID()), p)))
    if args.qa:
        writes.append((args.qa, lambda p: qa.overlay_figure(
            fixed, moving, result.matrix, p, f"{Path((args.a, args.b)[result.fixed_index]).name} (MR, grey) + "
                                             f"{Path((args.a, args.b)[1 - result.fixed_index]).name} (CT, colour)")))
    if args.report:
        def write_report(p):
            result.seconds["writing"] = time.perf_counter() - began
            Path(p).write_text(json.dumps(autoregister.report(result, (args.a, args.b), settings), indent=2))
        writes.append((args.report, write_report))
    write_all(writes)
    record = autoregister.report(result, (args.a, args.b), settings)
    roles = record["fixed"], record["moving"]
    print(f"fixed (MR): {roles[0]['path']} (p={roles[0]['probability']:.3f}); "
          f"moving (CT): {roles[1]['path']} (p={roles[1]['probability']:.3f})")
    print(f"wrote {args.output} in {sum(result.seconds.values()):.1f} s; quality: head Dice "
          f"{result.quality['head_dice']:.3f}, {'confident' if result.confident else 'LOW CONFIDENCE'}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0 if result.confident else LOW_CONFIDENCE


def _phantom_cases(count: int, out: Path) -> Path:
    """``count`` phantom pairs on whole-head grids, spread over the rotation bins (10-40 mm
    apart), written under OUT/phantoms/, and their cases CSV."""
    folder = out / "phantoms"
    rows = []
    for k in range(count):
        lo, hi = metrics.BINS[k % len(metrics.BINS)]
        rng = np.random.default_rng([k, 99])
        case = folder / f"phantom-{k:03d}"
        if not (case / "truth.tfm").exists():
            case.mkdir(parents=True, exist_ok=True)
            write_phantom(case, k, rng.uniform(lo, hi), rng.uniform(10, 40), phantom.WHOLE_HEAD_GRIDS["ct_grid"],
                          phantom.WHOLE_HEAD_GRIDS["mr_grid"], False, True)
        rows.append(f"{case.name}/ct.nii.gz,{case.name}/mr.nii.gz,{case.name}/truth.tfm,{case.name}")
    write_atomically(folder / "cases.csv", lambda p: Path(p).write_text("a,b,truth,id\n" + "\n".join(rows) + "\n"))
    return folder / "cases.csv"


def _evaluate_case(case: dict, models, refine: bool) -> dict:
    images = [volume_io.read_volume(case[key]) for key in ("a", "b")]
    for key, image in zip(("a", "b"), images):
        volume_io.check_volume_content(image, str(case[key]))
    standard = None
    if str(case["truth"]).lower().endswith(".standard"):
        standard = rire.read_standard(case["truth"])
        truth = standard.matrix
    else:
        truth = transform_io.read_transform(case["truth"])
    began = time.perf_counter()
    result = autoregister.register_volumes(*images, refine=refine, models=models,
                                           names=(str(case["a"]), str(case["b"])))
    seconds = time.perf_counter() - began
    fixed, moving = images[result.fixed_index], images[1 - result.fixed_index]
    head = symmetry.head_mask(fixed)
    record = {"status": "ok", "fixed": str(case["ab"][result.fixed_index]),
              "moving": str(case["ab"][1 - result.fixed_index]), "seconds": seconds,
              "initial_rotation_deg": geometry.rotation_error_deg(truth, np.eye(4)),
              "bin": metrics.rotation_bin(truth),
              **metrics.errors(head, truth, result.matrix, symmetry.symmetry_frame(fixed, head).center),
              **metrics.paper_metrics(fixed, moving, truth, result.matrix),
              "confident": result.confident, "warnings": result.warnings,
              "matrix_fixed_to_moving_lps": result.matrix.tolist()}
    if standard is not None:
        record["tre_rire_corners_mm"] = float(standard.target_registration_errors(result.matrix).mean())
    return record


def command_evaluate(args) -> int:
    if (args.cases is None) == (args.phantoms is None):
        raise HeadRegError("give a cases CSV (columns a,b,truth[,id]) or --phantoms N, not both")
    if args.phantoms is not None and args.phantoms < 1:
        raise HeadRegError(f"--phantoms must be at least 1, not {args.phantoms}")
    if args.out.exists() and not args.out.is_dir():
        raise HeadRegError(f"--out {args.out} exists and is not a folder")
    args.out.mkdir(parents=True, exist_ok=True)
    cases_csv = args.cases if args.cases is not None else _phantom_cases(args.phantoms, args.out)
    cases = [{**row, "ab": (row["a"], row["b"])} for row in batch.read_pairs(cases_csv, ("a", "b", "truth"))]
    models = autoregister.load_models()
    rows, records, failed = [], [], 0
    (args.out / "cases").mkdir(exist_ok=True)
    for case in tqdm(cases, desc="evaluate", unit="case", file=sys.stderr, disable=None):
        path = args.out / "cases" / f"{case['id']}.json"
        record = batch.read_json(path)
        if not record or (record.get("status") != "ok" and args.retry_failed):
            try:
                record = _evaluate_case(case, models, not args.no_refine)
            except KeyboardInterrupt:
                raise
            except Exception as error:   # recorded (a bug with its traceback); the other cases go on
                record = {"status": "failed", "error": one_line(error)}
                if not isinstance(error, (HeadRegError, OSError)):
                    record["traceback"] = traceback.format_exc()
                print(f"headreg evaluate: {case['id']}: error: {record['error']}", file=sys.stderr)
            record = {"id": case["id"], "a": str(case["a"]), "b": str(case["b"]), "truth": str(case["truth"]),
                      **record}
            if record["status"] == "ok":  # the transform found, e.g. for a blind review against the truth
                transform_io.write_transform(record["matrix_fixed_to_moving_lps"], path.with_suffix(".tfm"))
            batch.write_json(record, path)
        rows.append(record)
        if record["status"] == "ok":
            records.append(record)
        else:
            failed += 1
    columns = ["id", "status", "error", "a", "b", "fixed", "bin", "initial_rotation_deg", "tre_mean_mm", "tre_max_mm",
               "rotation_error_deg", "translation_error_mm", "dsc", "jsc", "rp", "rs", "cms", "ssim", "seconds",
               "confident"]
    write_atomically(args.out / "results.csv", lambda p: _write_csv(p, columns, rows))
    table = metrics.summary_table(records)
    if table:
        write_atomically(args.out / "summary.csv", lambda p: _write_csv(p, list(table[0]), table))
        text = metrics.markdown(table)
        write_atomically(args.out / "summary.md", lambda p: Path(p).write_text(text + "\n"))
        metrics.plot(records, args.out / "tre.png")
        print(text)
    doubtful = sum(not r["confident"] for r in records)
    if failed:
        print(f"{failed} failed case(s) are recorded in {args.out}/cases/ and skipped on a rerun; "
              "give --retry-failed to try them again", file=sys.stderr)
    print(f"{len(records)} cases evaluated, {failed} failed, {doubtful} LOW CONFIDENCE; wrote {args.out}/results.csv, "
          f"summary.md, summary.csv, tre.png")
    return 1 if failed else LOW_CONFIDENCE if doubtful else 0


def _write_csv(path, columns, rows) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="headreg",
        description="Fully automatic rigid registration of head CT and MRI (HeadRegistration). "
                    "Transforms map fixed (MR) points to moving (CT) points, LPS mm, as ITK files.")
    parser.add_argument("--version", action="version", version=f"headreg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("phantom", help="write a digital head phantom pair: mr.nii.gz, ct.nii.gz, truth.tfm",
                            description="Write a CT and an MR T1 of the same procedural head with a known "
                                        "rigid misalignment. Without --rotation/--translation, both are drawn "
                                        "from the seed within 15 deg and 5 mm per axis.")
    p.add_argument("outdir", type=Path, help="output folder (created if missing)")
    p.add_argument("--seed", type=int, default=0, help="subject, misalignment and noise (default 0)")
    p.add_argument("--rotation", type=float, metavar="DEG", help="rotation angle about a random axis, degrees")
    p.add_argument("--translation", type=float, metavar="MM", help="translation distance in a random direction, mm")
    p.add_argument("--ct-size", type=int, nargs=3, default=phantom.CT_GRID["size"], metavar=("NX", "NY", "NZ"))
    p.add_argument("--ct-spacing", type=float, nargs=3, default=phantom.CT_GRID["spacing"], metavar=("SX", "SY", "SZ"))
    p.add_argument("--mr-size", type=int, nargs=3, default=phantom.MR_GRID["size"], metavar=("NX", "NY", "NZ"))
    p.add_argument("--mr-spacing", type=float, nargs=3, default=phantom.MR_GRID["spacing"], metavar=("SX", "SY", "SZ"))
    p.add_argument("--labels", action="store_true", help="also write the tissue label maps of both grids")
    p.add_argument("--overwrite", action="store_true", help="replace files already in OUTDIR")
    p.set_defaults(run=command_phantom)

    p = commands.add_parser("info", help="print a volume's geometry, intensity range and a modality guess",
                            description="Read a volume (any file SimpleITK reads, or a DICOM folder) and "
                                        "print its geometry, intensities and a rule-based modality guess.")
    p.add_argument("file", type=Path, help="volume file or DICOM folder")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_series(p)
    p.set_defaults(run=command_info)

    p = commands.add_parser("demo", help="run the main job on the embedded phantom pair",
                            description="Generate the embedded phantom pair, register it with the whole pipeline "
                                        "(as `headreg register`), and print the error against its known truth.")
    p.add_argument("--out", type=Path, default=Path("headreg-demo"), help="output folder (default ./headreg-demo)")
    p.add_argument("--seed", type=int, default=0, help="phantom seed (default 0)")
    p.set_defaults(run=command_demo)

    p = commands.add_parser("groundtruth", help="reference transform of a pair or a batch by symmetry + MI",
                            description="Ground truth after the paper: both heads to their PCA symmetry frames, "
                                        "mutual-information registration of the frames, composed back. "
                                        "One pair: FIXED MOVING -o OUT.tfm. A batch: --pairs CSV (columns "
                                        "fixed,moving[,id]) --out DIR, writing per pair <id>.tfm, <id>.json and "
                                        "a QA picture <id>.png, skipping pairs already done.")
    p.add_argument("fixed", type=Path, nargs="?", help="fixed volume (MR): file or DICOM folder")
    p.add_argument("moving", type=Path, nargs="?", help="moving volume (CT): file or DICOM folder")
    p.add_argument("-o", "--output", type=Path, help="transform file to write (.tfm, .txt, .h5)")
    p.add_argument("--record", type=Path, metavar="JSON", help="also write settings, metric values and time")
    p.add_argument("--qa", type=Path, metavar="PNG", help="also write a three-plane QA picture")
    p.add_argument("--pairs", type=Path, metavar="CSV", help="batch: CSV with columns fixed,moving[,id]")
    p.add_argument("--out", type=Path, metavar="DIR", help="batch: output folder")
    p.add_argument("--workers", type=int, default=1, help="batch: worker processes (default 1)")
    p.add_argument("--preset", choices=reference.PRESETS, default="accurate",
                   help="optimiser settings: 'paper' (the paper's (1+1)-EO) or 'accurate' (default)")
    p.add_argument("--no-symmetry", action="store_true", help="optimise from the images as they lie")
    p.add_argument("--retry-failed", action="store_true", help="batch: run again the pairs recorded as failed")
    _add_series(p)
    p.set_defaults(run=command_groundtruth)

    p = commands.add_parser("synth", help="synthesise the CT of an MR's anatomy, or the MR of a CT's",
                            description="Write a partner volume of the other modality in the source's physical "
                                        "space, on its grid.")
    p.add_argument("source", type=Path, help="real volume: file or DICOM folder")
    p.add_argument("--to", choices=("ct", "mr"), required=True, help="modality of the partner to make")
    p.add_argument("-o", "--output", type=Path, required=True, help="partner volume to write")
    p.add_argument("--seed", type=int, default=0, help="scanner appearance (default 0)")
    p.add_argument("--weighting", choices=synthesis.WEIGHTINGS, default="t1", help="--to ct: the source MR's weighting")
    p.add_argument("--skull", type=Path, help="--to ct: a real bone mask of the source MR")
    p.add_argument("--no-template", action="store_true", help="--to ct: do not use the MNI152/scct templates")
    p.add_argument("--data", type=Path, default=dataset.default_data_dir(), help="folder holding templates/")
    p.add_argument("--ct-units", choices=("hu", "hu-plus-1024", "cormack", "two-peaks"), default="hu",
                   help="--to mr: the source CT's units (two-peaks: calibrate from air and soft tissue)")
    p.add_argument("--mr-weighting", choices=synthesis.RENDERED, help="--to mr: the partner's weighting "
                   "(random by default)")
    p.add_argument("--qa", type=Path, metavar="PNG", help="also write a picture: MR with CT bone edges")
    _add_series(p)
    p.set_defaults(run=command_synth)

    p = commands.add_parser("dataset", help="build a training set: real anatomy, synthesised partners, rigid copies",
                            description="Build (or resume) a training set of network-ready pairs with labels, "
                                        "QA pictures and a manifest; 'sweep' also writes the subsets of the first "
                                        "n copies of every subject for n in --counts.")
    p.add_argument("action", choices=("build", "sweep"))
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--copies", type=int, default=augmentation.PAPER_COPIES, help="build: copies per subject (99)")
    p.add_argument("--counts", default="4:124:5", help="sweep: START:STOP:STEP or a comma list (4:124:5)")
    p.add_argument("--phantoms", type=int, default=4, help="phantom subjects (default 4)")
    p.add_argument("--data", type=Path, default=dataset.default_data_dir(), help="shared head volumes")
    p.add_argument("--no-shared", action="store_true", help="phantom subjects only")
    p.add_argument("--subjects", help="comma list of subject ids to use (default all)")
    p.add_argument("--max-angle", type=float, default=augmentation.PAPER_MAX_ANGLE_DEG, help="degrees (15)")
    p.add_argument("--max-shift", type=float, default=augmentation.PAPER_MAX_SHIFT_MM, help="mm per axis (5)")
    p.add_argument("--grid-size", type=int, nargs=3, default=preprocessing.DEFAULT_GRID_SIZE,
                   metavar=("NX", "NY", "NZ"), help="network grid (64 64 64)")
    p.add_argument("--grid-spacing", type=float, default=preprocessing.DEFAULT_GRID_SPACING_MM, help="mm (4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the splits and copies (default 0)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--fractions", default="0.6,0.2,0.2",
                   help="shares of the subjects for train, validation and test (default 0.6,0.2,0.2)")
    p.add_argument("--splits-from", type=Path, metavar="MANIFEST",
                   help="subjects named in this set's manifest.json (or the set of this model card, e.g. "
                        "HeadRegistrationLib/models/registration.json) keep their split; --fractions counts them and "
                        "places the others")
    p.set_defaults(run=command_dataset)

    p = commands.add_parser("register", help="register a CT and an MR given in any order: OUT.tfm maps MR to CT points",
                            description="Fully automatic rigid registration of a head CT and MR given in any order: "
                                        "detects which is the MR (fixed) and the CT (moving), then symmetry frames, "
                                        "learned prediction, MI refinement and a quality check. OUT.tfm maps fixed "
                                        "(MR) points to moving (CT) points, LPS mm (ITK convention).")
    p.add_argument("a", type=Path, metavar="A", help="a volume file or DICOM folder")
    p.add_argument("b", type=Path, metavar="B", help="the other volume")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.tfm", help="the transform (ITK file)")
    p.add_argument("--report", type=Path, metavar="OUT.json", help="roles, probabilities, matrix, times, quality")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the networks run")
    p.add_argument("--no-refine", action="store_true", help="skip the MI refinement (symmetry + learned only)")
    p.add_argument("--model", type=Path, metavar="DIR", help="folder of the models (default: the shipped ones)")
    p.add_argument("--resampled", type=Path, metavar="OUT", help="the moving volume resampled onto the fixed one")
    p.add_argument("--qa", type=Path, metavar="OUT.png", help="three-plane overlay of the result")
    _add_series(p)
    p.set_defaults(run=command_register)

    p = commands.add_parser("evaluate", help="register cases with known truth; paper metrics, TRE, success per bin",
                            description="Register each case of CASES.csv (columns a,b,truth[,id]; truth an ITK "
                                        "transform MR -> CT or a RIRE .standard file; paths relative to the CSV), or "
                                        "N generated phantom pairs, and write per-case records, results.csv, "
                                        "summary.md/.csv (per initial-rotation bin) and tre.png into OUT.")
    p.add_argument("cases", type=Path, nargs="?", metavar="CASES.csv")
    p.add_argument("--phantoms", type=int, metavar="N", help="generate N phantom pairs (whole-head grids)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--no-refine", action="store_true", help="evaluate without the MI refinement")
    p.add_argument("--retry-failed", action="store_true", help="run again the cases recorded as failed")
    p.set_defaults(run=command_evaluate)

    p = commands.add_parser("modality", help="CT or MR, with its probability, for each volume",
                            description="Print one line per input: the path, CT or MR, and the probability of "
                                        "that answer (learned classifier weighed with DICOM tag and Hounsfield "
                                        "evidence; disagreement is a warning on stderr).")
    p.add_argument("files", type=Path, nargs="+", metavar="FILE", help="volume file or DICOM folder")
    _add_series(p)
    p.set_defaults(run=command_modality)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except HeadRegError as error:
        print(f"headreg {args.command}: error: {error}", file=sys.stderr)
    except OSError as error:
        print(f"headreg {args.command}: error: {error.filename or ''}: {error.strerror or error}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"headreg {args.command}: interrupted", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
