"""The warm-up runs every decoder kernel a frame's decode can reach, so no frame pays for one."""

import json
import subprocess
import sys
import textwrap

# In a fresh interpreter: a kernel this test process already ran would look warmed. The
# script notes each kernel's compiled signatures after `warm_up`, then decodes frames of every
# level, with and without a code, and prints the kernels that gained a signature (compiled or
# loaded from the cache only then). A kernel called only from other kernels is loaded within
# its caller from the cache and gains none; that is fine: its caller is what a frame calls.
_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    from numba.core.registry import CPUDispatcher
    from drivers.camera import locate, profile, synth
    from drivers.camera.decode import BarcodeDecoder
    from drivers.camera.warm import warm_up

    kernels = {
        f"{module.__name__}.{name}": kernel
        for module in (locate, profile)
        for name, kernel in vars(module).items()
        if isinstance(kernel, CPUDispatcher)
    }
    warm_up()
    warmed = {name: len(kernel.signatures) for name, kernel in kernels.items()}
    decoder, rng = BarcodeDecoder(), np.random.default_rng(31)
    for level in synth.Level:
        for job in (None, "J40017106", "75830398"):
            decoder.decode(synth.frame(job, level, rng, matrix=True))
    later = [name for name, kernel in kernels.items() if len(kernel.signatures) > warmed[name]]
    print(json.dumps({"kernels": sorted(kernels), "warmed": warmed, "later": later}))
    """
)


def test_after_the_warm_up_no_decode_compiles_or_loads_a_kernel() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=300, check=True
    )
    report = json.loads(result.stdout.splitlines()[-1])
    assert len(report["kernels"]) >= 5, report  # the decoder's compiled loops were all found
    assert any(report["warmed"].values()), report
    assert report["later"] == [], report
