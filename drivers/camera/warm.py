"""Compiling the decoder's numba kernels ahead of the first frame.

numba compiles a kernel on its first call: about 10 s for all of them on a 2-core lab PC after
an install or a change to their source; after that it loads them from its disk cache
(`cache=True`, in `__pycache__` beside the source) in about 0.3 s per process. Without a
warm-up that cost falls on the first ticket a station's camera sees, or on whichever test
decodes first. `make test` calls `warm_up` before starting pytest's workers, and a camera's
capture thread before it opens the camera.
"""

import numpy as np

from . import synth
from .decode import BarcodeDecoder


def warm_up() -> None:
    """Decodes a frame that runs every kernel, compiling or loading each one now: a clean
    ticket without a code, which goes through every region's fit and refit as nothing
    confirms early (the test of this module checks that no other frame needs another)."""
    blank = synth.frame(None, synth.Level.L0, np.random.default_rng(0), matrix=True)
    BarcodeDecoder().decode(blank)
