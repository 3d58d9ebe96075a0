"""Outputs: checked before any work, written so that a failure never leaves a
half-written file behind, and the outputs of one command all appear or none does."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

import SimpleITK as sitk

from .errors import HeadRegError, one_line


IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
PICTURE_SUFFIXES = (".png",)
JSON_SUFFIXES = (".json",)


def _temporary(path: Path) -> Path:
    return path.with_name(f".{os.getpid()}.partial.{path.name}")


def check_outputs(outputs: Iterable[tuple[Path | None, tuple[str, ...]]], inputs: Iterable = ()) -> list[Path]:
    """Refuse, before any work, outputs that could not be written: (path, allowed suffixes)
    pairs (None: not asked for) whose folder is missing or not writable, whose name is a
    folder or has another suffix, that are an input, or that are given twice."""
    inputs = [Path(p) for p in inputs]
    checked, seen = [], {}
    for path, suffixes in outputs:
        if path is None:
            continue
        path = Path(path)
        if not path.name.lower().endswith(tuple(suffixes)):
            raise HeadRegError(f"{path}: the file name must end in {' or '.join(suffixes)}")
        if path.is_dir():
            raise HeadRegError(f"{path} is a folder, expected a file name")
        folder = path.parent
        if not folder.is_dir():
            raise HeadRegError(f"cannot write {path}: folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise HeadRegError(f"cannot write {path}: folder {folder} is not writable")
        key = os.path.realpath(path)   # never raises, not even on a symbolic link loop
        if key in {os.path.realpath(source) for source in inputs}:
            raise HeadRegError(f"{path} is an input: refusing to overwrite it")
        if key in seen:
            raise HeadRegError(f"{seen[key]} and {path} are the same output file")
        seen[key] = path
        checked.append(path)
    return checked


def write_all(writes: Iterable[tuple[Path, Callable[[str], None]]]) -> None:
    """Write each (path, write) output to a temporary beside it, then move them all in
    place: all outputs appear, or none does (an error names the real file)."""
    staged = []
    try:
        for path, write in writes:
            path = Path(path)
            temporary = _temporary(path)
            staged.append((temporary, path))
            try:
                write(str(temporary))
            except HeadRegError as error:
                raise HeadRegError(str(error).replace(str(temporary), str(path))) from None
            except RuntimeError as error:
                raise HeadRegError(f"cannot write {path}: {one_line(error).replace(str(temporary), str(path))}") from None
        for temporary, path in staged:
            os.replace(temporary, path)
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)


def write_atomically(path, write: Callable[[str], None]) -> Path:
    """Call ``write(temporary_path)`` then move the result onto ``path`` in one step.

    The temporary file sits beside ``path`` and keeps its extensions, so writers that
    pick the format from the name (SimpleITK) still do. On any error it is removed.
    """
    path = Path(path)
    if path.is_dir():
        raise HeadRegError(f"{path} is a folder, expected a file name")
    if not path.parent.is_dir():
        raise HeadRegError(f"cannot write {path}: folder {path.parent} does not exist")
    temporary = _temporary(path)
    try:
        write(str(temporary))
        os.replace(temporary, path)
    except RuntimeError as error:  # SimpleITK's writers raise RuntimeError
        raise HeadRegError(f"cannot write {path}: {one_line(error).replace(str(temporary), str(path))}") from None
    finally:
        temporary.unlink(missing_ok=True)
    return path


def write_image(image: sitk.Image, path, compress: bool = True) -> Path:
    """Write a SimpleITK image atomically (format from the file name)."""
    return write_atomically(path, lambda p: sitk.WriteImage(image, p, compress))


def write_csv(path, columns, rows) -> None:
    """A CSV of ``rows`` (dicts; other keys ignored, missing ones empty), written atomically."""
    import csv

    def write(temporary):
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    write_atomically(path, write)
