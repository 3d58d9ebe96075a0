"""Writing outputs so that a failure never leaves a half-written file behind."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import SimpleITK as sitk

from .errors import HeadRegError


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
    temporary = path.with_name(f".{os.getpid()}.partial.{path.name}")
    try:
        write(str(temporary))
        os.replace(temporary, path)
    except RuntimeError as error:  # SimpleITK's writers raise RuntimeError
        raise HeadRegError(f"cannot write {path}: {str(error).strip().splitlines()[-1]}") from None
    finally:
        temporary.unlink(missing_ok=True)
    return path


def write_image(image: sitk.Image, path, compress: bool = True) -> Path:
    """Write a SimpleITK image atomically (format from the file name)."""
    return write_atomically(path, lambda p: sitk.WriteImage(image, p, compress))
