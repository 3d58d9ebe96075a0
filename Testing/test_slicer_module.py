"""The Slicer module (HeadRegistration/HeadRegistration.py and its helper package
HeadRegistration/HeadRegistrationSlicer/) on Slicer's real MRML library.

slicer-core gives the real scene, volume, transform and storage nodes and Slicer's own
slicer.util, but not Slicer's GUI framework; the fixture ``hr`` stands in for exactly the
names the module uses from it (ScriptedLoadableModule base classes, parameterNodeWrapper,
qt, slicer.app, the Sample Data module) and blocks sitkUtils, so the module's pure path
(arrayFromVolume + IJKToRAS) is the one tested.
"""

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import types
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import get_args, get_origin

import numpy as np
import pytest
import SimpleITK as sitk

from HeadRegistrationLib.core import geometry, slicer_volumes, transform_io
from HeadRegistrationLib.data import phantom
from HeadRegistrationLib.evaluate import review
from HeadRegistrationLib.core.errors import HeadRegError

slicer = pytest.importorskip("slicer", reason="slicer-core (Slicer's MRML library) is not installed")
vtk = pytest.importorskip("vtk")

ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = ROOT / "HeadRegistration"
MODULE_PATH = MODULE_DIR / "HeadRegistration.py"
HELPER_DIR = MODULE_DIR / "HeadRegistrationSlicer"
UI_PATH = ROOT / "Resources" / "UI" / "HeadRegistration.ui"
D = geometry.LPS_TO_RAS
WHITE_MATTER = phantom.LABEL["white_matter"]

needs_autoregister = pytest.mark.skipif(
    importlib.util.find_spec("HeadRegistrationLib.register.autoregister") is None,
    reason="HeadRegistrationLib.register.autoregister (register_volumes) does not exist yet")


# ---------------------------------------------------------------- the module, with GUI shims

def gui_shims() -> dict:
    """sys.modules entries for the GUI framework names slicer-core lacks: no behaviour."""
    loadable = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModule:
        def __init__(self, parent):
            self.parent = parent

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None):
            self.parent = parent

    class ScriptedLoadableModuleLogic:
        def __init__(self, parent=None):
            pass

    class ScriptedLoadableModuleTest(unittest.TestCase):
        def delayDisplay(self, message, msec=None):
            pass

    for cls in (ScriptedLoadableModule, ScriptedLoadableModuleWidget, ScriptedLoadableModuleLogic,
                ScriptedLoadableModuleTest):
        setattr(loadable, cls.__name__, cls)

    wrapper = types.ModuleType("slicer.parameterNodeWrapper")

    class Choice:
        def __init__(self, choices):
            self.choices = list(choices)

    wrapper.Choice = Choice
    wrapper.parameterNodeWrapper = lambda cls: cls

    qt = types.ModuleType("qt")
    qt.QIcon = str
    qt.Qt = types.SimpleNamespace(WaitCursor=3)
    return {"slicer.ScriptedLoadableModule": loadable, "slicer.parameterNodeWrapper": wrapper, "qt": qt,
            "SampleData": sample_data_shim(),
            "sitkUtils": None}  # None: "import sitkUtils" raises ImportError


class SlicerApp:
    """What the module asks of slicer.app: signal connections (recorded), the wait cursor,
    testing mode, event processing (``onProcessEvents`` is called, to play the user), and
    neither main window nor layout manager (no slice views)."""

    def __init__(self):
        self.connections, self.onProcessEvents = [], None

    def connect(self, signal, slot):
        self.connections.append((signal, slot))

    def setOverrideCursor(self, cursor):
        pass

    def restoreOverrideCursor(self):
        pass

    def testingEnabled(self):
        return True

    def layoutManager(self):
        return None

    def topLevelWidgets(self):
        return []  # no main window, as in Slicer's ctest

    def processEvents(self):
        if self.onProcessEvents:
            self.onProcessEvents()


# The keywords of SampleData.SampleDataLogic.registerCustomSampleDataSource in Slicer's
# Modules/Scripted/SampleData/SampleData.py (Slicer main, 2026).
SAMPLE_DATA_KEYWORDS = {"category", "sampleName", "uris", "fileNames", "nodeNames", "customDownloader",
                        "thumbnailFileName", "loadFileType", "loadFiles", "loadFileProperties", "checksums"}


def sample_data_shim():
    """Slicer's Sample Data registry: registerCustomSampleDataSource (keywords checked, lists of
    equal length as SampleDataSource demands), sampleDataSourcesByCategory, sourceForSampleName."""
    module = types.ModuleType("SampleData")
    sources = {}

    class SampleDataLogic:
        @staticmethod
        def registerCustomSampleDataSource(**kwargs):
            assert set(kwargs) <= SAMPLE_DATA_KEYWORDS, set(kwargs) - SAMPLE_DATA_KEYWORDS
            lists = [kwargs[k] for k in ("uris", "fileNames", "nodeNames", "loadFileType")]
            assert all(isinstance(v, list) and len(v) == len(lists[0]) for v in lists)
            sources.setdefault(kwargs["sampleName"], types.SimpleNamespace(**kwargs))

        @staticmethod
        def sampleDataSourcesByCategory(category=None):
            return [source for source in sources.values() if category in (None, source.category)]

        def sourceForSampleName(self, sampleName):
            return sources.get(sampleName)

    module.SampleDataLogic = SampleDataLogic
    module.sources = sources
    return module


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def hr():
    """HeadRegistration.py imported by path, with the shims and a real slicer.mrmlScene."""
    with pytest.MonkeyPatch.context() as mp:
        for name, shim in gui_shims().items():
            mp.setitem(sys.modules, name, shim)
        mp.setattr(slicer, "mrmlScene", slicer.vtkMRMLScene(), raising=False)
        mp.setattr(slicer, "app", SlicerApp(), raising=False)
        mp.syspath_prepend(str(MODULE_DIR))  # Slicer puts a scripted module's folder on sys.path
        mp.delitem(sys.modules, "HeadRegistration", raising=False)
        yield load_module(MODULE_PATH, "HeadRegistration")
        for name in [n for n in sys.modules if n == "HeadRegistration" or n.startswith("HeadRegistrationSlicer")]:
            sys.modules.pop(name)


