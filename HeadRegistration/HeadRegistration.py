"""Head Registration: the 3D Slicer module of the HeadRegistration extension.

A thin layer over ``HeadRegistrationLib`` (the engine, pure Python, no Slicer): it turns
volume nodes into SimpleITK images, calls the library, and writes the result into a linear
transform node. Written after Slicer's scripted module template (Module, parameter node,
Widget, Logic, Test).
"""

import importlib.util
import logging
import os
import sys
import threading
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import qt
import slicer
import vtk
from slicer import vtkMRMLLinearTransformNode, vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin


def _makeLibraryImportable() -> None:
    """``HeadRegistrationLib`` lies beside this file in a built extension (CMake copies it
    there) and at the repository top in a source checkout: add the latter to sys.path if needed."""
    try:
        import HeadRegistrationLib  # noqa: F401
    except ModuleNotFoundError as error:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        if error.name != "HeadRegistrationLib" or not os.path.isdir(os.path.join(root, "HeadRegistrationLib")):
            raise
        sys.path.insert(0, root)


_makeLibraryImportable()

from HeadRegistrationLib import geometry, review, slicer_volumes, transform_io
from HeadRegistrationLib.errors import Cancelled, HeadRegError

logger = logging.getLogger(__name__)


def resourcesPath() -> str:
    """The Resources folder: beside this file in a built extension, at the repository top
    (beside this file's folder) in a source checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.path.join(here, "Resources"), os.path.join(os.path.dirname(here), "Resources")):
        if os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(f"HeadRegistration: no Resources folder in {here} or beside it")


# Python packages that registration needs beyond what Slicer ships: {import name: pip requirement}.
# torch runs the registration search and the learned models (the library needs it); it comes
# through the PyTorch extension (EXTENSION_DEPENDS), which installs the build for this
# computer's GPU, on the first click of Auto-register.
REQUIRED_PACKAGES = {"torch": "torch>=2.1"}


#
# HeadRegistration
#

class HeadRegistration(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and Help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Head Registration"
        self.parent.categories = ["Registration"]
        self.parent.dependencies = []
        self.parent.contributors = [
            "HeadRegistration contributors (https://github.com/headregistration/HeadRegistration)"]
        self.parent.helpText = """
Fully automatic rigid registration of a CT and an MRI volume of the same person's head.
Pick the two volumes in any order and click <b>Auto-register</b>: the module tells which
volume is CT and which is MR, takes the MR as fixed and the CT as moving, brings them close
(symmetry frames of the head, learned prediction), refines the result with mutual information
when <i>Refine</i> is on, and writes a linear transform that carries the CT onto the MR. The transform can be inspected and edited in the Transforms module.
The detected roles and the quality measures are shown under the button.
<br><br>
<b>Ground-truth review</b>: compare two sets of results of the same pairs (a ground-truth
batch folder and a folder of transforms for the same pair ids) blind, as A (top row of
slice views) and B (bottom row) in random allocation; answer with A, B or S (both), saved
at once to a CSV, with the percentages of the paper's radiologist study.
<br><br>
Method after Islam KT, Wijewickrema S, O'Leary S. A deep learning based framework for the
registration of three dimensional multi-modal medical images of the head.
Scientific Reports 11, 1860 (2021).
See the <a href="https://github.com/headregistration/HeadRegistration#readme">documentation</a>.
"""
        self.parent.acknowledgementText = """
Built on 3D Slicer, SimpleITK and numpy, after the method of Islam, Wijewickrema and O'Leary
(Scientific Reports, 2021). The embedded test data is a procedural digital head phantom.
"""
        iconPath = os.path.join(resourcesPath(), "Icons", "HeadRegistration.png")
        if os.path.isfile(iconPath):
            self.parent.icon = qt.QIcon(iconPath)  # also found in a source checkout


#
# HeadRegistrationParameterNode
#

@parameterNodeWrapper
class HeadRegistrationParameterNode:
    """The module's settings, saved with the scene. The two volumes may be given in any order."""

    volumeA: vtkMRMLScalarVolumeNode
    volumeB: vtkMRMLScalarVolumeNode
    outputTransform: vtkMRMLLinearTransformNode  # None: a new node is created
    refine: bool = True
    device: Annotated[str, Choice(["auto", "cpu", "cuda"])] = "auto"
    applyTransform: bool = True
    showOverlay: bool = True


#
# HeadRegistrationWidget
#

class HeadRegistrationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel; all work is done by HeadRegistrationLogic."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)  # needed for parameter node observation
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._dependenciesChecked = False
        self._stage = ""            # the registration's current stage, for the status bar
        self._registering = False   # a registration is running (the review waits)
        self._cancelRequested = False
        self.review = None          # the HeadRegistrationReview in progress
        self._reviewShortcuts = []

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)

        uiWidget = slicer.util.loadUI(os.path.join(resourcesPath(), "UI", "HeadRegistration.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        # The .ui connects the top widget's mrmlSceneChanged to each node selector's setMRMLScene.
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = HeadRegistrationLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        # Progress and Cancel under the button (qt.QProgressBar, qt.QPushButton: PythonQt's Qt classes).
        self.progressBar = qt.QProgressBar()
        self.progressBar.setRange(0, 100)
        self.progressBar.visible = False
        self.cancelButton = qt.QPushButton("Cancel")
        self.cancelButton.toolTip = "Stop the registration; the scene is left as it was"
        self.cancelButton.visible = False
        self.cancelButton.connect("clicked(bool)", self.onCancelButton)
        index = self.ui.applyButton.parentWidget().layout().indexOf(self.ui.applyButton)
        self.ui.applyButton.parentWidget().layout().insertWidget(index + 1, self.progressBar)
        self.ui.applyButton.parentWidget().layout().insertWidget(index + 2, self.cancelButton)
        self.ui.reviewStartButton.connect("clicked(bool)", self.onReviewStart)
        for button, choice in REVIEW_BUTTONS.items():
            getattr(self.ui, button).connect("clicked(bool)", lambda checked, c=choice: self.onReviewAnswer(c))
        self._showReviewState()

        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.closeReview()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()
        if self.review is not None:
            self._setReviewShortcuts(True)

    def exit(self) -> None:
        self._setReviewShortcuts(False)  # the review stays open; its keys work only in this module
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.closeReview()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        """Use the scene's parameter node; preselect the first two scalar volumes."""
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.volumeA and not self._parameterNode.volumeB:
            volumes = [node for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
                       if not node.IsA("vtkMRMLLabelMapVolumeNode")]
            if len(volumes) > 0:
                self._parameterNode.volumeA = volumes[0]
            if len(volumes) > 1:
                self._parameterNode.volumeB = volumes[1]

    def setParameterNode(self, inputParameterNode) -> None:
        """Bind the GUI (widgets with a SlicerParameterName property) to ``inputParameterNode``,
        a HeadRegistrationParameterNode or None."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        """Auto-register is enabled only for two different volumes."""
        p = self._parameterNode
        if p and p.volumeA and p.volumeB and p.volumeA.GetID() != p.volumeB.GetID():
            self.ui.applyButton.toolTip = "Find which volume is CT and which MR, and register the CT onto the MR"
            self.ui.applyButton.enabled = True
        else:
            self.ui.applyButton.toolTip = "Select two different volumes"
            self.ui.applyButton.enabled = False

    def _noteStage(self, stage) -> None:
        self._stage = stage  # called on the registration's worker thread: no Qt here

    def _keepAlive(self) -> None:
        from HeadRegistrationLib import autoregister
        slicer.util.showStatusMessage(f"Head registration: {self._stage}")
        self.progressBar.value = int(100 * autoregister.STAGE_FRACTIONS.get(self._stage, 0.0))
        self.progressBar.format = f"{self._stage} (%p%)"
        slicer.app.processEvents()

    def onCancelButton(self) -> None:
        self._cancelRequested = True   # read by the worker thread at its next check
        self.cancelButton.enabled = False

    def onApplyButton(self) -> None:
        """Run the registration; a user's mistake (HeadRegError) gets a plain message, anything
        unexpected the error dialog with details; Cancel stops it and says so. An open
        review is closed first (its answers are saved), so the two never share the views."""
        p = self._parameterNode
        self.closeReview()
        self.ui.resultsLabel.text = ""
        self._setRunning(True)
        refused = None
        try:
            with slicer.util.tryWithErrorDisplay("Head registration failed unexpectedly.", waitCursor=True):
                try:
                    if not self._dependenciesChecked:
                        self.logic.installDependencies()
                        self._dependenciesChecked = True
                    output = self.logic.process(p.volumeA, p.volumeB, p.outputTransform, refine=p.refine,
                                                device=p.device, applyTransform=p.applyTransform,
                                                showOverlay=p.showOverlay, progress=self._noteStage,
                                                whileWaiting=self._keepAlive,
                                                cancelled=lambda: self._cancelRequested)
                except Cancelled:
                    self.ui.resultsLabel.text = "Cancelled: nothing was changed."
                except HeadRegError as error:
                    refused = error
                else:
                    p.outputTransform = output.outputTransform
                    self.ui.resultsLabel.text = self.logic.describe(output)
        finally:   # whatever happened, the buttons come back
            self._setRunning(False)
        if refused is not None:
            self.ui.resultsLabel.text = f"Not registered: {refused}"
            slicer.util.errorDisplay(f"Head registration was not done:\n{refused}", windowTitle="Head Registration")

    def _setRunning(self, running: bool) -> None:
        """Buttons, progress and Cancel while a registration runs (the GUI stays alive: no
        second click, no review start), and back afterwards."""
        self._registering, self._cancelRequested = running, False
        self._stage = "starting" if running else ""
        self.progressBar.value = 0
        self.progressBar.visible = self.cancelButton.visible = running
        self.cancelButton.enabled = running
        self.ui.reviewStartButton.enabled = not running
        if running:
            self.ui.applyButton.enabled = False
        else:
            slicer.util.showStatusMessage("")
            self._checkCanApply()

    # ------------------------------------------------------------ ground-truth review

    def onReviewStart(self) -> None:
        """Open the two folders and show the first unanswered pair. The answers file defaults
        to review-answers.csv in the ground-truth folder; an existing one is resumed. Not
        while a registration runs (the button is disabled then; this guards the shortcut)."""
        if self._registering:
            return
        self.closeReview()
        first = self.ui.reviewFirstFolderButton.directory
        second = self.ui.reviewSecondFolderButton.directory
        answers = self.ui.reviewAnswersPathLineEdit.currentPath or os.path.join(first, "review-answers.csv")
        try:
            self.review = HeadRegistrationReview(first, second, answers)
        except HeadRegError as error:
            slicer.util.errorDisplay(f"The review cannot start:\n{error}", windowTitle="Head Registration")
            return
        self.ui.reviewAnswersPathLineEdit.currentPath = answers
        self._setReviewShortcuts(True)
        self._showNextReviewPair()

    def onReviewAnswer(self, choice: str) -> None:
        if self.review is None or self.review.current is None:
            return
        with slicer.util.tryWithErrorDisplay("The answer could not be saved.", waitCursor=True):
            self.review.answer(choice)
            self._showNextReviewPair()

    def _showNextReviewPair(self) -> None:
        with slicer.util.tryWithErrorDisplay("The next pair could not be shown.", waitCursor=True):
            self.review.showNext()
        self._showReviewState()
        if self.review.current is None:
            self.closeReview()

    def _showReviewState(self) -> None:
        reviewing = self.review is not None and self.review.current is not None
        for button in REVIEW_BUTTONS:
            getattr(self.ui, button).enabled = reviewing
        if self.review is not None:
            self.ui.reviewProgressLabel.text = self.review.progressText()
            self.ui.reviewSummaryLabel.text = self.review.summaryText()

    def closeReview(self) -> None:
        """End the review on screen (its answers are saved already): remove its nodes, give
        back the layout and the keys."""
        self._setReviewShortcuts(False)
        if self.review is not None:
            self.review.close(slicer.mrmlScene)
            self.review = None
        self._showReviewState()

    def _setReviewShortcuts(self, on: bool) -> None:
        """Keys A, B and S answer "A", "B" and "Both" while a review is open in this module."""
        for shortcut in self._reviewShortcuts:
            shortcut.disconnect("activated()")
            shortcut.setParent(None)
        self._reviewShortcuts = []
        if on:
            for key, choice in REVIEW_KEYS.items():
                shortcut = qt.QShortcut(qt.QKeySequence(key), slicer.util.mainWindow())
                shortcut.connect("activated()", lambda c=choice: self.onReviewAnswer(c))
                self._reviewShortcuts.append(shortcut)


#
# HeadRegistrationLogic
#

@dataclass
class HeadRegistrationOutput:
    """What ``HeadRegistrationLogic.process`` did."""

    registration: object        # the library's result: matrix, fixed_index, modalities, quality, warnings
    fixedVolume: object         # the volume found to be the MR
    movingVolume: object        # the volume found to be the CT
    outputTransform: object     # the linear transform node written


class HeadRegistrationLogic(ScriptedLoadableModuleLogic):
    """Everything the module does, usable without the GUI (from the Python console or a script):

        logic = HeadRegistrationLogic()
        output = logic.process(volumeNode1, volumeNode2, None)   # creates the transform node
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return HeadRegistrationParameterNode(super().getParameterNode())

    # ------------------------------------------------------------ volumes

    def imageFromVolumeNode(self, volumeNode):
        """A SimpleITK copy of a scalar volume in its own geometry (its voxels and IJKToRAS,
        i.e. what its file holds); parent transforms are not applied, see ``process`` for how
        they are honoured. Through sitkUtils inside Slicer, else through arrayFromVolume."""
        try:
            import sitkUtils
        except ImportError:
            sitkUtils = None
        if sitkUtils is not None:
            return sitkUtils.PullVolumeFromSlicer(volumeNode)
        ijkToRas = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(ijkToRas)
        return slicer_volumes.image_from_array_and_ijk_to_ras(slicer.util.arrayFromVolume(volumeNode),
                                                              slicer.util.arrayFromVTKMatrix(ijkToRas))

    def _checkInputs(self, volumeA, volumeB) -> None:
        for name, node in (("first volume", volumeA), ("second volume", volumeB)):
            if node is None:
                raise HeadRegError(f"the {name} is not selected")
            if not node.IsA("vtkMRMLScalarVolumeNode") or node.IsA("vtkMRMLLabelMapVolumeNode"):
                raise HeadRegError(f"{node.GetName()} is not a scalar volume")
            if node.GetImageData() is None:
                raise HeadRegError(f"{node.GetName()} has no voxels")
            if node.GetScene() is None:
                raise HeadRegError(f"{node.GetName()} is not in a scene")
        if volumeA.GetID() == volumeB.GetID():
            raise HeadRegError("the same volume was given twice: select a CT and an MR volume")

    # ------------------------------------------------------------ registration

    def process(self, volumeA, volumeB, outputTransform=None, refine=True, device="auto",
                applyTransform=True, showOverlay=True, progress=None, whileWaiting=None,
                cancelled=None) -> HeadRegistrationOutput:
        """Register two head volumes given in any order: the library decides which is the MR
        (fixed) and which the CT (moving).

        The registration sees each volume in its own geometry. The result is put into world
        coordinates by the transform hierarchy (see ``writeTransformNode``): the output node is
        placed under the fixed volume's parent transform, and, with ``applyTransform``, it
        replaces the moving volume's parent transform (an earlier transform of the moving volume
        is neither used nor kept: the method needs no starting point). The output node is
        created or changed only after the registration succeeded; input voxels are never
        changed. Raises ``HeadRegError`` with a message for the user on bad input.

        With ``whileWaiting`` (the Widget passes one that shows the stage and processes Qt
        events) the registration runs on a worker thread while ``whileWaiting()`` is called
        on this one every 50 ms, so Slicer stays alive; ``progress(stage)`` is then called on
        the worker thread and must not touch Qt. Everything else stays on this thread.
        ``cancelled()`` (e.g. a Cancel button's flag) is asked at every stage and optimiser
        iteration: when it says True the work stops with ``Cancelled`` within about a second
        and the scene is left as it was.
        """
        self._checkInputs(volumeA, volumeB)
        # Imported on first use, never when Slicer loads the module.
        from HeadRegistrationLib import autoregister

        imageA, imageB = self.imageFromVolumeNode(volumeA), self.imageFromVolumeNode(volumeB)
        result = self._whileWaiting(whileWaiting, autoregister.register_volumes, imageA, imageB, refine=refine,
                                    device=device, progress=progress, cancelled=cancelled,
                                    names=(volumeA.GetName(), volumeB.GetName()))
        fixed, moving = (volumeA, volumeB) if result.fixed_index == 0 else (volumeB, volumeA)
        node = self.writeTransformNode(result.matrix, outputTransform, fixed, moving, applyTransform)
        if showOverlay:
            self.showInSliceViews(fixed, moving)
        for warning in result.warnings:
            logger.warning(warning)
        return HeadRegistrationOutput(result, fixed, moving, node)

    @staticmethod
    def _whileWaiting(whileWaiting, function, *args, **kwargs):
        """``function(*args, **kwargs)``; with ``whileWaiting``, on a worker thread while
        ``whileWaiting()`` runs here every 50 ms. Its exception, if any, is raised here."""
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

    def writeTransformNode(self, matrix, outputTransform, fixedVolume, movingVolume, applyTransform=True):
        """Store the fixed->moving LPS matrix ``matrix`` (between the two volumes' own
        geometries, the library's convention) in a linear transform node and return the node.

        The node holds ToParent_RAS = D inv(matrix) D and is put under the fixed volume's parent
        transform (none, linear or not), so the moving volume, placed under it, lands on the
        fixed one in world coordinates. With ``applyTransform`` the node becomes the moving
        volume's parent, replacing the one it had. ``outputTransform`` None creates a node
        named "<moving>_to_<fixed>". Node references "spatialRegistrationFixed" and
        "spatialRegistrationMoving" name the two volumes. Everything is checked before any
        node is created or changed.
        """
        toParent = geometry.slicer_to_parent_ras(matrix)  # raises HeadRegError on a bad matrix
        fixedParent = fixedVolume.GetParentTransformNode()
        parent = fixedParent
        while parent is not None:
            if outputTransform is not None and parent.GetID() == outputTransform.GetID():
                raise HeadRegError(f"the output transform {outputTransform.GetName()} is a parent of the fixed "
                                   f"volume {fixedVolume.GetName()}: choose another output transform")
            parent = parent.GetParentTransformNode()
        scene = fixedVolume.GetScene()
        if scene is None:
            raise HeadRegError(f"{fixedVolume.GetName()} is not in a scene")

        if outputTransform is None:
            name = scene.GenerateUniqueName(f"{movingVolume.GetName()}_to_{fixedVolume.GetName()}")
            outputTransform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", name)
        outputTransform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(toParent))
        outputTransform.SetAndObserveTransformNodeID(fixedParent.GetID() if fixedParent else None)
        outputTransform.SetNodeReferenceID(outputTransform.GetFixedNodeReferenceRole(), fixedVolume.GetID())
        outputTransform.SetNodeReferenceID(outputTransform.GetMovingNodeReferenceRole(), movingVolume.GetID())
        if applyTransform:
            movingVolume.SetAndObserveTransformNodeID(outputTransform.GetID())
        return outputTransform

    def showInSliceViews(self, fixedVolume, movingVolume) -> bool:
        """Fixed as background, moving as foreground at opacity 0.5, where Slicer has slice
        views (not in a bare MRML environment or without a main window). Returns whether shown."""
        app = getattr(slicer, "app", None)
        if app is None or app.layoutManager() is None:
            return False
        slicer.util.setSliceViewerLayers(background=fixedVolume, foreground=movingVolume,
                                         foregroundOpacity=0.5, fit=True)
        return True

    # ------------------------------------------------------------ ground-truth review

    def showReviewPair(self, fixedVolume, movingVolumes: dict, matrices: dict) -> list:
        """Show a pair as results "A" (top row of the review layout) and "B" (bottom row):
        the fixed volume as background in all six views and ``movingVolumes["A"]`` /
        ``["B"]`` (two nodes of the same moving volume) as foreground, each under a new
        transform node made from ``matrices["A"]`` / ``["B"]`` (fixed->moving, LPS). The views
        are linked, so they move together. Returns the transform nodes created."""
        scene = fixedVolume.GetScene()
        layoutNode = scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
        if layoutNode is None:
            raise HeadRegError("the scene has no layout node: the review needs Slicer's slice views")
        if not layoutNode.IsLayoutDescription(REVIEW_LAYOUT_ID):
            layoutNode.AddLayoutDescription(REVIEW_LAYOUT_ID, reviewLayoutDescription())
        transforms = []
        for result in ("A", "B"):
            transform = self.writeTransformNode(matrices[result], None, fixedVolume, movingVolumes[result])
            transform.SetName(scene.GenerateUniqueName(f"Review result {result}"))
            transforms.append(transform)
        layoutNode.SetViewArrangement(REVIEW_LAYOUT_ID)
        composites = {node.GetLayoutName(): node for node in
                      (scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
                       for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")))}
        for result, views in REVIEW_VIEWS.items():
            for view in views:
                if view not in composites:
                    raise HeadRegError(f"the review layout's slice view {view} was not created")
                composite = composites[view]
                composite.SetBackgroundVolumeID(fixedVolume.GetID())
                composite.SetForegroundVolumeID(movingVolumes[result].GetID())
                composite.SetForegroundOpacity(0.5)
                composite.SetLinkedControl(True)
        app = getattr(slicer, "app", None)
        if app is not None and app.layoutManager() is not None:
            slicer.util.resetSliceViews()
        return transforms

    def describe(self, output: HeadRegistrationOutput) -> str:
        """Roles, modality confidence, quality and warnings as text for the results label
        (``modalities`` are in input order, like ``fixed_index``)."""
        result = output.registration
        roles = (("Fixed", output.fixedVolume, result.fixed_index),
                 ("Moving", output.movingVolume, 1 - result.fixed_index))
        lines = []
        for role, node, index in roles:
            decision = result.modalities[index]
            lines.append(f"{role}: {node.GetName()}, {decision['modality']} (p = {decision['probability']:.3f})")
        quality = result.quality
        if quality:
            lines.append(f"Quality: head Dice {quality['head_dice']:.3f}, "
                         f"{'confident' if quality['confident'] else 'LOW CONFIDENCE'}")
        lines.extend(f"Warning: {warning}" for warning in result.warnings)
        lines.append(f"Transform: {output.outputTransform.GetName()}")
        return "\n".join(lines)

    # ------------------------------------------------------------ dependencies

    def missingDependencies(self) -> list:
        """The pip requirements of REQUIRED_PACKAGES whose package does not import."""
        return [requirement for name, requirement in REQUIRED_PACKAGES.items()
                if importlib.util.find_spec(name) is None]

    def installDependencies(self) -> list:
        """Install the missing packages (the Widget calls this on the first click of
        Auto-register, never at import). torch comes through the PyTorch extension's
        PyTorchUtils, which picks the build for this computer's GPU, or through pip when that
        extension is absent; other packages through slicer.util.pip_install. Returns the
        requirements that were missing."""
        missing = self.missingDependencies()
        for requirement in missing:
            if requirement.startswith("torch"):
                self._installTorch(requirement)
            else:
                slicer.util.pip_install(requirement)
        return missing

    def _installTorch(self, requirement: str) -> None:
        try:
            import PyTorchUtils
        except ImportError:
            slicer.util.pip_install(requirement)
            return
        versionRequirement = requirement[len("torch"):] or None
        if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True,
                                                        torchVersionRequirement=versionRequirement) is None:
            raise HeadRegError("PyTorch is needed for registration and was not installed")


#
# Ground-truth review (the paper's radiologist study)
#

REVIEW_BUTTONS = {"reviewAButton": "A", "reviewBButton": "B", "reviewBothButton": "Both"}
REVIEW_KEYS = {"A": "A", "B": "B", "S": "Both"}
REVIEW_LAYOUT_ID = 50201  # a custom layout id (Slicer's own layouts are below 100)
REVIEW_VIEWS = {"A": ("HeadRegReviewA1", "HeadRegReviewA2", "HeadRegReviewA3"),
                "B": ("HeadRegReviewB1", "HeadRegReviewB2", "HeadRegReviewB3")}
REVIEW_ORIENTATIONS = (("Axial", "#F34A33"), ("Sagittal", "#EDD54C"), ("Coronal", "#6EB04B"))


def reviewLayoutDescription() -> str:
    """Slicer layout XML: results A on the top row and B on the bottom row, each as axial,
    sagittal and coronal slice views labelled "A" or "B"."""
    rows = []
    for result, views in REVIEW_VIEWS.items():
        items = "".join(
            f'<item><view class="vtkMRMLSliceNode" singletontag="{view}">'
            f'<property name="orientation" action="default">{orientation}</property>'
            f'<property name="viewlabel" action="default">{result}</property>'
            f'<property name="viewcolor" action="default">{color}</property>'
            f'<property name="viewgroup" action="default">0</property></view></item>'
            for view, (orientation, color) in zip(views, REVIEW_ORIENTATIONS))
        rows.append(f'<item><layout type="horizontal">{items}</layout></item>')
    return f'<layout type="vertical">{"".join(rows)}</layout>'


def loadVolumeHidden(path: str, name: str):
    """Load a volume file into slicer.mrmlScene without showing it."""
    return slicer.util.loadVolume(path, properties={"name": name, "show": False})


class HeadRegistrationReview:
    """A blind A/B review in progress (library: ``HeadRegistrationLib.review``): the pairs of
    a ground-truth batch folder and of a second folder of transforms, shown one at a time
    in random allocation, the answers saved after each click (so a review resumes), and
    the nodes of the pair on screen (removed when the next pair comes)."""

    def __init__(self, firstFolder, secondFolder, answersPath, seed=0, loadVolume=loadVolumeHidden):
        self.pairs = review.review_order(review.find_pairs(firstFolder, secondFolder), seed)
        self.labels = review.folder_labels(firstFolder, secondFolder)
        self.answersPath, self.seed, self.loadVolume = str(answersPath), seed, loadVolume
        self.answers = review.read_answers(self.answersPath)
        for row in self.answers.values():
            if {row["shown_as_a"], row["shown_as_b"]} != set(self.labels):
                raise HeadRegError(f"{self.answersPath} holds answers of a review of "
                                   f"{row['shown_as_a']} and {row['shown_as_b']}, not of "
                                   f"{self.labels[0]} and {self.labels[1]}: choose another answers file")
        self.current = None
        self.nodes = []
        self.problems = {}  # pair id: why it could not be shown
        self.logic = HeadRegistrationLogic()
        self.layoutBefore = None  # the layout to restore when the review closes

    def showNext(self):
        """Show the next unanswered pair and return it, or None when all are answered. A pair
        that cannot be shown (a missing or unreadable file) is skipped for this session and
        named in ``problems``; the review goes on."""
        self.clear()
        while True:
            pair = review.next_pair([p for p in self.pairs if p.id not in self.problems], self.answers)
            if pair is None:
                return None
            try:
                self._show(pair)
            except Exception as error:  # any reader's failure: skip the pair, keep the review going
                self.clear()
                self.problems[pair.id] = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
                logger.warning(f"review: pair {pair.id} skipped: {self.problems[pair.id]}")
                continue
            self.current = pair
            return pair

    def _show(self, pair) -> None:
        matrices = [transform_io.read_transform(path) for path in pair.transforms]
        if not review.first_is_a(pair.id, self.seed):
            matrices.reverse()
        fixed = self.loadVolume(str(pair.fixed), f"{pair.id} fixed")
        self.nodes.append(fixed)
        layoutNode = fixed.GetScene().GetFirstNodeByClass("vtkMRMLLayoutNode")
        if self.layoutBefore is None and layoutNode is not None:
            self.layoutBefore = layoutNode.GetViewArrangement()
        moving = {}
        for result in ("A", "B"):
            moving[result] = self.loadVolume(str(pair.moving), f"{pair.id} moving {result}")
            self.nodes.append(moving[result])
        self.nodes.extend(self.logic.showReviewPair(fixed, moving, dict(zip(("A", "B"), matrices))))

    def answer(self, choice: str) -> None:
        """Save "A", "B" or "Both" for the pair on screen."""
        if self.current is None:
            raise HeadRegError("no pair is being reviewed")
        self.answers = review.record_answer(self.answersPath, self.answers, self.current, self.labels, choice,
                                            self.seed)

    def progressText(self) -> str:
        answered = sum(pair.id in self.answers for pair in self.pairs)
        lines = [f"{answered} of {len(self.pairs)} pairs answered"
                 + (f"; showing {self.current.id}: top row A, bottom row B" if self.current else "")]
        lines.extend(f"Skipped {pairId}: {reason}" for pairId, reason in self.problems.items())
        return "\n".join(lines)

    def summaryText(self) -> str:
        return review.summary_text(self.answers, self.labels)

    def clear(self) -> None:
        """Remove the nodes of the pair on screen (volumes loaded for it, its transforms)."""
        for node in self.nodes:
            scene = node.GetScene()
            if scene is None:
                continue
            for helper in (getattr(node, "GetDisplayNode", None), getattr(node, "GetStorageNode", None)):
                if helper is not None and helper() is not None:
                    scene.RemoveNode(helper())
            scene.RemoveNode(node)
        self.nodes = []
        self.current = None

    def close(self, scene) -> None:
        """Remove the pair on screen and give ``scene`` its layout from before the review."""
        self.clear()
        layoutNode = scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
        if self.layoutBefore is not None and layoutNode is not None:
            layoutNode.SetViewArrangement(self.layoutBefore)
        self.layoutBefore = None


#
# HeadRegistrationTest
#

TEST_CT_GRID = {"size": (128, 128, 40), "spacing": (2.0, 2.0, 4.0)}  # small grids: a fast test
TEST_MR_GRID = {"size": (96, 96, 36), "spacing": (2.5, 2.5, 4.5)}
WHITE_MATTER = 8  # HeadRegistrationLib.phantom.LABEL["white_matter"]


class HeadRegistrationTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (Reload and Test, or ctest) on the embedded head phantom: no download."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_TransformNodeCarriesMovingOntoFixed()
        self.setUp()
        self.test_AutoRegisterPhantom()
        self.setUp()
        self.test_ReviewPhantom()

    def _addPhantomVolumes(self):
        """The phantom's MR and CT as volume nodes, and the phantom (truth and labels)."""
        import SimpleITK as sitk

        from HeadRegistrationLib import phantom

        pair = phantom.make_phantom_pair(seed=3, rotation_deg=12.0, translation_mm=8.0,
                                         ct_grid=TEST_CT_GRID, mr_grid=TEST_MR_GRID)
        mr = slicer.util.addVolumeFromArray(sitk.GetArrayFromImage(pair.mr),
                                            slicer_volumes.ijk_to_ras_from_image(pair.mr), "PhantomMR")
        ct = slicer.util.addVolumeFromArray(sitk.GetArrayFromImage(pair.ct),
                                            slicer_volumes.ijk_to_ras_from_image(pair.ct), "PhantomCT")
        return pair, mr, ct

    @staticmethod
    def _labelCentroidRas(volumeNode, labels, label):
        """World (RAS) centroid of the voxels of ``labels`` (a SimpleITK label image on the
        volume's grid) equal to ``label``, placed by the volume node's IJKToRAS."""
        import SimpleITK as sitk

        ijkToRas = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(ijkToRas)
        m = slicer.util.arrayFromVTKMatrix(ijkToRas)
        ijk = np.argwhere(sitk.GetArrayFromImage(labels) == label)[:, ::-1]
        return (ijk @ m[:3, :3].T + m[:3, 3]).mean(axis=0)

    def test_TransformNodeCarriesMovingOntoFixed(self):
        """The true transform, written by the logic and hardened on the CT, puts the CT's
        brain on the MR's (white matter centroids within 1 mm)."""
        self.delayDisplay("Writing the phantom's true transform")
        pair, mr, ct = self._addPhantomVolumes()
        logic = HeadRegistrationLogic()
        node = logic.writeTransformNode(pair.truth, None, mr, ct, applyTransform=True)
        self.assertEqual(ct.GetTransformNodeID(), node.GetID())
        self.assertEqual(node.GetNodeReferenceID(node.GetFixedNodeReferenceRole()), mr.GetID())
        before = self._labelCentroidRas(ct, pair.ct_labels, WHITE_MATTER)
        ct.HardenTransform()
        after = self._labelCentroidRas(ct, pair.ct_labels, WHITE_MATTER)
        target = self._labelCentroidRas(mr, pair.mr_labels, WHITE_MATTER)
        self.assertGreater(np.linalg.norm(before - target), 5.0)
        self.assertLess(np.linalg.norm(after - target), 1.0)
        self.delayDisplay("Test passed")

    def test_AutoRegisterPhantom(self):
        """Auto-register finds the MR as fixed, creates the transform node only on success,
        and lands the CT's brain on the MR's within 2 mm."""
        self.delayDisplay("Registering the phantom")
        pair, mr, ct = self._addPhantomVolumes()
        logic = HeadRegistrationLogic()
        voxels = slicer.util.arrayFromVolume(ct).copy()
        nodesBefore = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLLinearTransformNode")
        secondMr = slicer.util.addVolumeFromArray(slicer.util.arrayFromVolume(mr),
                                                  slicer_volumes.ijk_to_ras_from_image(pair.mr), "PhantomMR2")
        with self.assertRaises(HeadRegError):  # two MR volumes: refused, nothing written
            logic.process(mr, secondMr, None)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLLinearTransformNode"), nodesBefore)
        output = logic.process(ct, mr, None, showOverlay=False)  # CT first: the roles must be found
        self.assertEqual(output.fixedVolume.GetID(), mr.GetID())
        self.assertEqual(output.movingVolume.GetID(), ct.GetID())
        self.assertEqual(output.registration.fixed_index, 1)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(ct), voxels)
        ct.HardenTransform()
        error = np.linalg.norm(self._labelCentroidRas(ct, pair.ct_labels, WHITE_MATTER)
                               - self._labelCentroidRas(mr, pair.mr_labels, WHITE_MATTER))
        self.assertLess(error, 2.0)
        self.delayDisplay("Test passed")

    def test_ReviewPhantom(self):
        """The ground-truth review shows the phantom's truth and the identity as A and B in the
        review layout, saves an answer and resumes from it."""
        import json
        import tempfile

        import SimpleITK as sitk

        from HeadRegistrationLib import phantom

        self.delayDisplay("Reviewing the phantom's truth against the identity")
        pair = phantom.make_phantom_pair(seed=3, rotation_deg=12.0, translation_mm=8.0,
                                         ct_grid=TEST_CT_GRID, mr_grid=TEST_MR_GRID)
        with tempfile.TemporaryDirectory() as folder:
            truthFolder, identityFolder = os.path.join(folder, "truth"), os.path.join(folder, "identity")
            os.makedirs(truthFolder)
            os.makedirs(identityFolder)
            paths = {name: os.path.join(folder, f"{name}.nii.gz") for name in ("mr", "ct")}
            sitk.WriteImage(pair.mr, paths["mr"])
            sitk.WriteImage(pair.ct, paths["ct"])
            with open(os.path.join(truthFolder, "phantom.json"), "w") as record:
                json.dump({"id": "phantom", "fixed": paths["mr"], "moving": paths["ct"], "status": "ok"}, record)
            transform_io.write_transform(pair.truth, os.path.join(truthFolder, "phantom.tfm"))
            transform_io.write_transform(np.eye(4), os.path.join(identityFolder, "phantom.tfm"))
            answers = os.path.join(folder, "answers.csv")

            session = HeadRegistrationReview(truthFolder, identityFolder, answers)
            shown = session.showNext()
            self.assertEqual(shown.id, "phantom")
            layoutNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLLayoutNode")
            self.assertEqual(layoutNode.GetViewArrangement(), REVIEW_LAYOUT_ID)
            truthShownAs = "A" if review.first_is_a("phantom") else "B"
            session.answer(truthShownAs)
            self.assertIsNone(session.showNext())
            session.close(slicer.mrmlScene)
            saved = review.read_answers(answers)
            self.assertEqual(saved["phantom"]["preferred"], "truth")
            self.assertIsNone(HeadRegistrationReview(truthFolder, identityFolder, answers).showNext())
        self.delayDisplay("Test passed")
