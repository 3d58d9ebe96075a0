"""Make docs/phantom.png, the picture of the embedded phantom in the README.

    python docs/phantom_figure.py          (needs matplotlib)
"""

from pathlib import Path

import matplotlib
import SimpleITK as sitk

from HeadRegistrationLib.core import geometry
from HeadRegistrationLib.data import phantom

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

pair = phantom.make_phantom_pair(seed=0)
ct = sitk.GetArrayFromImage(pair.ct)
mr = sitk.GetArrayFromImage(pair.mr)
ct_on_mr = sitk.GetArrayFromImage(
    sitk.Resample(pair.ct, pair.mr, geometry.sitk_from_matrix(pair.truth), sitk.sitkLinear, -1000.0))
panels = [(ct[14], dict(vmin=-20, vmax=100), "CT (HU), brain window"),
          (ct[14], dict(vmin=-1000, vmax=2000), "CT, bone window: head holder, table"),
          (mr[13], {}, "MR T1: bias field, Rician noise"),
          (mr[13], {}, "MR with CT bone (> 300 HU) through truth.tfm")]
figure, axes = plt.subplots(1, 4, figsize=(16, 4.4))
for axis, (image, window, title) in zip(axes, panels):
    axis.imshow(image, cmap="gray", **window)
    axis.set_title(title, fontsize=10)
    axis.axis("off")
axes[3].contour(ct_on_mr[13] > 300, [0.5], colors="r", linewidths=0.6)
figure.tight_layout()
figure.savefig(Path(__file__).with_name("phantom.png"), dpi=60)