# ---------------------------------------------------------------- data and MRML helpers

TEST_CT_GRID = {"size": (128, 128, 40), "spacing": (2.0, 2.0, 4.0)}  # small grids: fast tests
TEST_MR_GRID = {"size": (96, 96, 36), "spacing": (2.5, 2.5, 4.5)}


@pytest.fixture(scope="module")
def pair():
    return phantom.make_phantom_pair(seed=3, rotation_deg=12.0, translation_mm=8.0,
                                     ct_grid=TEST_CT_GRID, mr_grid=TEST_MR_GRID)


@pytest.fixture(scope="module")
def pair_files(pair, tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantom")
    sitk.WriteImage(pair.mr, str(folder / "mr.nii.gz"))
    sitk.WriteImage(pair.ct, str(folder / "ct.nii.gz"))
    return folder / "mr.nii.gz", folder / "ct.nii.gz"


def load_volume(scene, path):
    """A volume node read by Slicer's own storage node."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", Path(path).name.split(".")[0])
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    node.SetAndObserveStorageNodeID(storage.GetID())
    return node


def ijk_to_ras(node) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return slicer.util.arrayFromVTKMatrix(m)


def to_parent(transform_node) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    transform_node.GetMatrixTransformToParent(m)
    return slicer.util.arrayFromVTKMatrix(m)


def add_linear_transform(scene, axis=(0, 0, 1), angle_deg=0.0, shift=(0, 0, 0)):
    """A linear transform node turning by angle_deg about axis and shifting (RAS, mm)."""
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    matrix = geometry.rigid_matrix(geometry.rotation_about_axis(axis, angle_deg), shift)
    node.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(matrix))
    return node


def centroid_ras(node, labels: sitk.Image, label: int) -> np.ndarray:
    """World centroid of the voxels of a label image (on the node's grid) equal to label,
    placed by the node's IJKToRAS (call after hardening)."""
    m = ijk_to_ras(node)
    ijk = np.argwhere(sitk.GetArrayFromImage(labels) == label)[:, ::-1]
    return (ijk @ m[:3, :3].T + m[:3, 3]).mean(axis=0)


def corners_ijk(node) -> np.ndarray:
    size = np.array(node.GetImageData().GetDimensions()) - 1
    return np.array([[i, j, k, 1.0] for i in (0, size[0]) for j in (0, size[1]) for k in (0, size[2])])


def oblique_image(pixel_type=np.int16) -> sitk.Image:
    rng = np.random.default_rng(7)
    image = sitk.GetImageFromArray(rng.integers(-1000, 2000, size=(6, 7, 8)).astype(pixel_type))
    image.SetSpacing((0.9, 1.3, 2.5))
    image.SetOrigin((12.5, -30.0, 41.0))
    image.SetDirection(geometry.rotation_about_axis([1.0, -2.0, 0.5], 23.0).ravel().tolist())
    return image


def assert_same_geometry(a: sitk.Image, b: sitk.Image, atol=1e-5):
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=atol)
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=atol)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=atol)


# ---------------------------------------------------------------- 1. volumes

def test_geometry_round_trip():
    image = oblique_image()
    m = slicer_volumes.index_to_physical_matrix(image)
    for index in [(0, 0, 0), (7, 6, 5), (3, 1, 4)]:
        np.testing.assert_allclose(m @ [*index, 1.0], [*image.TransformIndexToPhysicalPoint(index), 1.0], atol=1e-9)
    ras = slicer_volumes.ijk_to_ras_from_image(image)
    np.testing.assert_allclose(ras, D @ m)
    back = slicer_volumes.image_from_array_and_ijk_to_ras(sitk.GetArrayFromImage(image), ras)
    assert_same_geometry(back, image, atol=1e-9)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    assert back.GetPixelID() == image.GetPixelID()


def test_bad_geometry_is_refused():
    ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    with pytest.raises(HeadRegError, match="3D"):
        slicer_volumes.image_from_array_and_ijk_to_ras(np.zeros((4, 5)), ras)
    with pytest.raises(HeadRegError, match="no voxels"):
        slicer_volumes.image_from_array_and_ijk_to_ras(np.zeros((0, 5, 5)), ras)
    with pytest.raises(HeadRegError, match="zero voxel spacing"):
        slicer_volumes.image_from_array_and_ijk_to_ras(np.zeros((2, 2, 2)), np.diag([1.0, 0.0, 1.0, 1.0]))
    sheared = ras.copy()
    sheared[0, 1] = 0.5
    with pytest.raises(HeadRegError, match="sheared"):
        slicer_volumes.image_from_array_and_ijk_to_ras(np.zeros((2, 2, 2)), sheared)


def test_slicer_storage_node_agrees_with_simpleitk(hr, tmp_path):
    """An oblique NIfTI written by SimpleITK, read by Slicer's storage node: its IJKToRAS is
    D times our index-to-LPS matrix, and imageFromVolumeNode gives back what sitk.ReadImage gives."""
    path = tmp_path / "oblique.nii.gz"
    sitk.WriteImage(oblique_image(), str(path))
    expected = sitk.ReadImage(str(path))
    scene = slicer.vtkMRMLScene()
    node = load_volume(scene, path)
    np.testing.assert_allclose(ijk_to_ras(node), D @ slicer_volumes.index_to_physical_matrix(expected), atol=1e-5)

    image = hr.mrml.imageFromVolumeNode(node)
    assert_same_geometry(image, expected)
    assert image.GetPixelID() == expected.GetPixelID()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(expected))

    # The volume's own geometry, whatever its parent transform (process() honours parents itself).
    parent = add_linear_transform(scene, [0, 0, 1], 30, [5, 6, 7])
    node.SetAndObserveTransformNodeID(parent.GetID())
    assert_same_geometry(hr.mrml.imageFromVolumeNode(node), expected)


