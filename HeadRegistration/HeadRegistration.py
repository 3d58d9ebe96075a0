"""Head Registration: the 3D Slicer module of the HeadRegistration extension.

A thin layer over ``HeadRegistrationLib`` (the engine, pure Python, no Slicer): it turns
volume nodes into SimpleITK images, calls the library, and writes the result into a linear
transform node. Written after Slicer's scripted module template (Module, parameter node,
Widget, Logic, Test); the Slicer-side helpers lie beside it in ``HeadRegistrationSlicer/``.
"""

import logging
import os
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

import HeadRegistrationSlicer  # first: it makes HeadRegistrationLib importable in a source checkout
from HeadRegistrationLib.core.errors import Cancelled, HeadRegError
from HeadRegistrationSlicer import dependencies, mrml, panel, reviewPanel, sampleData

logger = logging.getLogger(__name__)


def resourcesPath() -> str:
    """The Resources folder: beside this file in a built extension, at the repository top
    (beside this file's folder) in a source checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.path.join(here, "Resources"), os.path.join(os.path.dirname(here), "Resources")):
        if os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(f"HeadRegistration: no Resources folder in {here} or beside it")


def registerSampleData() -> None:
    sampleData.registerSampleData(os.path.join(resourcesPath(), "Icons", "HeadRegistrationPhantom.png"))


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
when <i>Refine</i> is on, and writes a linear transform that carries the CT onto the MR. The
transform can be inspected and edited in the Transforms module. The detected roles and the
quality measures are shown under the button; <i>Cancel</i> stops a registration and leaves
the scene as it was. To try it, load <i>HeadRegistrationPhantom</i> from the Sample Data module.
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
Built on 3D Slicer, SimpleITK, numpy and PyTorch, after the method of Islam, Wijewickrema and
O'Leary (Scientific Reports, 2021). The embedded test data is a procedural digital head phantom.
"""
        iconPath = os.path.join(resourcesPath(), "Icons", "HeadRegistration.png")
        if os.path.isfile(iconPath):
            self.parent.icon = qt.QIcon(iconPath)  # also found in a source checkout
        slicer.app.connect("startupCompleted()", registerSampleData)


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
    """The module panel; the work is done by HeadRegistrationLogic, the rules are in
    ``HeadRegistrationSlicer.panel``, the review's part in ``HeadRegistrationSlicer.reviewPanel``."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)  # needed for parameter node observation
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._dependenciesChecked = False
        self._stage = ("", 0.0)     # the registration's current stage and fraction done, for the progress bar
        self._registering = False   # a registration is running (the review waits)
        self._cancelRequested = False
        self.reviewPanel = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)

        uiWidget = slicer.util.loadUI(os.path.join(resourcesPath(), "UI", "HeadRegistration.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        # The .ui connects the top widget's mrmlSceneChanged to each node selector's setMRMLScene.
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = HeadRegistrationLogic()
        self.reviewPanel = reviewPanel.ReviewPanel(self.ui)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.reviewStartButton.connect("clicked(bool)", self.onReviewStart)
        self._setRunning(False)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.reviewPanel.close()
        self.removeObservers()

    def onReload(self) -> None:
        HeadRegistrationSlicer.reload()  # Slicer's Reload runs this file again, not its helpers
        ScriptedLoadableModuleWidget.onReload(self)

    def enter(self) -> None:
        self.initializeParameterNode()
        self.reviewPanel.setShortcuts(True)

    def exit(self) -> None:
        self.reviewPanel.setShortcuts(False)  # the review stays open; its keys work only in this module
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.reviewPanel.close()
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
        a HeadRegistrationParameterNode or None. Through connectParametersToGui, which returns
        the tag that disconnectGui needs (connectGui returns None: Slicer issue #7547)."""
        if self._parameterNode and self._parameterNodeGuiTag is not None:  # not yet undone by exit()
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode, self._parameterNodeGuiTag = inputParameterNode, None
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectParametersToGui(panel.parameterWidgets(self.ui))
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        p = self._parameterNode
        self.ui.applyButton.enabled, self.ui.applyButton.toolTip = panel.applyButtonState(
            p.volumeA if p else None, p.volumeB if p else None, self._registering)

    def _noteStage(self, stage, fraction) -> None:
        self._stage = (stage, fraction)  # called on the registration's worker thread: no Qt here

    def _keepAlive(self) -> None:
        slicer.util.showStatusMessage(f"Head registration: {self._stage[0]}")
        self.ui.progressBar.value, self.ui.progressBar.format = panel.progressState(*self._stage)
        slicer.app.processEvents()

    def onCancelButton(self) -> None:
        self._cancelRequested = True   # read by the worker thread at its next check
        self.ui.cancelButton.enabled = False

    def onApplyButton(self) -> None:
        """Run the registration; a user's mistake (HeadRegError) gets a plain message, anything
        unexpected the error dialog with details; Cancel stops it and says so. An open
        review is closed first (its answers are saved), so the two never share the views."""
        p = self._parameterNode
        self.reviewPanel.close()
        self.ui.resultsLabel.text = ""
        self._setRunning(True)
        refused = None
        try:
            with slicer.util.tryWithErrorDisplay("Head registration failed unexpectedly.", waitCursor=True):
                try:
                    if not self._dependenciesChecked:
                        dependencies.installDependencies()
                        self._dependenciesChecked = True
                    output = self.logic.process(p.volumeA, p.volumeB, p.outputTransform, refine=p.refine,
                                                device=p.device, applyTransform=p.applyTransform,
                                                showOverlay=p.showOverlay, progress=self._noteStage,
                                                whileWaiting=self._keepAlive,
                                                cancelled=lambda: self._cancelRequested)
                except Cancelled:
                    self.ui.resultsLabel.text = panel.CANCELLED_TEXT
                except HeadRegError as error:
                    refused = error
                else:
                    p.outputTransform = output.outputTransform
                    self.ui.resultsLabel.text = panel.outcomeText(output)
        finally:   # whatever happened, the buttons come back
            self._setRunning(False)
        if refused is not None:
            self.ui.resultsLabel.text = panel.refusalText(refused)
            slicer.util.errorDisplay(f"Head registration was not done:\n{refused}", windowTitle="Head Registration")

    def _setRunning(self, running: bool) -> None:
        """Progress and Cancel while a registration runs (no second click, no review start),
        and back afterwards."""
        self._registering, self._cancelRequested = running, False
        self._stage = ("starting" if running else "", 0.0)
        self.ui.progressBar.value = 0
        self.ui.progressBar.visible = self.ui.cancelButton.visible = self.ui.cancelButton.enabled = running
        self.ui.reviewStartButton.enabled = panel.reviewMayStart(running)
        if not running:
            slicer.util.showStatusMessage("")
        self._checkCanApply()

    def onReviewStart(self) -> None:
        if panel.reviewMayStart(self._registering):  # the button is disabled then; this guards a queued click
            self.reviewPanel.start()


