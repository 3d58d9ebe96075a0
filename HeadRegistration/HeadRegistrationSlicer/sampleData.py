"""The embedded head phantom in Slicer's Sample Data module: one click gives a CT and an MR
of the same procedural head, misaligned by a known rigid motion (the pair of ``headreg
demo``). Nothing is downloaded: the phantom is made on the spot (about 3 s), so the source's
``customDownloader`` makes it and the URIs only name the two volumes. Sample Data runs the
``customDownloader`` from its button only (``SampleData.downloadSample`` would try the URIs):
from Python, call ``loadPhantomSample()``."""

import os

import slicer

from HeadRegistrationLib.core import slicer_volumes

CATEGORY = "Head Registration"
SAMPLE_NAME = "HeadRegistrationPhantom"
NODE_NAMES = ("PhantomCT", "PhantomMR")
PHANTOM_SEED = 0  # as `headreg demo`


def phantomPair():
    """The phantom pair of the sample (a ``HeadRegistrationLib.data.phantom.PhantomPair``: CT, MR,
    truth and label maps), made again on each call."""
    from HeadRegistrationLib.data import phantom

    return phantom.make_phantom_pair(seed=PHANTOM_SEED)


def addPhantomNodes(pair) -> list:
    """The pair's CT and MR as scalar volume nodes in slicer.mrmlScene: [CT, MR]."""
    import SimpleITK as sitk

    return [slicer.util.addVolumeFromArray(sitk.GetArrayFromImage(image),
                                           slicer_volumes.ijk_to_ras_from_image(image), name)
            for image, name in ((pair.ct, NODE_NAMES[0]), (pair.mr, NODE_NAMES[1]))]


def loadPhantomSample(source=None) -> list:
    """The Sample Data button's action (``customDownloader(source)``): [CT node, MR node]."""
    return addPhantomNodes(phantomPair())


def registerSampleData(thumbnailPath: str) -> None:
    """Add the phantom to the Sample Data module, once (called when Slicer has started; after
    a Reload the source registered first stays)."""
    import SampleData

    registered = SampleData.SampleDataLogic.sampleDataSourcesByCategory(CATEGORY)
    if any(source.sampleName == SAMPLE_NAME for source in registered):
        return
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category=CATEGORY, sampleName=SAMPLE_NAME,
        uris=[f"headregistration-phantom:{name}" for name in NODE_NAMES],
        fileNames=[f"{name}.nrrd" for name in NODE_NAMES], nodeNames=list(NODE_NAMES),
        customDownloader=loadPhantomSample,
        thumbnailFileName=thumbnailPath if os.path.isfile(thumbnailPath) else None,
        loadFileType=["VolumeFile", "VolumeFile"])