# ---------------------------------------------------------------- 2. the transform node

def test_transform_node_saved_by_slicer_is_the_library_matrix(hr, pair_files, tmp_path):
    scene = slicer.vtkMRMLScene()
    mr, ct = (load_volume(scene, path) for path in pair_files)
    matrix = geometry.matrix_from_parameters([7, -4, 11, 3, -9, 5], [10.0, -20.0, 30.0])
    node = hr.mrml.writeTransformNode(matrix, None, mr, ct, applyTransform=True)

    assert node.GetName() == "ct_to_mr"
    np.testing.assert_allclose(to_parent(node), geometry.slicer_to_parent_ras(matrix), atol=1e-12)
    assert ct.GetTransformNodeID() == node.GetID()
    assert node.GetTransformNodeID() is None and mr.GetTransformNodeID() is None
    assert node.GetNodeReferenceID("spatialRegistrationFixed") == mr.GetID()
    assert node.GetNodeReferenceID("spatialRegistrationMoving") == ct.GetID()

    storage = scene.AddNewNodeByClass("vtkMRMLTransformStorageNode")
    storage.SetFileName(str(tmp_path / "saved_by_slicer.tfm"))
    assert storage.WriteData(node)
    read_back = geometry.matrix_from_sitk(sitk.ReadTransform(str(tmp_path / "saved_by_slicer.tfm")))
    np.testing.assert_allclose(read_back, matrix, atol=1e-9)
    np.testing.assert_allclose(transform_io.read_transform(tmp_path / "saved_by_slicer.tfm"), matrix, atol=1e-9)

    # An existing output node is updated in place; applyTransform=False leaves the moving volume alone.
    other = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    count = scene.GetNumberOfNodesByClass("vtkMRMLLinearTransformNode")
    again = hr.mrml.writeTransformNode(np.eye(4), node, mr, other, applyTransform=False)
    assert again.GetID() == node.GetID()
    assert scene.GetNumberOfNodesByClass("vtkMRMLLinearTransformNode") == count
    assert other.GetTransformNodeID() is None
    np.testing.assert_allclose(to_parent(node), np.eye(4), atol=1e-12)


def test_bad_matrix_or_transform_loop_changes_nothing(hr, pair_files):
    scene = slicer.vtkMRMLScene()
    mr, ct = (load_volume(scene, path) for path in pair_files)
    with pytest.raises(HeadRegError):
        hr.mrml.writeTransformNode(np.ones((3, 3)), None, mr, ct)
    assert scene.GetNumberOfNodesByClass("vtkMRMLLinearTransformNode") == 0
    assert ct.GetTransformNodeID() is None

    above_mr = add_linear_transform(scene)
    mr.SetAndObserveTransformNodeID(above_mr.GetID())
    with pytest.raises(HeadRegError, match="parent of the fixed volume"):
        hr.mrml.writeTransformNode(geometry.translation_matrix([1, 2, 3]), above_mr, mr, ct)
    np.testing.assert_allclose(to_parent(above_mr), np.eye(4))
    assert ct.GetTransformNodeID() is None
    assert scene.GetNumberOfNodesByClass("vtkMRMLLinearTransformNode") == 1


# ---------------------------------------------------------------- 3. hardening

def test_hardened_truth_puts_the_ct_on_the_mr(hr, pair, pair_files):
    scene = slicer.vtkMRMLScene()
    mr, ct = (load_volume(scene, path) for path in pair_files)
    ct_ijk_to_ras = ijk_to_ras(ct)
    before = centroid_ras(ct, pair.ct_labels, WHITE_MATTER)
    hr.mrml.writeTransformNode(pair.truth, None, mr, ct, applyTransform=True)
    ct.HardenTransform()

    # Each CT corner lands where the truth maps it: at D inv(T) D of its RAS point.
    expected = D @ geometry.invert(pair.truth) @ D @ ct_ijk_to_ras @ corners_ijk(ct).T
    np.testing.assert_allclose(ijk_to_ras(ct) @ corners_ijk(ct).T, expected, atol=1e-6)
    # and anatomy meets anatomy: the brain's centroid in both volumes.
    target = centroid_ras(mr, pair.mr_labels, WHITE_MATTER)
    assert np.linalg.norm(before - target) > 5.0
    assert np.linalg.norm(centroid_ras(ct, pair.ct_labels, WHITE_MATTER) - target) < 1.0


def test_parent_transforms_of_both_volumes_are_honoured(hr, pair, pair_files, tmp_path):
    """MR under a transform, CT under an unrelated one: the output goes under the MR's parent,
    replaces the CT's, still holds the library's matrix, and the brains meet in world space."""
    scene = slicer.vtkMRMLScene()
    mr, ct = (load_volume(scene, path) for path in pair_files)
    above_mr = add_linear_transform(scene, [1, 1, 0], 25, [20, -5, 9])
    above_ct = add_linear_transform(scene, [0, 1, 1], -40, [-3, 30, 2])
    mr.SetAndObserveTransformNodeID(above_mr.GetID())
    ct.SetAndObserveTransformNodeID(above_ct.GetID())

    node = hr.mrml.writeTransformNode(pair.truth, None, mr, ct, applyTransform=True)
    assert node.GetTransformNodeID() == above_mr.GetID()
    assert ct.GetTransformNodeID() == node.GetID()
    storage = scene.AddNewNodeByClass("vtkMRMLTransformStorageNode")
    storage.SetFileName(str(tmp_path / "nested.tfm"))
    assert storage.WriteData(node)
    np.testing.assert_allclose(transform_io.read_transform(tmp_path / "nested.tfm"), pair.truth, atol=1e-9)

    mr.HardenTransform()
    ct.HardenTransform()
    target = centroid_ras(mr, pair.mr_labels, WHITE_MATTER)
    assert np.linalg.norm(centroid_ras(ct, pair.ct_labels, WHITE_MATTER) - target) < 1.0


