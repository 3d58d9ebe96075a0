"""Between MRML nodes and the library's plain values: volume nodes as SimpleITK images,
the fixed->moving LPS matrix (DESIGN.md) as a linear transform node, the overlay."""

import slicer
import vtk

from HeadRegistrationLib.core import geometry, slicer_volumes
from HeadRegistrationLib.core.errors import HeadRegError


def checkVolumes(volumeA, volumeB) -> None:
    """Raise ``HeadRegError`` unless the two are different scalar volumes with voxels, in a scene."""
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


def imageFromVolumeNode(volumeNode):
    """A SimpleITK copy of a scalar volume in its own geometry (its voxels and IJKToRAS,
    i.e. what its file holds); parent transforms are not applied. Through sitkUtils inside
    Slicer, else through arrayFromVolume."""
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


def writeTransformNode(matrix, outputTransform, fixedVolume, movingVolume, applyTransform=True):
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


def hasSliceViews() -> bool:
    """Whether Slicer's slice views exist (not in a bare MRML environment or without a main window)."""
    app = getattr(slicer, "app", None)
    return app is not None and app.layoutManager() is not None


def showInSliceViews(fixedVolume, movingVolume) -> bool:
    """Fixed as background, moving as foreground at opacity 0.5, where Slicer has slice
    views. Returns whether shown."""
    if not hasSliceViews():
        return False
    slicer.util.setSliceViewerLayers(background=fixedVolume, foreground=movingVolume,
                                     foregroundOpacity=0.5, fit=True)
    return True
