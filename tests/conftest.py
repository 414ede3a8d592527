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


def write_tiny_workload(path, **edits):
    """rl-zero-8b with 2 prompts x 2 generations of short responses on 4 GPUs: a full projection in well under
    a second (for tests that run many of them). ``edits`` override top-level keys."""
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    d = yaml.safe_load((root / "workloads" / "rl-zero-8b.yaml").read_text())
    d.update(name="tiny", gpus=4, num_prompts_per_step=2, num_generations_per_prompt=2)
    d["response_length"].update(median_tokens=40, max_tokens=200, min_tokens=4)
    d["prompt_length"].update(median_tokens=30, max_tokens=100, min_tokens=4)
    d.update(edits)
    Path(path).write_text(yaml.safe_dump(d, sort_keys=False))
    return str(path)


@pytest.fixture(scope="session")
def tiny_workload(tmp_path_factory):
    return write_tiny_workload(tmp_path_factory.mktemp("tiny") / "tiny.yaml")