def test_module_self_test_writes_and_hardens(hr):
    """The Test class shipped inside the module (run by Slicer's ctest), on slicer.mrmlScene."""
    case = hr.HeadRegistrationTest()
    case.setUp()
    case.test_TransformNodeCarriesMovingOntoFixed()


# ---------------------------------------------------------------- 4. the UI file

def _expected_widget_class(annotation) -> str:
    if get_origin(annotation) is not None and get_args(annotation)[0] is str:
        return "QComboBox"
    if annotation is bool:
        return "QCheckBox"
    assert annotation.__name__.startswith("vtkMRML")
    return "qMRMLNodeComboBox"


def test_ui_has_every_widget_and_binding_the_module_uses(hr):
    tree = ET.parse(UI_PATH)
    widgets = {w.get("name"): w for w in tree.iter("widget")}
    assert tree.getroot().find("widget").get("class") == "qMRMLWidget"

    source = "".join(path.read_text() for path in (MODULE_PATH, *HELPER_DIR.glob("*.py")))
    used = set(re.findall(r"self\.ui\.(\w+)", source)) | set(hr.reviewPanel.REVIEW_BUTTONS)
    expected = {"applyButton": "QPushButton", "resultsLabel": "QLabel", "reviewStartButton": "QPushButton",
                "progressBar": "QProgressBar", "cancelButton": "QPushButton",
                "reviewFirstFolderButton": "ctkDirectoryButton", "reviewSecondFolderButton": "ctkDirectoryButton",
                "reviewAnswersPathLineEdit": "ctkPathLineEdit", "reviewProgressLabel": "QLabel",
                "reviewSummaryLabel": "QLabel", **{button: "QPushButton" for button in hr.reviewPanel.REVIEW_BUTTONS}}
    assert used == set(expected)
    for name, cls in expected.items():
        assert widgets[name].get("class") == cls
    assert widgets["applyButton"].findtext("property[@name='text']/string") == "Auto-register"

    # Each parameter is bound (SlicerParameterName) to one widget of the class that can show it.
    bound = {}
    for name, widget in widgets.items():
        value = widget.findtext("property[@name='SlicerParameterName']/string")
        if value:
            assert value not in bound, f"{value} bound twice"
            bound[value] = widget
    fields = hr.HeadRegistrationParameterNode.__annotations__
    assert set(bound) == set(fields)
    for field, annotation in fields.items():
        widget = bound[field]
        assert widget.get("class") == _expected_widget_class(annotation), field
        if widget.get("class") == "qMRMLNodeComboBox":
            assert widget.findtext("property[@name='nodeTypes']/stringlist/string") == annotation.__name__
        if widget.get("class") == "QCheckBox":
            default = getattr(hr.HeadRegistrationParameterNode, field)
            assert widget.findtext("property[@name='checked']/bool") == str(default).lower()
        if widget.get("class") == "QComboBox":
            items = [item.findtext("property[@name='text']/string") for item in widget.findall("item")]
            assert items == get_args(annotation)[1].choices

    output = bound["outputTransform"]
    for flag in ("noneEnabled", "addEnabled", "renameEnabled"):
        assert output.findtext(f"property[@name='{flag}']/bool") == "true"

    # Every node selector gets the scene from the top widget, as in Slicer's template.
    connected = {c.findtext("receiver") for c in tree.iter("connection")
                 if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"
                 and c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"
                 and c.findtext("sender") == "HeadRegistration"}
    assert connected == {name for name, w in widgets.items() if w.get("class") == "qMRMLNodeComboBox"}


def test_module_description_and_resources(hr, tmp_path):
    parent = types.SimpleNamespace()
    hr.HeadRegistration(parent)
    assert parent.title == "Head Registration" and parent.categories == ["Registration"]
    assert "Islam" in parent.helpText and "Scientific Reports 11, 1860 (2021)" in parent.helpText
    assert Path(parent.icon) == ROOT / "Resources" / "Icons" / "HeadRegistration.png"
    assert Path(hr.resourcesPath()) == ROOT / "Resources"  # source checkout: beside the module's folder
    assert ("startupCompleted()", hr.registerSampleData) in slicer.app.connections  # as Slicer's template

    # Built extension: Resources/ and the helper package beside the module file (where CMake copies them).
    built = tmp_path / "qt-scripted-modules"
    built.mkdir()
    shutil.copy(MODULE_PATH, built / "HeadRegistration.py")
    shutil.copytree(HELPER_DIR, built / HELPER_DIR.name)
    shutil.copytree(ROOT / "Resources", built / "Resources")
    copy = load_module(built / "HeadRegistration.py", "HeadRegistration_built")
    sys.modules.pop("HeadRegistration_built")
    assert Path(copy.resourcesPath()) == built / "Resources"


def test_source_checkout_imports_the_library_without_changing_sys_path(tmp_path):
    """Slicer given the checkout's module folder only (HeadRegistrationLib not installed):
    the helpers import the engine from the repository top by its path, sys.path untouched."""
    code = f"""
import sys
sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()
                 and "editable" not in getattr(f, "__module__", "").lower()]
sys.path = [p for p in sys.path if p not in ("", {str(ROOT)!r})]
sys.path.append({str(MODULE_DIR)!r})          # what Slicer does for a module folder
before = list(sys.path)
try:
    import HeadRegistrationLib
    raise SystemExit("the library was importable without the helper package")
except ModuleNotFoundError:
    pass
import HeadRegistrationSlicer
import HeadRegistrationLib
from HeadRegistrationLib.register import autoregister
assert sys.path == before, sys.path
print(HeadRegistrationLib.__file__, autoregister.__name__)
"""
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr + run.stdout
    assert run.stdout.split()[0] == str(ROOT / "HeadRegistrationLib" / "__init__.py")


