import textwrap

import pytest

from rlsim.catalog import (list_hardware, list_models, list_workloads, load_draft, load_hardware, load_model,
                           load_workload, load_yaml_model)
from rlsim.catalog.schema import HardwareProfile, ModelSpec
from rlsim.errors import CatalogError


def test_models_match_published_parameter_counts():
    # shared/reference/hardware-and-models.md: Qwen3-8B 8.19 B params, Qwen3-235B-A22B 235 B total
    assert load_model("qwen3-8b").total_params == pytest.approx(8.19e9, rel=0.005)
    assert load_model("qwen3-235b").total_params == pytest.approx(235e9, rel=0.005)
    # KV per token in bf16: Qwen3-8B 144 KiB, Qwen3-235B 188 KiB
    assert load_model("qwen3-8b").kv_bytes_per_token() == 144 * 1024
    assert load_model("qwen3-235b-a22b").kv_bytes_per_token() == 188 * 1024


def test_alias_and_every_catalog_file_loads():
    assert load_model("qwen3-235b").name == "qwen3-235b-a22b"
    for m in list_models():
        spec = load_model(m)
        for method, draft in spec.drafts.items():
            (load_draft(draft) if method == "eagle3" else load_model(draft))
    for h in list_hardware():
        load_hardware(h)
    for w in list_workloads():
        wl = load_workload(w)
        load_model(wl.model)
        load_hardware(wl.hardware)
    assert {"gb200-nvl72", "b200", "h200-sxm", "h100-sxm"} <= set(list_hardware())
    assert {"rl-zero-8b", "rl-think-8b", "rl-235b"} <= set(list_workloads())


def test_every_number_has_a_source(tmp_path):
    p = tmp_path / "hw.yaml"
    good = load_hardware("h100-sxm").model_dump()
    good["sources"].pop("hbm_bandwidth_bytes_per_s")
    import yaml

    p.write_text(yaml.safe_dump(good))
    with pytest.raises(CatalogError, match="hbm_bandwidth_bytes_per_s"):
        load_yaml_model(p, HardwareProfile)


def test_unknown_key_is_an_error_naming_file_and_field(tmp_path):
    p = tmp_path / "m.yaml"
    d = load_model("qwen3-8b").model_dump()
    d["num_hiden_layers"] = 3
    import yaml

    p.write_text(yaml.safe_dump(d))
    with pytest.raises(CatalogError) as e:
        load_yaml_model(p, ModelSpec)
    assert str(p) in str(e.value) and "num_hiden_layers" in str(e.value) and "unknown key" in str(e.value)


def test_bad_value_names_value_and_allowed(tmp_path):
    p = tmp_path / "m.yaml"
    d = load_model("qwen3-8b").model_dump()
    d["architecture"] = "mamba"
    import yaml

    p.write_text(yaml.safe_dump(d))
    with pytest.raises(CatalogError) as e:
        load_yaml_model(p, ModelSpec)
    msg = str(e.value)
    assert "architecture" in msg and "'mamba'" in msg and "dense" in msg and "moe" in msg


def test_unknown_names_list_allowed():
    with pytest.raises(CatalogError, match="allowed: .*qwen3-8b"):
        load_model("qwen9")
    with pytest.raises(CatalogError, match="allowed: .*h100-sxm"):
        load_hardware("tpu-v9")
    p = textwrap.dedent("")
    assert p == ""
