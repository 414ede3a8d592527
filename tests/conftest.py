import os
import tempfile

import pytest

# Tests never read or write the user's caches (~/.cache/rlsim, .rlsim-cache/): one fresh folder per session.
os.environ["RLSIM_CACHE_DIR"] = tempfile.mkdtemp(prefix="rlsim-test-cache-")


@pytest.fixture(scope="session")
def zero8b_setup():
    from rlsim.pipeline import build_setup
    from rlsim.scenario import build_scenario

    return build_setup(build_scenario(workload="rl-zero-8b", calibration="roofline"))