def test_dependencies_are_only_installed_on_request(hr, monkeypatch):
    logic = hr.dependencies
    assert logic.REQUIRED_PACKAGES == {"torch": "torch>=2.1"}  # as pyproject's "learn" extra
    assert logic.missingDependencies() == [] and logic.installDependencies() == []  # torch is here
    installed = []
    monkeypatch.setattr(slicer.util, "pip_install", installed.append)
    monkeypatch.setitem(logic.REQUIRED_PACKAGES, "headreg_no_such_package", "headreg-no-such-package>=1")
    assert logic.installDependencies() == ["headreg-no-such-package>=1"]
    assert installed == ["headreg-no-such-package>=1"]

    # A missing torch comes through the PyTorch extension when it is there, pip otherwise.
    monkeypatch.setattr(logic, "REQUIRED_PACKAGES", {"headreg_no_such_torch": "torch>=2.1"})
    asked = []

    class PyTorchUtilsLogic:
        def installTorch(self, askConfirmation, torchVersionRequirement=None):
            asked.append(torchVersionRequirement)
            return result

    monkeypatch.setitem(sys.modules, "PyTorchUtils", types.SimpleNamespace(PyTorchUtilsLogic=PyTorchUtilsLogic))
    result = types.SimpleNamespace(__version__="2.13.0")
    assert logic.installDependencies() == ["torch>=2.1"] and asked == [">=2.1"]
    result = None  # the user declined
    with pytest.raises(HeadRegError, match="PyTorch is needed"):
        logic.installDependencies()

    class InstallationAbortedError(Exception):
        pass

    def declined(requirement):
        raise InstallationAbortedError()

    monkeypatch.setattr(slicer, "packaging", types.SimpleNamespace(InstallationAbortedError=InstallationAbortedError),
                        raising=False)
    monkeypatch.setattr(slicer.util, "pip_install", declined)
    with pytest.raises(HeadRegError, match="headreg-no-such-package>=1 is needed"):
        logic.pipInstall("headreg-no-such-package>=1")
    monkeypatch.setattr(slicer.util, "pip_install", installed.append)
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)  # the extension is absent
    installed.clear()
    logic.installDependencies()
    assert installed == ["torch>=2.1"]


# ---------------------------------------------------------------- 5. process()

def test_process_refuses_bad_selections_before_registering(hr, pair_files):
    scene = slicer.vtkMRMLScene()
    mr, ct = (load_volume(scene, path) for path in pair_files)
    labels = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    labels.SetAndObserveImageData(mr.GetImageData())
    empty = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    logic = hr.HeadRegistrationLogic()
    for a, b, message in [(mr, mr, "same volume"), (None, ct, "not selected"), (labels, ct, "not a scalar volume"),
                          (empty, ct, "no voxels")]:
        with pytest.raises(HeadRegError, match=message):
            logic.process(a, b, None)
    assert scene.GetNumberOfNodesByClass("vtkMRMLLinearTransformNode") == 0


def test_describe_reports_roles_quality_and_warnings(hr):
    scene = slicer.vtkMRMLScene()
    ct = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "head CT")
    mr = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "head T1")
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "CT_to_T1")
    registration = types.SimpleNamespace(matrix=np.eye(4), fixed_index=1,
                                         quality={"head_dice": 0.9123, "confident": False},
                                         modalities=({"modality": "CT", "probability": 0.97},
                                                     {"modality": "MR", "probability": 0.9}),
                                         warnings=["the CT has a gantry tilt"])
    text = hr.panel.outcomeText(hr.panel.HeadRegistrationOutput(registration, mr, ct, node))
    assert text.splitlines() == ["Fixed: head T1, MR (p = 0.900)", "Moving: head CT, CT (p = 0.970)",
                                 "Quality: head Dice 0.912, LOW CONFIDENCE", "Warning: the CT has a gantry tilt",
                                 "Transform: CT_to_T1"]


@needs_autoregister
def test_process_registers_the_phantom(hr, pair, pair_files):
    scene = slicer.vtkMRMLScene()
    mr, ct = (load_volume(scene, path) for path in pair_files)
    voxels = [slicer.util.arrayFromVolume(v).copy() for v in (mr, ct)]
    stages, waits = [], []
    output = hr.HeadRegistrationLogic().process(ct, mr, None, showOverlay=True,  # CT first
                                                progress=lambda stage, fraction: stages.append(stage),
                                                whileWaiting=lambda: waits.append(1))
    assert len(waits) > 10 and "refinement" in stages  # the registration ran on a worker thread
    assert output.registration.fixed_index == 1
    assert output.fixedVolume.GetID() == mr.GetID() and output.movingVolume.GetID() == ct.GetID()
    assert scene.GetNumberOfNodesByClass("vtkMRMLLinearTransformNode") == 1
    assert ct.GetTransformNodeID() == output.outputTransform.GetID()
    np.testing.assert_allclose(to_parent(output.outputTransform),
                               geometry.slicer_to_parent_ras(output.registration.matrix), atol=1e-9)
    for volume, before in zip((mr, ct), voxels):
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(volume), before)
    ct.HardenTransform()
    target = centroid_ras(mr, pair.mr_labels, WHITE_MATTER)
    assert np.linalg.norm(centroid_ras(ct, pair.ct_labels, WHITE_MATTER) - target) < 2.0


