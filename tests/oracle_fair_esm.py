"""Reference ("oracle") helpers: the original VirNucPro/fair-esm pipeline on a tiny random ESM2.

- `make_fair_esm2` builds a small random fair-esm ESM2 with the real ESM2 architecture.
- `convert_fair_esm_to_hf` writes the same weights as a Hugging Face ESM checkpoint folder.
- `original_extract` re-implements VirNucPro's `extract_esm()` (units.py) on fair-esm.

Tests compare our Hugging Face based extraction against `original_extract`.
"""

from __future__ import annotations

import re
from os import PathLike
from pathlib import Path

import esm
import torch
import transformers
from esm.data import Alphabet
from esm.model.esm2 import ESM2

# fair-esm parameter name (per layer, after "layers.{i}.") -> Hugging Face name
# (after "encoder.layer.{i}.").
_LAYER_NAME_MAP = {
    "self_attn.q_proj": "attention.self.query",
    "self_attn.k_proj": "attention.self.key",
    "self_attn.v_proj": "attention.self.value",
    "self_attn.out_proj": "attention.output.dense",
    "self_attn_layer_norm": "attention.LayerNorm",
    "final_layer_norm": "LayerNorm",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
}
_GLOBAL_NAME_MAP = {
    "embed_tokens": "embeddings.word_embeddings",
    "emb_layer_norm_after": "encoder.emb_layer_norm_after",
    "contact_head.regression": "contact_head.regression",
}
_LAYER_KEY = re.compile(r"^layers\.(\d+)\.(.+)\.(weight|bias)$")
_INV_FREQ_KEY = re.compile(r"^layers\.\d+\.self_attn\.rot_emb\.inv_freq$")


def make_fair_esm2(
    num_layers: int = 4, embed_dim: int = 64, attention_heads: int = 4, seed: int = 0
) -> tuple[ESM2, Alphabet]:
    """Return a small random fair-esm ESM2 (eval mode) and its alphabet, identical for a seed."""
    alphabet = Alphabet.from_architecture("ESM-1b")
    # Fork the RNG so building the oracle does not shift the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ESM2(
            num_layers=num_layers,
            embed_dim=embed_dim,
            attention_heads=attention_heads,
            alphabet=alphabet,
            token_dropout=True,
        )
        # Default init leaves LayerNorms at (1, 0) and attention output biases at 0; noise makes
        # a wrong parameter mapping (e.g. swapped LayerNorms) visible in the outputs.
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "layer_norm" in name and name.endswith(".weight"):
                    param.add_(0.1 * torch.randn_like(param))
                elif name.endswith(".bias"):
                    param.add_(0.05 * torch.randn_like(param))
    return model.eval(), alphabet


def _hf_name(fair_name: str) -> str | None:
    """Hugging Face parameter name for a fair-esm one, or None when EsmModel has no counterpart."""
    match = _LAYER_KEY.match(fair_name)
    if match:
        layer, module, kind = match.groups()
        if module in _LAYER_NAME_MAP:
            return f"encoder.layer.{layer}.{_LAYER_NAME_MAP[module]}.{kind}"
        return None
    module, _, kind = fair_name.rpartition(".")
    if module in _GLOBAL_NAME_MAP:
        return f"{_GLOBAL_NAME_MAP[module]}.{kind}"
    return None


def convert_fair_esm_to_hf(model: ESM2, alphabet: Alphabet, out_dir: str | PathLike[str]) -> Path:
    """Write `model` as a Hugging Face ESM checkpoint (model + EsmTokenizer) and return the folder.

    Raises AssertionError if any Hugging Face parameter is left unassigned or any fair-esm
    encoder parameter is left unused.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = transformers.EsmConfig(
        vocab_size=len(alphabet),
        hidden_size=model.embed_dim,
        num_hidden_layers=model.num_layers,
        num_attention_heads=model.attention_heads,
        intermediate_size=4 * model.embed_dim,
        position_embedding_type="rotary",
        token_dropout=True,
        emb_layer_norm_before=False,
        pad_token_id=alphabet.padding_idx,
        mask_token_id=alphabet.mask_idx,
        layer_norm_eps=1e-5,  # torch.nn.LayerNorm default, used by fair-esm
        hidden_act="gelu",  # erf GELU, as fair-esm's gelu()
        max_position_embeddings=1026,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    hf_model = transformers.EsmModel(config, add_pooling_layer=False).eval()
    hf_state = hf_model.state_dict()

    mapped: dict[str, torch.Tensor] = {}
    unused: list[str] = []
    hf_inv_freq = hf_state["rotary_embeddings.inv_freq"]
    for name, tensor in model.state_dict().items():
        if _INV_FREQ_KEY.match(name):
            # Rotary frequencies are computed, not learned: both sides must agree exactly.
            assert torch.equal(tensor, hf_inv_freq), f"rotary inv_freq differs for {name}"
            continue
        hf_name = _hf_name(name)
        if hf_name is None:
            unused.append(name)
            continue
        assert hf_state[hf_name].shape == tensor.shape, f"shape mismatch {name} -> {hf_name}"
        mapped[hf_name] = tensor.detach().clone()
    mapped["rotary_embeddings.inv_freq"] = hf_inv_freq.clone()

    # Only the masked-LM head has no place in EsmModel; anything else unused is a mapping bug.
    leftovers = [name for name in unused if not name.startswith("lm_head.")]
    assert not leftovers, f"fair-esm parameters not mapped: {leftovers}"
    missing = sorted(set(hf_state) - set(mapped))
    assert not missing, f"Hugging Face parameters not assigned: {missing}"
    hf_model.load_state_dict(mapped, strict=True)
    hf_model.save_pretrained(out)

    # The vocabulary is fair-esm's token list in index order, so token ids agree by construction.
    vocab_file = out / "vocab.txt"
    vocab_file.write_text("".join(f"{tok}\n" for tok in alphabet.all_toks))
    # save_pretrained adds tokenizer_config.json naming EsmTokenizer for AutoTokenizer.
    transformers.EsmTokenizer(vocab_file=str(vocab_file)).save_pretrained(out)
    assert vocab_file.read_text().splitlines() == alphabet.all_toks
    return out


def original_extract(
    fasta_file: str | PathLike[str],
    model: ESM2,
    alphabet: Alphabet,
    truncation_seq_length: int = 1024,
    toks_per_batch: int = 2048,
) -> tuple[list[str], list[torch.Tensor]]:
    """VirNucPro's `extract_esm()` on CPU: labels and float32 mean embeddings, in batch order."""
    dataset = esm.FastaBatchedDataset.from_file(str(fasta_file))
    batches = dataset.get_batch_indices(toks_per_batch, extra_toks_per_seq=1)
    data_loader = torch.utils.data.DataLoader(
        dataset,
        collate_fn=alphabet.get_batch_converter(truncation_seq_length),
        batch_sampler=batches,
    )
    last_layer = model.num_layers  # VirNucPro hard-codes 36, the last layer of ESM2-3B
    proteins: list[str] = []
    data: list[torch.Tensor] = []
    model.eval()
    with torch.no_grad():
        for labels, strs, toks in data_loader:
            out = model(toks, repr_layers=[last_layer], return_contacts=False)
            representations = out["representations"][last_layer].to(device="cpu")  # (b, l, d)
            for i, label in enumerate(labels):
                truncate_len = min(truncation_seq_length, len(strs[i]))
                proteins.append(label)
                data.append(representations[i, 1 : truncate_len + 1].mean(0).clone())
    return proteins, data
