"""The recourse model R(x+ | x): a binned, autoregressive encoder-decoder transformer.

The encoder reads [y-, x_1..x_D]; the decoder is teacher-forced on [y+, x+_1..x+_{D-1}] and its
position j outputs a categorical distribution over n_bins equal-width bins of [0, 1] for
feature j of x+. Sampling decodes one feature at a time, with a KV cache so that each step
costs one position instead of a re-run of the whole prefix.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Rows the cached sampler decodes together: large enough that per-op overhead is small, small
# enough that a slice's activations and keys/values stay in cache.
SAMPLE_ROWS = 2048


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

    def grouped(self, x: Tensor, k: Tensor, v: Tensor, group: int) -> Tensor:
        """Inference: x (n * group, 1, E), one position per row, where rows
        i*group .. i*group+group-1 share the keys/values k[i], v[i] (n, H, T, E/H): one
        attention call with `group` queries per key set instead of one per row."""
        B, _, E = x.shape
        q = self.query(x).view(B // group, group, self.n_heads, E // self.n_heads)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k, v)
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

    def step(self, h: Tensor, j: int, cache: dict, group: int = 1) -> Tensor:
        """Inference-only forward of position j alone, h (B, 1, E): its self-attention
        keys/values are written into the preallocated cache["k"], cache["v"] (B, H, D, E/H)
        and it attends to positions 0..j; cross-attention reads cache["mk"], cache["mv"]
        (B / group, H, T, E/H), shared by each run of `group` rows. The arithmetic of
        forward(..., cache=...) without its per-step copies (eval mode: no dropout)."""
        a = self.ln_self(h)
        k, v = self.self_attn.keys_values(a)
        cache["k"][:, :, j:j + 1] = k
        cache["v"][:, :, j:j + 1] = v
        h = h + self.self_attn(a, cache["k"][:, :, :j + 1], cache["v"][:, :, :j + 1])
        if self.cross_attn is not None:
            h = h + self.cross_attn.grouped(self.ln_cross(h), cache["mk"], cache["mv"], group)
        return h + self.mlp(self.ln_mlp(h))


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

    @torch.no_grad()
    def sample(self, x: Tensor, temperature: float = 10.0, sigma: float = 0.0,
               bin_mask: Tensor | None = None, fixed: Tensor | None = None,
               generator: torch.Generator | None = None, use_cache: bool = True,
               bin_values: Tensor | None = None, stay_in_bin: bool = False,
               group: int = 1, max_changes: int | None = None, stay_radius: int = 0) -> Tensor:
        """One x+ per row of x, shape (B, D).

        bin_mask (B, D, n_bins) or (D, n_bins): False bins are forbidden (a feature with no
        allowed bin in a row falls back to all bins). fixed (D,) or (B, D): those features
        copy x exactly, and the decoder conditions on them. bin_values (D, n_bins): the value
        a sampled bin stands for (default: its left edge, as in the paper). stay_in_bin: a
        sampled bin that holds the factual's own value keeps that value (no change).
        max_changes: once that many features of a row differ from x, every later feature of
        the row may take only the bin holding x's value, and keeps x's value exactly.
        stay_radius: with stay_in_bin, a bin at most this many bins from x's own also keeps
        x's value (the soft-bin loss spreads "unchanged" over about one bin either side).

        use_cache=True (the fast path) decodes about SAMPLE_ROWS rows at a time with
        preallocated keys/values; use_cache=False re-runs the whole prefix at every step (the
        reference). Both consume the generator identically, so a seed gives the same samples
        either way. group: x holds runs of `group` identical rows (several samples per
        person); the fast path then encodes each person once and shares the cross-attention
        keys/values within the run (rows that are not such runs fall back to group 1).
        """
        was_training = self.training
        self.eval()
        try:
            B, D = x.shape
            fixed = None if fixed is None else fixed.to(x.device).bool().expand(B, D)
            if bin_mask is not None:
                bin_mask = bin_mask.to(x.device).bool().expand(B, D, self.cfg.n_bins)
            if not use_cache:
                return self._sample_uncached(x, temperature, sigma, bin_mask, fixed,
                                             generator, bin_values, stay_in_bin, max_changes,
                                             stay_radius)
            if group < 1 or B % group or not torch.equal(
                    x.view(-1, group, D), x[::group, None].expand(-1, group, D)):
                group = 1
            return self._sample_cached(x, temperature, sigma, bin_mask, fixed, generator,
                                       bin_values, stay_in_bin, group, max_changes,
                                       stay_radius)
        finally:
            self.train(was_training)

    def _value(self, x: Tensor, j: int, idx: Tensor, bin_values: Tensor | None,
               stay_in_bin: bool, noise: Tensor | None, sigma: float,
               fixed: Tensor | None, stay_radius: int = 0) -> Tensor:
        """The value feature j takes given its sampled bins idx (B,)."""
        value = self.bins[idx] if bin_values is None else bin_values[j, idx]
        if stay_in_bin:
            stay = (idx - self._own_bin(x, j)).abs() <= stay_radius
            value = torch.where(stay, x[:, j].to(value.dtype), value)
        if noise is not None:
            value = value + sigma * noise
        value = value.clamp(0, 1).to(x.dtype)
        if fixed is not None:  # immutables: the decoder must condition on the true value
            value = torch.where(fixed[:, j], x[:, j], value)
        return value

    def _own_bin(self, x: Tensor, j: int) -> Tensor:
        """(B,) the bin holding x[:, j]."""
        return (x[:, j] * self.cfg.n_bins).floor().clamp(0, self.cfg.n_bins - 1).long()

    def _cap(self, x: Tensor, j: int, logits: Tensor, changed: Tensor | None,
             max_changes: int | None) -> Tensor:
        """max_changes: rows that have changed max_changes features may take only x's bin."""
        if changed is None:
            return logits
        full = (changed >= max_changes)[:, None]
        own = torch.arange(self.cfg.n_bins, device=x.device) == self._own_bin(x, j)[:, None]
        # x's bin alone, even where another mask had forbidden it: the value is x's anyway.
        only_own = torch.zeros_like(logits).masked_fill(~own, float("-inf"))
        return torch.where(full, only_own, logits)

    @staticmethod
    def _count(x: Tensor, j: int, value: Tensor, changed: Tensor | None,
               max_changes: int | None) -> Tensor:
        """max_changes: full rows keep x[:, j] exactly; count the rows whose value moved."""
        if changed is None:
            return value
        value = torch.where(changed >= max_changes, x[:, j], value)
        changed += value != x[:, j]
        return value

    def _masked_logits(self, logits: Tensor, temperature: float,
                       allowed: Tensor | None) -> Tensor:
        logits = logits * temperature
        if allowed is not None:
            allowed = allowed | ~allowed.any(dim=-1, keepdim=True)
            logits = logits.masked_fill(~allowed, float("-inf"))
        return logits

    def _sample_uncached(self, x, temperature, sigma, bin_mask, fixed, generator, bin_values,
                         stay_in_bin, max_changes=None, stay_radius=0) -> Tensor:
        B, D = x.shape
        memory = self.encode(x)
        tokens = torch.ones_like(x[:, :1])  # [y+]
        value_dtype = (self.bins if bin_values is None else bin_values).dtype
        changed = None if max_changes is None else torch.zeros(B, dtype=torch.long,
                                                                device=x.device)
        for j in range(D):
            logits = self._masked_logits(self.decode(tokens, memory)[:, -1], temperature,
                                         None if bin_mask is None else bin_mask[:, j])
            logits = self._cap(x, j, logits, changed, max_changes)
            idx = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)[:, 0]
            noise = None
            if sigma > 0:
                noise = torch.randn(B, generator=generator, device=x.device, dtype=value_dtype)
            value = self._value(x, j, idx, bin_values, stay_in_bin, noise, sigma, fixed,
                                stay_radius)
            value = self._count(x, j, value, changed, max_changes)
            tokens = torch.cat([tokens, value[:, None]], dim=1)
        return tokens[:, 1:]

    def _sample_cached(self, x, temperature, sigma, bin_mask, fixed, generator, bin_values,
                       stay_in_bin, group: int = 1, max_changes: int | None = None,
                       stay_radius: int = 0) -> Tensor:
        B, D = x.shape
        n_bins, H = self.cfg.n_bins, self.cfg.n_heads
        dtype = self.bins.dtype
        value_dtype = (self.bins if bin_values is None else bin_values).dtype
        # Every random draw up front, in the order the reference loop makes them (per step:
        # the multinomial's Exp(1) noise for all rows, then the Gaussian noise), so that rows
        # can be decoded a slice at a time with exactly the reference samples.
        # torch.multinomial(p, 1) is argmax(p / q) with q = empty_like(p).exponential_(1).
        expo = torch.empty(D, B, n_bins, dtype=dtype, device=x.device)
        gauss = torch.empty(D, B, dtype=value_dtype, device=x.device) if sigma > 0 else None
        for j in range(D):
            expo[j].exponential_(1, generator=generator)
            if gauss is not None:
                gauss[j] = torch.randn(B, generator=generator, device=x.device,
                                       dtype=value_dtype)
        out = torch.empty_like(x)
        rows = max(SAMPLE_ROWS // group, 1) * group  # whole runs of `group` rows per slice
        for a in range(0, B, rows):
            s = slice(a, min(a + rows, B))
            xs = x[s]
            b = len(xs)
            memory = self.encode(xs[::group])
            caches = []
            for block in self.dec_blocks:
                mk, mv = block.cross_attn.keys_values(memory)
                shape = (b, H, D, self.cfg.d_model // H)
                caches.append({"k": mk.new_empty(shape), "v": mk.new_empty(shape),
                               "mk": mk, "mv": mv})
            forbidden = None  # what _masked_logits forbids, for every step at once
            if bin_mask is not None:
                allowed = bin_mask[s]
                forbidden = ~(allowed | ~allowed.any(dim=-1, keepdim=True))
            # Features fixed in every row of the slice copy x: no need for their logits.
            copied = [False] * D if fixed is None else fixed[s].all(dim=0).tolist()
            changed = None if max_changes is None else torch.zeros(b, dtype=torch.long,
                                                                    device=x.device)
            token = torch.ones_like(xs[:, :1])  # [y+]
            for j in range(D):
                h = self.dec_embed(token, j)
                for block, cache in zip(self.dec_blocks, caches, strict=True):
                    h = block.step(h, j, cache, group)
                if copied[j]:
                    value = xs[:, j]
                else:
                    logits = self.head(h)[:, -1] * temperature
                    if forbidden is not None:
                        logits = logits.masked_fill(forbidden[:, j], float("-inf"))
                    logits = self._cap(xs, j, logits, changed, max_changes)
                    idx = torch.argmax(torch.softmax(logits, dim=-1) / expo[j, s], dim=-1)
                    value = self._value(xs, j, idx, bin_values, stay_in_bin,
                                        None if gauss is None else gauss[j, s], sigma,
                                        None if fixed is None else fixed[s], stay_radius)
                    value = self._count(xs, j, value, changed, max_changes)
                out[s, j] = value
                token = value[:, None]
        return out
