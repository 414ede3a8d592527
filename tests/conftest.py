import pytest


@pytest.fixture(scope="session")
def zero8b_setup():
    from rlsim.pipeline import build_setup
    from rlsim.scenario import build_scenario

    return build_setup(build_scenario(workload="rl-zero-8b", calibration="roofline"))
