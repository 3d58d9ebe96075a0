"""Time of each stage of one registration of the RIRE-sized demo phantom pair (CT 512 x 512
x 29, MR 256 x 256 x 26; CT given first), models loaded beforehand, and its TRE. To compare
two versions side by side, run it on each in turn, e.g. an older commit checked out with
``git worktree add /tmp/old <commit>``:

    PYTHONPATH=/tmp/old python benchmarks/demo_timing.py; python benchmarks/demo_timing.py
"""

import json
import time

import HeadRegistrationLib
from HeadRegistrationLib.core import geometry
from HeadRegistrationLib.data import phantom
from HeadRegistrationLib.register import autoregister, symmetry

pair = phantom.make_phantom_pair(0)
models = autoregister.load_models()
began = time.perf_counter()
result = autoregister.register_volumes(pair.ct, pair.mr, models=models)
seconds = time.perf_counter() - began
print(json.dumps({"code": HeadRegistrationLib.__file__, "seconds": round(seconds, 2),
                  "tre_mm": round(geometry.mean_displacement_in_mask(result.matrix, pair.truth,
                                                                     symmetry.head_mask(pair.mr)), 3),
                  "stages": {stage: round(s, 2) for stage, s in result.seconds.items()}}))