@needs_autoregister
def test_process_refusal_leaves_no_node_and_no_changed_voxels(hr, pair_files):
    scene = slicer.vtkMRMLScene()
    mr = load_volume(scene, pair_files[0])
    second_mr = load_volume(scene, pair_files[0])
    constant = load_volume(scene, pair_files[1])
    slicer.util.arrayFromVolume(constant)[:] = 7
    logic = hr.HeadRegistrationLogic()
    for a, b in [(mr, second_mr), (mr, constant)]:
        before = [slicer.util.arrayFromVolume(v).copy() for v in (a, b)]
        with pytest.raises(HeadRegError):  # raised on the worker thread, handed to this one
            logic.process(a, b, None, whileWaiting=lambda: None)
        assert scene.GetNumberOfNodesByClass("vtkMRMLLinearTransformNode") == 0
        assert a.GetTransformNodeID() is None and b.GetTransformNodeID() is None
        for volume, voxels in zip((a, b), before):
            np.testing.assert_array_equal(slicer.util.arrayFromVolume(volume), voxels)


@needs_autoregister
def test_module_self_test_runs_completely(hr, monkeypatch):
    """runTest as Slicer runs it; the application's parts that slicer-core lacks are given
    to slicer.mrmlScene: the layout logic, orientation presets, one slice composite node per
    review view, and loadVolume through Slicer's storage node."""
    scene = slicer.mrmlScene
    slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(scene)
    layout_logic = slicer.vtkMRMLLayoutLogic()
    layout_logic.SetMRMLScene(scene)
    for view in [v for views in hr.reviewPanel.REVIEW_VIEWS.values() for v in views]:
        composite = slicer.vtkMRMLSliceCompositeNode()
        composite.SetLayoutName(view)
        composite.SetSingletonTag(view)  # survives scene.Clear(), like Slicer's own
        scene.AddNode(composite)
    monkeypatch.setattr(slicer.util, "loadVolume",
                        lambda path, properties=None: load_volume_or_raise(scene, path), raising=False)
    hr.HeadRegistrationTest().runTest()


# ---------------------------------------------------------------- 6. ground-truth review

