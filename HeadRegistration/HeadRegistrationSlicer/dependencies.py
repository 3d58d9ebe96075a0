"""Python packages the registration needs beyond what Slicer ships, installed the Slicer
way: PyTorch through the PyTorch extension's ``PyTorchUtils`` (the build for this
computer's GPU) when present, everything else through ``slicer.util.pip_install``. Never
at import: the Widget asks on the first click of Auto-register."""

import importlib.util

import slicer

from HeadRegistrationLib.core.errors import HeadRegError

# {import name: pip requirement}; torch runs the search and the learned models, as the
# library's "learn" extra (pyproject.toml).
REQUIRED_PACKAGES = {"torch": "torch>=2.1"}


def missingDependencies() -> list:
    """The pip requirements of REQUIRED_PACKAGES whose package does not import."""
    return [requirement for name, requirement in REQUIRED_PACKAGES.items()
            if importlib.util.find_spec(name) is None]


def installDependencies() -> list:
    """Install the missing packages and return their requirements. A declined PyTorch
    raises ``HeadRegError`` (nothing is registered without it)."""
    missing = missingDependencies()
    for requirement in missing:
        if requirement.startswith("torch"):
            installTorch(requirement)
        else:
            pipInstall(requirement)
    return missing


def pipInstall(requirement: str) -> None:
    """``slicer.util.pip_install``; declined in its confirmation dialog (current Slicer raises
    ``slicer.packaging.InstallationAbortedError``), a ``HeadRegError`` that says what is missing."""
    declined = getattr(getattr(slicer, "packaging", None), "InstallationAbortedError", ())
    try:
        slicer.util.pip_install(requirement)
    except declined as error:
        raise HeadRegError(f"{requirement} is needed for registration and was not installed") from error


def installTorch(requirement: str) -> None:
    try:
        import PyTorchUtils
    except ImportError:
        pipInstall(requirement)
        return
    versionRequirement = requirement[len("torch"):] or None
    if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True,
                                                    torchVersionRequirement=versionRequirement) is None:
        raise HeadRegError("PyTorch is needed for registration and was not installed")
