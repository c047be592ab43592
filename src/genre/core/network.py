"""The recourse model R(x+ | x): a binned, autoregressive encoder-decoder transformer.

The encoder reads [y-, x_1..x_D]; the decoder is teacher-forced on [y+, x+_1..x+_{D-1}] and its
position j outputs a categorical distribution over n_bins equal-width bins of [0, 1] for
feature j of x+. This file holds the network and its loss only; sampling from it (one feature
at a time, with a KV cache and the fused decoder) is genre.core.decoder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class TransformerConfig:
    n_features: int
    n_bins: int = 50
    d_model: int = 32
    n_heads: int = 4
    n_enc_layers: int = 2
    n_dec_layers: int = 2
    d_ff: int = 64
    dropout: float = 0.1

    def __post_init__(self):
        if self.n_features < 1 or self.n_bins < 2:
            raise ValueError("need n_features >= 1 and n_bins >= 2")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} not divisible by n_heads={self.n_heads}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TransformerConfig:
        return cls(**d)


class TokenEmbedding(nn.Module):
    """One scalar -> Linear(1,E) -> ReLU -> Linear(E,E) net per position, plus a learned
    positional embedding. All positions run at once through batched weights."""

    def __init__(self, n_pos: int, d: int):
        super().__init__()
        self.w1 = nn.Parameter(torch.empty(n_pos, 1, d))
        self.b1 = nn.Parameter(torch.zeros(n_pos, d))
        self.w2 = nn.Parameter(torch.empty(n_pos, d, d))
        self.b2 = nn.Parameter(torch.zeros(n_pos, d))
        self.pos = nn.Parameter(torch.zeros(n_pos, d))
        for p in range(n_pos):  # xavier per position, as if each were its own nn.Linear
            nn.init.xavier_uniform_(self.w1[p])
            nn.init.xavier_uniform_(self.w2[p])
        nn.init.normal_(self.pos, std=0.02)

    def forward(self, v: Tensor, start: int = 0) -> Tensor:
        """v: (B, T) scalars sitting at positions start .. start+T-1 -> (B, T, E)."""
        sl = slice(start, start + v.shape[1])
        h = F.relu(v[..., None] * self.w1[sl, 0] + self.b1[sl])
        return torch.einsum("bte,tef->btf", h, self.w2[sl]) + self.b2[sl] + self.pos[sl]


class Attention(nn.Module):
    """Multi-head attention with keys/values computed separately, so callers can cache them."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.n_heads, self.dropout = cfg.n_heads, cfg.dropout
        self.query = nn.Linear(cfg.d_model, cfg.d_model)
        self.key_value = nn.Linear(cfg.d_model, 2 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)

    def split_heads(self, t: Tensor) -> Tensor:  # (B, T, E) -> (B, H, T, E/H)
        B, T, E = t.shape
        return t.view(B, T, self.n_heads, E // self.n_heads).transpose(1, 2)

    def keys_values(self, src: Tensor) -> tuple[Tensor, Tensor]:
        k, v = self.key_value(src).chunk(2, dim=-1)
        return self.split_heads(k), self.split_heads(v)

    def forward(self, x: Tensor, k: Tensor, v: Tensor, causal: bool = False) -> Tensor:
        q = self.split_heads(self.query(x))
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=causal)
        return self.out(y.transpose(1, 2).reshape(x.shape))


class Block(nn.Module):
    """Pre-LN transformer block: self-attention, cross-attention (decoder only), MLP."""

    def __init__(self, cfg: TransformerConfig, cross: bool):
        super().__init__()
        E = cfg.d_model
        self.ln_self, self.self_attn = nn.LayerNorm(E), Attention(cfg)
        self.ln_cross = nn.LayerNorm(E) if cross else None
        self.cross_attn = Attention(cfg) if cross else None
        self.ln_mlp = nn.LayerNorm(E)
        self.mlp = nn.Sequential(nn.Linear(E, cfg.d_ff), nn.ReLU(), nn.Linear(cfg.d_ff, E))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, h: Tensor, memory: Tensor | None = None, causal: bool = False,
                cache: dict | None = None) -> Tensor:
        """With a cache, h holds only the newest position: its self-attention keys/values are
        appended to the cached prefix, and cross-attention keys/values are computed once."""
        a = self.ln_self(h)
        k, v = self.self_attn.keys_values(a)
        if cache is not None:
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
            causal = False  # one query at the end of the prefix may see all of it
        h = h + self.drop(self.self_attn(a, k, v, causal=causal))
        if self.cross_attn is not None:
            if cache is None:
                mk, mv = self.cross_attn.keys_values(memory)
            else:
                if "mk" not in cache:
                    cache["mk"], cache["mv"] = self.cross_attn.keys_values(memory)
                mk, mv = cache["mk"], cache["mv"]
            h = h + self.drop(self.cross_attn(self.ln_cross(h), mk, mv))
        return h + self.drop(self.mlp(self.ln_mlp(h)))


class RecourseTransformer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        D, E = cfg.n_features, cfg.d_model
        self.enc_embed = TokenEmbedding(D + 1, E)  # [y-, x_1..x_D]
        self.dec_embed = TokenEmbedding(D, E)  # [y+, x+_1..x+_{D-1}]; x+_D is never an input
        self.enc_blocks = nn.ModuleList(Block(cfg, cross=False) for _ in range(cfg.n_enc_layers))
        self.dec_blocks = nn.ModuleList(Block(cfg, cross=True) for _ in range(cfg.n_dec_layers))
        self.enc_ln = nn.LayerNorm(E)
        self.head = nn.Sequential(nn.LayerNorm(E), nn.Linear(E, cfg.n_bins))
        self.drop = nn.Dropout(cfg.dropout)
        self.register_buffer("bins", torch.linspace(0, 1, cfg.n_bins + 1)[:-1], persistent=False)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def encode(self, x: Tensor) -> Tensor:
        seq = torch.cat([-torch.ones_like(x[:, :1]), x], dim=1)
        h = self.drop(self.enc_embed(seq))
        for block in self.enc_blocks:
            h = block(h)
        return self.enc_ln(h)

    def decode(self, tokens: Tensor, memory: Tensor, start: int = 0,
               caches: list[dict] | None = None) -> Tensor:
        """tokens: decoder inputs at positions start.. -> bin logits (B, T, n_bins)."""
        h = self.drop(self.dec_embed(tokens, start))
        for i, block in enumerate(self.dec_blocks):
            h = block(h, memory, causal=True, cache=None if caches is None else caches[i])
        return self.head(h)

    def forward(self, x: Tensor, x_plus: Tensor) -> Tensor:
        """Teacher-forced bin logits (B, D, n_bins); position j predicts feature j of x_plus."""
        tokens = torch.cat([torch.ones_like(x_plus[:, :1]), x_plus[:, :-1]], dim=1)
        return self.decode(tokens, self.encode(x))

    def soft_targets(self, v: Tensor) -> Tensor:
        """Gaussian-smoothed one-hot over bins, (..., n_bins); values outside [0,1] clamp."""
        d = v.clamp(0, 1)[..., None] - self.bins
        return torch.softmax(-(self.cfg.n_bins**2) * d**2 / 2, dim=-1)

    def loss(self, x: Tensor, x_plus: Tensor) -> Tensor:
        """Soft-bin cross-entropy, summed over features, mean over the batch."""
        logp = F.log_softmax(self(x, x_plus), dim=-1)
        return -(self.soft_targets(x_plus) * logp).sum(dim=(1, 2)).mean()
