"""A small ESM2 checkpoint with RANDOM weights, built deterministically for `make demo` and tests.

It has the real ESM2 architecture and vocabulary and is loaded through the same
`from_pretrained` path as FastESM2_650, but its embeddings mean nothing biologically.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

# The ESM2 vocabulary, in id order (as fair-esm's Alphabet and EsmTokenizer's vocab.txt).
ESM_VOCAB = (
    "<cls> <pad> <eos> <unk> L A G V S E R T I D P K Q N F Y M H W C X B U Z O . - <null_1> <mask>"
).split()


def esm2_config(
    num_layers: int, hidden_size: int, num_heads: int, intermediate_size: int | None = None
):
    """A `transformers.EsmConfig` of the ESM2 architecture (rotary, token dropout, ESM vocab)."""
    from transformers import EsmConfig

    return EsmConfig(
        vocab_size=len(ESM_VOCAB),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size or 4 * hidden_size,
        max_position_embeddings=1026,
        position_embedding_type="rotary",
        token_dropout=True,
        emb_layer_norm_before=False,
        pad_token_id=ESM_VOCAB.index("<pad>"),
        mask_token_id=ESM_VOCAB.index("<mask>"),
        layer_norm_eps=1e-5,
        hidden_act="gelu",
    )


def build_demo_checkpoint(
    out_dir: str | Path,
    *,
    num_layers: int = 6,
    hidden_size: int = 320,
    num_heads: int = 20,
    seed: int = 0,
) -> Path:
    """Write an ESM2-architecture checkpoint with seeded random weights to `out_dir`."""
    from transformers import EsmModel

    out = Path(out_dir)
    config = esm2_config(num_layers, hidden_size, num_heads)
    config.fastesm_extract_demo = True  # makes the loader warn: random weights
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = EsmModel(config, add_pooling_layer=False).eval()
    finally:
        torch.random.set_rng_state(generator_state)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    (out / "vocab.txt").write_text("\n".join(ESM_VOCAB) + "\n")
    (out / "README.md").write_text(
        "# fastesm-extract demo checkpoint\n\nESM2 architecture with RANDOM weights "
        f"(seed {seed}, {num_layers} layers x {hidden_size}). For trying the tool only: "
        "its embeddings are meaningless.\n"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    if (args.out_dir / "config.json").exists():
        print(f"demo checkpoint already at {args.out_dir}")
        return
    build_demo_checkpoint(args.out_dir)
    print(f"demo checkpoint (RANDOM weights) written to {args.out_dir}")


if __name__ == "__main__":
    main()
