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


# ---- issue 18: Hugging Face ids and the larger catalog
def test_new_models_match_their_published_parameter_counts():
    # totals the model cards publish (Qwen3 technical report, arXiv 2505.09388 Table 1 / the HF model cards:
    # Qwen3-1.7B 1.7 B, Qwen3-4B 4.0 B, Qwen3-14B 14.8 B; Qwen2.5-1.5B 1.54 B; Llama-3.3-70B 70.6 B)
    for name, total in (("qwen3-1.7b", 1.72e9), ("qwen3-4b", 4.02e9), ("qwen3-14b", 14.77e9),
                        ("qwen2.5-1.5b", 1.54e9), ("llama-3.3-70b", 70.55e9)):
        assert load_model(name).total_params == pytest.approx(total, rel=0.01), name
    # the 2507 checkpoints are the same architecture as their originals
    assert load_model("Qwen/Qwen3-235B-A22B-Thinking-2507") == load_model("qwen3-235b-a22b")
    assert load_model("Qwen/Qwen3-30B-A3B-Instruct-2507").total_params == load_model("qwen3-30b-a3b").total_params


@pytest.mark.parametrize("hf,name", [("Qwen/Qwen3-8B", "qwen3-8b"), ("qwen/qwen3-8b-base", "qwen3-8b-base"),
                                     ("Qwen3-1.7B", "qwen3-1.7b"), ("meta-llama/Llama-3.3-70B-Instruct", "llama-3.3-70b"),
                                     ("deepseek-ai/DeepSeek-V3", "deepseek-v3"), ("Qwen/Qwen3-4B-Thinking-2507", "qwen3-4b")])
def test_hugging_face_ids_wherever_a_model_is_named(hf, name):
    from rlsim.scenario import build_scenario

    assert load_model(hf).name == name
    assert build_scenario(model=hf, workload="rl-think-8b" if "deepseek" not in hf else None).workload.model == name


def test_unknown_model_names_the_nearest_entries_and_gpt_oss_says_why():
    with pytest.raises(CatalogError, match=r"unknown model 'Qwen/Qwen3-9B' \(nearest: Qwen/Qwen3-8B"):
        load_model("Qwen/Qwen3-9B")
    with pytest.raises(CatalogError, match="gpt-oss-20b.*sliding-window"):
        load_model("openai/gpt-oss-20b")


def test_models_command_lists_hf_ids():
    import json

    from typer.testing import CliRunner

    from rlsim.cli import app

    r = CliRunner().invoke(app, ["models", "--json"])
    assert r.exit_code == 0, r.output
    rows = {m["name"]: m for m in json.loads(r.stdout)["models"]}
    assert "Qwen/Qwen3-30B-A3B-Thinking-2507" in rows["qwen3-30b-a3b"]["hf_ids"]
    assert rows["deepseek-v3"]["mtp_num_layers"] == 1
