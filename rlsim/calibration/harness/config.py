"""Model and draft shapes for the harness.

Full-size shapes are read from the repository's workloads/models/<name>.yaml and
workloads/drafts/<name>.yaml with yaml.safe_load (no rlsim import).  A tiny config
exists for CPU tests.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass
class TargetShape:
    name: str
    num_layers: int
    hidden: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    rms_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    qk_norm: bool = True
    num_experts: int = 0          # MoE (Qwen3-30B-A3B-like): experts per layer, all on this GPU
    top_k: int = 0
    moe_intermediate: int = 0

    @property
    def group(self) -> int:
        return self.n_heads // self.n_kv_heads

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DraftShape:
    name: str
    hidden: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate: int
    draft_vocab: int
    fused_hidden_states: int = 3
    # target layers whose input hidden states (residual stream) feed the fc layer;
    # vLLM's EAGLE-3 default is (2, L // 2, L - 3).
    aux_layers: list[int] = field(default_factory=list)
    qk_norm: bool = False  # EAGLE-3 heads for Qwen3 are Llama-architecture layers

    def to_dict(self) -> dict:
        return asdict(self)


def _load_yaml(path: Path) -> dict:
    import yaml

    with open(path) as f:
        return yaml.safe_load(f)


def load_target(name: str = "qwen3-8b") -> TargetShape:
    d = _load_yaml(REPO_ROOT / "workloads" / "models" / f"{name}.yaml")
    arch = d.get("architecture", "dense")
    if arch not in ("dense", "moe"):
        raise ValueError(f"harness supports dense and MoE models, got {arch}")
    moe = arch == "moe"
    return TargetShape(
        num_experts=int(d["num_experts"]) if moe else 0,
        top_k=int(d["num_experts_per_tok"]) if moe else 0,
        moe_intermediate=int(d["moe_intermediate_size"]) if moe else 0,
        name=d["name"],
        num_layers=int(d["num_hidden_layers"]),
        hidden=int(d["hidden_size"]),
        n_heads=int(d["num_attention_heads"]),
        n_kv_heads=int(d["num_key_value_heads"]),
        head_dim=int(d["head_dim"]),
        intermediate=int(d["intermediate_size"]),
        vocab=int(d["vocab_size"]),
    )


def default_aux_layers(num_layers: int) -> list[int]:
    return [2, num_layers // 2, num_layers - 3]


def load_draft(name: str = "eagle3-qwen3-8b", target: TargetShape | None = None) -> DraftShape:
    d = _load_yaml(REPO_ROOT / "workloads" / "drafts" / f"{name}.yaml")
    if d.get("method") != "eagle3":
        raise ValueError("harness implements EAGLE-3 heads only")
    if int(d.get("num_hidden_layers", 1)) != 1:
        raise ValueError("harness implements one-layer EAGLE-3 heads only")
    L = target.num_layers if target is not None else 36
    return DraftShape(
        name=d["name"],
        hidden=int(d["hidden_size"]),
        n_heads=int(d["num_attention_heads"]),
        n_kv_heads=int(d["num_key_value_heads"]),
        head_dim=int(d["head_dim"]),
        intermediate=int(d["intermediate_size"]),
        draft_vocab=int(d["draft_vocab_size"]),
        fused_hidden_states=int(d.get("fused_hidden_states", 3)),
        aux_layers=default_aux_layers(L),
    )


def tiny_target() -> TargetShape:
    return TargetShape(name="tiny", num_layers=4, hidden=128, n_heads=8, n_kv_heads=2,
                       head_dim=32, intermediate=256, vocab=1000)


def tiny_moe_target() -> TargetShape:
    return TargetShape(name="tiny-moe", num_layers=4, hidden=128, n_heads=8, n_kv_heads=2,
                       head_dim=32, intermediate=0, vocab=1000, num_experts=16, top_k=4,
                       moe_intermediate=64)


def tiny_draft(target: TargetShape) -> DraftShape:
    return DraftShape(name="tiny-eagle3", hidden=target.hidden, n_heads=target.n_heads,
                      n_kv_heads=target.n_kv_heads, head_dim=target.head_dim,
                      intermediate=target.intermediate or 256, draft_vocab=256,
                      aux_layers=default_aux_layers(target.num_layers))
