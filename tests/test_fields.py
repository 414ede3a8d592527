"""The field table (rlsim/fields.py): one definition of a scenario's settings, from which the typed options, the
sweep's axes and descriptors and the CLI flags are generated; each setting has one name end to end."""

from __future__ import annotations

import inspect

import pytest

from rlsim import build_scenario, sweep
from rlsim.errors import ConfigurationError
from rlsim.fields import ALIASES, AXIS_TYPES, BY_NAME, DESCRIPTORS, FIELDS, SPEC_ONLY_FIELDS, ScenarioOptions


def test_every_option_row_is_a_typed_option_and_every_knob_a_flag_or_axis():
    assert set(ScenarioOptions.model_fields) == {f.name for f in FIELDS if f.where == "option"}
    assert ALIASES["num_speculative_tokens"] == "k" and ALIASES["max_trajectory_age_steps"] == "lag"
    assert "acceptance_spread" in AXIS_TYPES and "num_speculative_tokens" in SPEC_ONLY_FIELDS
    assert DESCRIPTORS[:4] == ["workload", "model", "hardware", "gpus"]


def test_cli_flags_come_from_the_table():
    from rlsim.cli.cmd_project import project_cmd
    from rlsim.cli.cmd_sweep import sweep_cmd
    from rlsim.cli.cmd_timeline import timeline_cmd

    project = inspect.signature(project_cmd).parameters
    for f in FIELDS:
        if f.knob and f.help is not None:
            assert f.name in project, f.name
            assert f.cli_flag in (project[f.name].default.param_decls[0].split("/")[0],), f.name
    sweep_params = inspect.signature(sweep_cmd).parameters
    assert {f.name for f in FIELDS if f.sweep_help} <= set(sweep_params)
    assert inspect.signature(timeline_cmd).parameters["lag"].default.default == 1


def test_acceptance_spread_one_name_checked_up_front():
    sc = build_scenario(workload="rl-think-8b", acceptance_spread=0.1)
    assert sc.options.acceptance_spread == 0.1 and sc.to_dict()["options"] == {"acceptance_spread": 0.1}
    assert build_scenario(workload="rl-think-8b", options={"acceptance_spread": 0.1}).options == sc.options
    with pytest.raises(ConfigurationError, match=r"acceptance_spread = 2.0 .*allowed: 0 \(no spread\) or 0.05"):
        build_scenario(workload="rl-think-8b", acceptance_spread=2.0)
    with pytest.raises(ConfigurationError, match="unknown key 'acceptance_sequence_spread'; allowed: .*acceptance_spread"):
        build_scenario(workload="rl-think-8b", options={"acceptance_sequence_spread": 0.1})
    # a sweep refuses the bad value before anything is simulated
    with pytest.raises(ConfigurationError, match=r"grid point .*acceptance_spread=2.0"):
        sweep(workload="rl-zero-8b", acceptance_spread=[0.1, 2.0], executor="serial", use_cache=False)


def test_lag_stored_once_and_colocated_decided_once():
    from rlsim.scenario import Scenario, with_separate_pools

    assert "max_trajectory_age_steps" not in Scenario.model_fields
    sc = build_scenario(workload="rl-think-8b", lag=1)
    assert sc.lag == sc.max_trajectory_age_steps == sc.workload.max_trajectory_age_steps == 1
    assert not sc.workload.colocated  # async: separate pools
    sync = build_scenario(workload="rl-think-8b")
    assert sync.workload.colocated and not with_separate_pools(sync).workload.colocated


def test_k_schedule_checked_once_in_build_scenario():
    sc = build_scenario(workload="rl-zero-8b", num_speculative_tokens_per_batch_size=[[17, 64, 3], [1, 16, 5],
                                                                                      [65, 1024, 1]])
    assert sc.num_speculative_tokens_per_batch_size == [(1, 16, 5), (17, 64, 3), (65, 1024, 1)]
    with pytest.raises(ConfigurationError, match="needs speculation on"):
        build_scenario(workload="rl-zero-8b", k=0, num_speculative_tokens_per_batch_size=[[1, 1024, 1]])
    with pytest.raises(ConfigurationError, match="has a gap"):
        build_scenario(workload="rl-zero-8b", num_speculative_tokens_per_batch_size=[[1, 16, 5], [18, 1024, 1]])


def test_one_seed_list():
    from rlsim.studies.seeds import seed_list

    assert seed_list(3) == [0, 1, 2] and seed_list(3, first=4, flag="--seeds") == [4, 5, 6]
    assert seed_list([4, 7]) == [4, 7]
    with pytest.raises(ConfigurationError, match=r"--seeds = 0; allowed: 1..1000 \(number of seeds, from --seed upward\)"):
        seed_list(0, first=2, flag="--seeds")
    with pytest.raises(ConfigurationError, match="repeat a seed"):
        seed_list([1, 1])
    assert BY_NAME["seed"].axis is False