def load_volume_or_raise(scene, path):
    """Load like slicer.util.loadVolume: the node, or RuntimeError and nothing left behind."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", Path(path).name.split(".")[0])
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    if not storage.ReadData(node):
        scene.RemoveNode(node)
        scene.RemoveNode(storage)
        raise RuntimeError(f"Failed to load volume: {path}")
    node.SetAndObserveStorageNodeID(storage.GetID())
    return node


def review_scene():
    """A scene with what Slicer's application gives it: a layout node (vtkMRMLLayoutLogic)
    and the slice orientation presets; slice composite nodes for the review views are added
    as vtkMRMLSliceLogic adds one per slice view."""
    scene = slicer.vtkMRMLScene()
    slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(scene)
    layout_logic = slicer.vtkMRMLLayoutLogic()
    layout_logic.SetMRMLScene(scene)
    return scene, layout_logic


def add_composite_nodes(scene, views):
    for view in views:
        composite = scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
        composite.SetLayoutName(view)


@pytest.fixture
def review_folders(pair, pair_files, tmp_path):
    """A ground-truth batch of three pairs (the phantom's truth; one pair's moving file is
    missing) and a second folder with the identity for each."""
    first, second = tmp_path / "with-symmetry", tmp_path / "without-symmetry"
    first.mkdir()
    second.mkdir()
    mr_path, ct_path = pair_files
    for pair_id, moving in (("p1", ct_path), ("p2", ct_path), ("gone", tmp_path / "missing.nii.gz")):
        (first / f"{pair_id}.json").write_text(json.dumps(
            {"id": pair_id, "fixed": str(mr_path), "moving": str(moving), "status": "ok"}))
        transform_io.write_transform(pair.truth, first / f"{pair_id}.tfm")
        transform_io.write_transform(np.eye(4), second / f"{pair_id}.tfm")
    return first, second


def test_review_layout_is_two_rows_of_three_labelled_views(hr):
    scene, _ = review_scene()
    layout = scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
    layout.AddLayoutDescription(hr.reviewPanel.REVIEW_LAYOUT_ID, hr.reviewPanel.reviewLayoutDescription())
    layout.SetViewArrangement(hr.reviewPanel.REVIEW_LAYOUT_ID)
    for result, views in hr.reviewPanel.REVIEW_VIEWS.items():
        for view, (orientation, _) in zip(views, hr.reviewPanel.REVIEW_ORIENTATIONS):
            slice_node = scene.GetSingletonNode(view, "vtkMRMLSliceNode")
            assert slice_node is not None, view
            assert slice_node.GetLayoutLabel() == result and slice_node.GetOrientation() == orientation


def test_review_shows_each_pair_as_a_and_b_and_saves_answers(hr, pair, review_folders, tmp_path):
    first, second = review_folders
    scene, _ = review_scene()
    add_composite_nodes(scene, [v for views in hr.reviewPanel.REVIEW_VIEWS.values() for v in views])
    layout = scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
    layout.SetViewArrangement(layout.SlicerLayoutFourUpView)
    nodes_before = scene.GetNumberOfNodes()
    answers_path = tmp_path / "answers.csv"
    session = hr.reviewPanel.HeadRegistrationReview(first, second, answers_path,
                                        loadVolume=lambda path, name: load_volume_or_raise(scene, path))

    shown = session.showNext()
    assert shown is not None and shown.id != "gone"
    assert layout.GetViewArrangement() == hr.reviewPanel.REVIEW_LAYOUT_ID
    fixed, moving_a, moving_b = session.nodes[:3]
    expected = {"A": pair.truth, "B": np.eye(4)} if review.first_is_a(shown.id) else \
        {"A": np.eye(4), "B": pair.truth}
    for result, moving in (("A", moving_a), ("B", moving_b)):
        np.testing.assert_allclose(to_parent(moving.GetParentTransformNode()),
                                   geometry.slicer_to_parent_ras(expected[result]), atol=1e-6)
        for view in hr.reviewPanel.REVIEW_VIEWS[result]:
            composite = next(scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
                             for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode"))
                             if scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode").GetLayoutName() == view)
            assert composite.GetBackgroundVolumeID() == fixed.GetID()
            assert composite.GetForegroundVolumeID() == moving.GetID()
            assert composite.GetForegroundOpacity() == 0.5 and composite.GetLinkedControl()

    session.answer("A")
    second_pair = session.showNext()
    assert second_pair.id not in (shown.id, "gone")
    assert len(session.nodes) == 5  # the first pair's volumes and transforms are gone
    assert "Skipped gone: Failed to load volume" in session.progressText()
    session.answer("Both")
    assert session.showNext() is None
    assert scene.GetNumberOfNodesByClass("vtkMRMLLinearTransformNode") == 0
    session.close(scene)
    assert layout.GetViewArrangement() == layout.SlicerLayoutFourUpView
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == 0
    # Nothing left of the pairs: only the review layout's six slice nodes were added.
    assert scene.GetNumberOfNodes() == nodes_before + 6

    answers = review.read_answers(answers_path)
    assert set(answers) == {"p1", "p2"} and answers[second_pair.id]["preferred"] == "both"
    labels = ("with-symmetry", "without-symmetry")
    assert answers[shown.id]["preferred"] == labels[0 if review.first_is_a(shown.id) else 1]
    assert "both equally good: 1 of 2 (50.0 %)" in session.summaryText()

    # A new session on the same answers resumes: nothing left but the broken pair.
    resumed = hr.reviewPanel.HeadRegistrationReview(first, second, answers_path,
                                        loadVolume=lambda path, name: load_volume_or_raise(scene, path))
    assert resumed.showNext() is None and "gone" in resumed.problems
    with pytest.raises(HeadRegError, match="no pair is being reviewed"):
        resumed.answer("A")


def test_review_refuses_an_answers_file_of_another_review(hr, review_folders, tmp_path):
    first, second = review_folders
    answers_path = tmp_path / "answers.csv"
    pairs = review.find_pairs(first, second)
    review.record_answer(answers_path, {}, pairs[0], ("x", "y"), "A")
    with pytest.raises(HeadRegError, match="not of with-symmetry and without-symmetry"):
        hr.reviewPanel.HeadRegistrationReview(first, second, answers_path)


# ---------------------------------------------------------------- 7. the panel's rules and the Widget

def test_apply_button_needs_two_different_volumes_and_no_running_registration(hr):
    scene = slicer.vtkMRMLScene()
    a, b = (scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name) for name in ("a", "b"))
    assert hr.panel.applyButtonState(a, b, registering=False)[0]
    for volumes, registering in (((a, a), False), ((a, None), False), ((None, None), False), ((a, b), True)):
        enabled, tooltip = hr.panel.applyButtonState(*volumes, registering)
        assert not enabled and tooltip
    assert hr.panel.reviewMayStart(False) and not hr.panel.reviewMayStart(True)


def test_progress_bar_shows_the_stage_and_the_fraction(hr):
    assert hr.panel.progressState("refinement", 0.714) == (71, "refinement (%p%)")
    assert hr.panel.progressState("starting", 0.0) == (0, "starting (%p%)")


class Attributes(types.SimpleNamespace):
    """A widget as the Widget uses it: properties, and connect() recorded (Qt is not here)."""

    def connect(self, signal, slot):
        self.__dict__.setdefault("slots", []).append((signal, slot))


def widget_ui():
    names = ("applyButton", "cancelButton", "progressBar", "resultsLabel", "reviewStartButton", "reviewAButton",
             "reviewBButton", "reviewBothButton", "reviewProgressLabel", "reviewSummaryLabel")
    return types.SimpleNamespace(**{name: Attributes(enabled=True, visible=True, text="", toolTip="", value=0,
                                                     format="") for name in names})


@pytest.fixture
def widget(hr, monkeypatch):
    """The module's Widget after setup, on Slicer's real slicer.util (tryWithErrorDisplay,
    showStatusMessage), with the panel's widgets as plain attributes."""
    errors = []
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **kwargs: errors.append(text))
    w = hr.HeadRegistrationWidget(types.SimpleNamespace(isEntered=True))
    w.ui, w.logic = widget_ui(), hr.HeadRegistrationLogic()
    w.reviewPanel = hr.reviewPanel.ReviewPanel(w.ui)
    w.reviewPanel.closed = 0
    monkeypatch.setattr(w.reviewPanel, "close", lambda: setattr(w.reviewPanel, "closed", w.reviewPanel.closed + 1))
    w._dependenciesChecked = True
    w._setRunning(False)
    w.errors = errors
    return w


def assert_idle(w):
    """The buttons as before a click (two volumes selected): Auto-register on, no progress, no Cancel."""
    assert w.ui.applyButton.enabled and not w.ui.cancelButton.visible and not w.ui.progressBar.visible
    assert w.ui.reviewStartButton.enabled and not w._registering


def select(w, a, b):
    w._parameterNode = types.SimpleNamespace(volumeA=a, volumeB=b, outputTransform=None, refine=True, device="cpu",
                                             applyTransform=True, showOverlay=False)
    w._checkCanApply()


def test_widget_restores_its_buttons_after_any_outcome(hr, widget, pair_files, monkeypatch):
    """An unexpected error keeps its traceback (Slicer's tryWithErrorDisplay re-raises) and the
    buttons still come back; a refusal is said in one line; an open review is closed first."""
    scene = slicer.vtkMRMLScene()
    mr, ct = (load_volume(scene, path) for path in pair_files)
    select(widget, mr, ct)
    assert widget.ui.applyButton.enabled
    running = []

    def fails(*args, **kwargs):
        running.append((widget.ui.applyButton.enabled, widget.ui.cancelButton.visible,
                        widget.ui.reviewStartButton.enabled))
        raise RuntimeError("a bug")

    monkeypatch.setattr(widget.logic, "process", fails)
    with pytest.raises(RuntimeError, match="a bug"):
        widget.onApplyButton()
    assert running == [(False, True, False)] and widget.reviewPanel.closed == 1
    assert_idle(widget)

    monkeypatch.setattr(widget.logic, "process",
                        lambda *args, **kwargs: (_ for _ in ()).throw(HeadRegError("both volumes look like CT")))
    widget.onApplyButton()
    assert widget.ui.resultsLabel.text == "Not registered: both volumes look like CT"
    assert widget.errors and "both volumes look like CT" in widget.errors[-1]
    assert_idle(widget)


