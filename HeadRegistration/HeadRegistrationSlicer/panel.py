"""The Widget's rules as plain functions, testable without Qt: when Auto-register may be
clicked, what the progress bar and the results label say, when a review may start, and the
registration on a worker thread while the GUI stays alive."""

import threading
from dataclasses import dataclass

CANCELLED_TEXT = "Cancelled: nothing was changed."


@dataclass
class HeadRegistrationOutput:
    """What ``HeadRegistrationLogic.process`` did."""

    registration: object        # the library's result: matrix, fixed_index, modalities, quality, warnings
    fixedVolume: object         # the volume found to be the MR
    movingVolume: object        # the volume found to be the CT
    outputTransform: object     # the linear transform node written


def parameterWidgets(ui) -> dict:
    """{parameter name: widget} of the panel's widgets that carry a SlicerParameterName
    property (the mapping parameterNodeWrapper's connectParametersToGui takes)."""
    return {widget.property("SlicerParameterName"): widget for widget in vars(ui).values()
            if widget.property("SlicerParameterName")}


def applyButtonState(volumeA, volumeB, registering: bool) -> tuple:
    """(enabled, tooltip) of Auto-register: two different volumes, and no registration running."""
    if registering:
        return False, "A registration is running"
    if volumeA is None or volumeB is None or volumeA.GetID() == volumeB.GetID():
        return False, "Select two different volumes"
    return True, "Find which volume is CT and which MR, and register the CT onto the MR"


def reviewMayStart(registering: bool) -> bool:
    """A review never shares the slice views with a running registration (Auto-register, in
    turn, closes an open review before it starts)."""
    return not registering


def progressState(stage: str, fraction: float) -> tuple:
    """(percent, format) of the progress bar: the registration's current stage and the
    fraction of the work done, as the engine reports them (``progress(stage, fraction)``)."""
    return round(100 * fraction), f"{stage} (%p%)"


def outcomeText(output: HeadRegistrationOutput) -> str:
    """The results label: roles with their probabilities and the quality (as ``headreg
    register`` prints them), the warnings, and the transform node written."""
    from HeadRegistrationLib.register import autoregister  # on first use, not when Slicer loads the module

    result = output.registration
    names = [None, None]
    names[result.fixed_index], names[1 - result.fixed_index] = output.fixedVolume.GetName(), output.movingVolume.GetName()
    lines = autoregister.describe(result, names)
    lines.extend(f"Warning: {warning}" for warning in result.warnings)
    lines.append(f"Transform: {output.outputTransform.GetName()}")
    return "\n".join(lines)


def refusalText(error) -> str:
    """The results label after a refused input (a ``HeadRegError``)."""
    return f"Not registered: {error}"


def runWhileWaiting(whileWaiting, function, *args, **kwargs):
    """``function(*args, **kwargs)``; with ``whileWaiting``, on a worker thread while
    ``whileWaiting()`` runs on this one every 50 ms (the Widget's shows the stage and
    processes Qt events). Its exception, if any, is raised here."""
    if whileWaiting is None:
        return function(*args, **kwargs)
    outcome = {}

    def work():
        try:
            outcome["result"] = function(*args, **kwargs)
        except BaseException as error:  # handed to the calling thread below
            outcome["error"] = error

    worker = threading.Thread(target=work, name="HeadRegistration", daemon=True)
    worker.start()
    while worker.is_alive():
        whileWaiting()
        worker.join(0.05)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
