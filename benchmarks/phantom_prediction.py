"""The shipped learned prediction alone (DCNN + ANN, one pass, no refinement) on embedded
phantom pairs (`headreg phantom`'s renderer: its own CT and MR, scanner grids, a head rest
in the CT): rotation error and translation error at the MR head's symmetry centre, before
and after, and the CPU time of one whole prediction.

    python benchmarks/phantom_prediction.py --seeds 0,6,11 --rotation 10 --translation 4
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from HeadRegistrationLib.core import geometry
from HeadRegistrationLib.data import phantom
from HeadRegistrationLib.register import prediction, symmetry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,6,11")
    parser.add_argument("--rotation", type=float, default=10.0, help="degrees")
    parser.add_argument("--translation", type=float, default=4.0, help="mm")
    parser.add_argument("--models", help="folder of registration.* (default: the shipped model)")
    args = parser.parse_args()
    learned = prediction.load_learned(args.models) if args.models else prediction.load_learned()
    for seed in (int(s) for s in args.seeds.split(",")):
        pair = phantom.make_phantom_pair(seed, args.rotation, args.translation)
        center = symmetry.symmetry_frame(pair.mr).center
        seconds = []
        for _ in range(3):
            began = time.perf_counter()
            found = prediction.predict_transform(learned, pair.mr, pair.ct, center)
            seconds.append(time.perf_counter() - began)
        print(f"phantom seed {seed}: rotation {geometry.rotation_error_deg(np.eye(4), pair.truth):.1f} -> "
              f"{geometry.rotation_error_deg(found, pair.truth):.1f} deg, shift at the head centre "
              f"{geometry.translation_error_mm(np.eye(4), pair.truth, center):.1f} -> "
              f"{geometry.translation_error_mm(found, pair.truth, center):.1f} mm, "
              f"{1000 * np.median(seconds):.0f} ms on {torch.get_num_threads()} CPU threads", flush=True)


if __name__ == "__main__":
    main()