@needs_autoregister
def test_widget_cancel_stops_a_registration_within_a_second(hr, widget, pair_files):
    """Cancel clicked while a real registration runs on its worker thread: the work stops
    within about a second, nothing is written, the panel says so; then Auto-register works."""
    import time

    scene = slicer.vtkMRMLScene()
    mr, ct = (load_volume(scene, path) for path in pair_files)
    select(widget, ct, mr)
    clicked = {}

    def user():  # called where the Widget processes Qt events, every 50 ms
        if widget._stage[0] == "screening" and "at" not in clicked:
            clicked["at"] = time.monotonic()
            widget.onCancelButton()

    slicer.app.onProcessEvents = user
    try:
        widget.onApplyButton()
    finally:
        slicer.app.onProcessEvents = None
    assert "at" in clicked and time.monotonic() - clicked["at"] < 1.5
    assert widget.ui.resultsLabel.text == hr.panel.CANCELLED_TEXT
    assert scene.GetNumberOfNodesByClass("vtkMRMLLinearTransformNode") == 0 and ct.GetTransformNodeID() is None
    assert_idle(widget)

    widget.onApplyButton()
    assert widget.ui.resultsLabel.text.startswith("Fixed: mr, MR")
    assert ct.GetTransformNodeID() == widget._parameterNode.outputTransform.GetID()
    assert_idle(widget)


def test_review_keys_only_while_a_review_is_open(hr, monkeypatch):
    made = []

    class QShortcut(Attributes):
        def __init__(self, keys, parent):
            super().__init__(keys=keys, parent=parent)
            made.append(self)

        def disconnect(self, signal):
            self.slots = []

        def setParent(self, parent):
            self.parent = parent

    monkeypatch.setattr(sys.modules["qt"], "QShortcut", QShortcut, raising=False)
    monkeypatch.setattr(sys.modules["qt"], "QKeySequence", str, raising=False)
    panel = hr.reviewPanel.ReviewPanel(widget_ui())
    panel.review = types.SimpleNamespace(current=None, close=lambda scene: None)
    panel.setShortcuts(True)  # no main window (as in ctest): no keys
    assert made == []
    monkeypatch.setattr(slicer.util, "mainWindow", lambda: "main window")
    panel.review = None
    panel.setShortcuts(True)  # the module is entered, no review: no keys
    assert made == []
    panel.review = types.SimpleNamespace(current=None, close=lambda scene: None)
    panel.setShortcuts(True)
    assert sorted(s.keys for s in made) == ["A", "B", "S"] and {s.parent for s in made} == {"main window"}
    panel.close()
    assert panel.review is None and all(s.parent is None and not s.slots for s in made)


def test_review_panel_is_put_right_after_an_unexpected_error(hr, monkeypatch):
    """Slicer's tryWithErrorDisplay re-raises after its dialog: the panel still ends the review."""
    panel = hr.reviewPanel.ReviewPanel(widget_ui())
    closed = []

    def broken():
        raise RuntimeError("a bug")

    panel.review = types.SimpleNamespace(current=None, showNext=broken, progressText=lambda: "",
                                         summaryText=lambda: "", close=closed.append)
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **kwargs: None)
    with pytest.raises(RuntimeError, match="a bug"):
        panel._showNext()
    assert panel.review is None and closed == [slicer.mrmlScene]
    assert not any(getattr(panel.ui, button).enabled for button in hr.reviewPanel.REVIEW_BUTTONS)


def test_parameter_widgets_and_reload(hr):
    """The parameter node is bound through connectParametersToGui with the widgets that carry
    SlicerParameterName (connectGui's tag is None in Slicer, issue #7547); Reload reloads the helpers."""
    ui = types.SimpleNamespace(refineCheckBox=Attributes(), applyButton=Attributes())
    ui.refineCheckBox.property = {"SlicerParameterName": "refine"}.get
    ui.applyButton.property = {}.get
    assert hr.panel.parameterWidgets(ui) == {"refine": ui.refineCheckBox}
    before = sys.modules["HeadRegistrationSlicer.panel"].applyButtonState
    sys.modules["HeadRegistrationSlicer"].reload()
    assert sys.modules["HeadRegistrationSlicer.panel"].applyButtonState is not before


# ---------------------------------------------------------------- 8. Sample Data

def test_phantom_is_registered_with_sample_data_and_loads(hr):
    sample_data = sys.modules["SampleData"]
    sample_data.sources.clear()
    hr.registerSampleData()
    hr.registerSampleData()  # again at a second startup: harmless
    source = sample_data.SampleDataLogic().sourceForSampleName(hr.sampleData.SAMPLE_NAME)
    assert list(sample_data.sources) == [hr.sampleData.SAMPLE_NAME]
    assert Path(source.thumbnailFileName) == ROOT / "Resources" / "Icons" / "HeadRegistrationPhantom.png"
    before = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    ct, mr = source.customDownloader(source)  # what the Sample Data button does
    assert [ct.GetName(), mr.GetName()] == list(source.nodeNames)
    assert slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == before + 2
    pair = hr.sampleData.phantomPair()  # the same pair as `headreg demo`
    for node, image in ((ct, pair.ct), (mr, pair.mr)):
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), sitk.GetArrayFromImage(image))
        assert_same_geometry(hr.mrml.imageFromVolumeNode(node), image)
    for node in (ct, mr):
        slicer.mrmlScene.RemoveNode(node)