#
# HeadRegistrationLogic
#

class HeadRegistrationLogic(ScriptedLoadableModuleLogic):
    """Everything the module does, usable without the GUI (from the Python console or a script):

        logic = HeadRegistrationLogic()
        output = logic.process(volumeNode1, volumeNode2, None)   # creates the transform node
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return HeadRegistrationParameterNode(super().getParameterNode())

    def process(self, volumeA, volumeB, outputTransform=None, refine=True, device="auto",
                applyTransform=True, showOverlay=True, progress=None, whileWaiting=None,
                cancelled=None) -> panel.HeadRegistrationOutput:
        """Register two head volumes given in any order: the library decides which is the MR
        (fixed) and which the CT (moving).

        The registration sees each volume in its own geometry. The result is put into world
        coordinates by the transform hierarchy (``mrml.writeTransformNode``): the output node
        is placed under the fixed volume's parent transform, and, with ``applyTransform``, it
        replaces the moving volume's parent transform (an earlier transform of the moving volume
        is neither used nor kept: the method needs no starting point). The output node is
        created or changed only after the registration succeeded; input voxels are never
        changed. Raises ``HeadRegError`` with a message for the user on bad input.

        With ``whileWaiting`` (the Widget passes one that shows the stage and processes Qt
        events) the registration runs on a worker thread while ``whileWaiting()`` is called
        on this one every 50 ms, so Slicer stays alive; ``progress(stage, fraction)`` is then called on
        the worker thread and must not touch Qt. Everything else stays on this thread.
        ``cancelled()`` (e.g. a Cancel button's flag) is asked at every stage and optimiser
        iteration: when it says True the work stops with ``Cancelled`` within about a second
        and the scene is left as it was.
        """
        mrml.checkVolumes(volumeA, volumeB)
        # Imported on first use, never when Slicer loads the module.
        from HeadRegistrationLib.register import autoregister

        imageA, imageB = mrml.imageFromVolumeNode(volumeA), mrml.imageFromVolumeNode(volumeB)
        result = panel.runWhileWaiting(whileWaiting, autoregister.register_volumes, imageA, imageB,
                                       refine=refine, device=device, progress=progress, cancelled=cancelled,
                                       names=(volumeA.GetName(), volumeB.GetName()))
        fixed, moving = (volumeA, volumeB) if result.fixed_index == 0 else (volumeB, volumeA)
        node = mrml.writeTransformNode(result.matrix, outputTransform, fixed, moving, applyTransform)
        if showOverlay:
            mrml.showInSliceViews(fixed, moving)
        for warning in result.warnings:
            logger.warning(warning)
        return panel.HeadRegistrationOutput(result, fixed, moving, node)


#
# HeadRegistrationTest
#

WHITE_MATTER = 8  # HeadRegistrationLib.data.phantom.LABEL["white_matter"]


class HeadRegistrationTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (Reload and Test, or ctest) on the embedded head phantom of the
    module's Sample Data: no download."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        for test in (self.test_SampleDataIsRegistered, self.test_TransformNodeCarriesMovingOntoFixed,
                     self.test_AutoRegisterPhantom, self.test_ReviewPhantom):
            self.setUp()
            test()

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

    def _brainDistance(self, pair, ct, mr) -> float:
        return float(np.linalg.norm(self._labelCentroidRas(ct, pair.ct_labels, WHITE_MATTER)
                                    - self._labelCentroidRas(mr, pair.mr_labels, WHITE_MATTER)))

    def test_SampleDataIsRegistered(self):
        """The phantom is in the Sample Data module, and its button's action loads it."""
        import SampleData

        registerSampleData()
        source = SampleData.SampleDataLogic().sourceForSampleName(sampleData.SAMPLE_NAME)
        self.assertIsNotNone(source)
        self.assertEqual(source.customDownloader.__name__, sampleData.loadPhantomSample.__name__)
        self.assertEqual(source.nodeNames, list(sampleData.NODE_NAMES))

    def test_TransformNodeCarriesMovingOntoFixed(self):
        """The true transform, written and hardened on the CT, puts the CT's brain on the MR's."""
        self.delayDisplay("Writing the phantom's true transform")
        pair = sampleData.phantomPair()
        ct, mr = sampleData.addPhantomNodes(pair)
        node = mrml.writeTransformNode(pair.truth, None, mr, ct, applyTransform=True)
        self.assertEqual(ct.GetTransformNodeID(), node.GetID())
        self.assertEqual(node.GetNodeReferenceID(node.GetFixedNodeReferenceRole()), mr.GetID())
        self.assertGreater(self._brainDistance(pair, ct, mr), 5.0)
        ct.HardenTransform()
        self.assertLess(self._brainDistance(pair, ct, mr), 1.0)
        self.delayDisplay("Test passed")

    def test_AutoRegisterPhantom(self):
        """Auto-register on the sample finds the MR as fixed, writes the transform only on
        success, leaves the voxels alone and lands the CT's brain on the MR's within 2 mm."""
        self.delayDisplay("Registering the phantom")
        pair = sampleData.phantomPair()
        ct, mr = sampleData.addPhantomNodes(pair)
        logic = HeadRegistrationLogic()
        voxels = slicer.util.arrayFromVolume(ct).copy()
        _, secondMr = sampleData.addPhantomNodes(pair)
        with self.assertRaises(HeadRegError):  # two MR volumes: refused, nothing written
            logic.process(mr, secondMr, None)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLLinearTransformNode"), 0)
        with self.assertRaises(Cancelled):  # cancelled at the first check: nothing written
            logic.process(ct, mr, None, cancelled=lambda: True)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLLinearTransformNode"), 0)
        output = logic.process(ct, mr, None, showOverlay=False)  # CT first: the roles must be found
        self.assertEqual(output.fixedVolume.GetID(), mr.GetID())
        self.assertEqual(output.registration.fixed_index, 1)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(ct), voxels)
        ct.HardenTransform()
        self.assertLess(self._brainDistance(pair, ct, mr), 2.0)
        self.delayDisplay("Test passed")

    def test_ReviewPhantom(self):
        """The ground-truth review shows the phantom's truth and the identity as A and B in the
        review layout, saves an answer and resumes from it."""
        import json
        import tempfile

        import SimpleITK as sitk

        from HeadRegistrationLib.core import transform_io
        from HeadRegistrationLib.evaluate import review

        self.delayDisplay("Reviewing the phantom's truth against the identity")
        pair = sampleData.phantomPair()
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

            session = reviewPanel.HeadRegistrationReview(truthFolder, identityFolder, answers)
            self.assertEqual(session.showNext().id, "phantom")
            layoutNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLLayoutNode")
            self.assertEqual(layoutNode.GetViewArrangement(), reviewPanel.REVIEW_LAYOUT_ID)
            session.answer("A" if review.first_is_a("phantom") else "B")  # the truth
            self.assertIsNone(session.showNext())
            session.close(slicer.mrmlScene)
            self.assertEqual(review.read_answers(answers)["phantom"]["preferred"], "truth")
            self.assertIsNone(reviewPanel.HeadRegistrationReview(truthFolder, identityFolder, answers).showNext())
        self.delayDisplay("Test passed")
