"""HistGen in a TorchScript-compilable shell: encoder, cached decoding, beam/greedy search, id -> text.

``torch.jit.script(HistGen)`` fails (the encoder returns a dataclass, the decoding loop lives in
Python functions that take the model). :class:`ScriptableHistGen` shares the *same* leaf modules
and parameter names as :class:`scripts.networks.HistGen` (so ``model.pt`` loads into it as it is)
and re-states only the glue: encoder output as a tuple, the decoder cache as lists of tensors, and
the search loops of :mod:`scripts.decoding` in TorchScript. Scripted and saved, the file needs
neither this package nor the vocabulary file: the tokens are an attribute of the module.

Parity with the eager model (same ids, log-probabilities within 1e-5) is what
``tests/test_exported_network.py`` checks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scripts.networks import HistGen, HistGenConfig
from scripts.networks.hierarchical_encoder import LocalGlobalEncoder
from scripts.networks.report_decoder import ReportDecoder

# the reference greedy sampler's repeated-trigram penalty (scripts.decoding.greedy.TRIGRAM_PENALTY)
TRIGRAM_PENALTY = -0.693 * 2.0
FINISHED_PENALTY = 1000.0


class ScriptableRegionEncoder(nn.Module):
    """:class:`LocalGlobalEncoder` with the same children, returning ``(region_tokens, region_mask, patch_weights)``."""

    def __init__(self, encoder: LocalGlobalEncoder) -> None:
        super().__init__()
        self.region_size: int = encoder.region_size
        self.histgen_v1: bool = encoder.compat == "histgen-v1"
        self.global_token = encoder.global_token
        self.position = encoder.position
        self.region_layers = encoder.region_layers
        self.slide_layer = encoder.slide_layer
        self.norm = encoder.norm
        self.pool_proj = encoder.pool_proj
        self.pool_score = encoder.pool_score
        self.pool_dense = encoder.pool_dense

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x [B, N, d]``, ``mask [B, N] bool`` -> ``[B, R, d]``, ``[B, R] bool``, ``[B, R * (rs - 1)]``."""
        b, n, d = x.size(0), x.size(1), x.size(2)
        rs = self.region_size
        per_region = rs - 1
        r = max(1, int(math.ceil(n / per_region)))
        pad = r * per_region - n
        if pad > 0:
            x = torch.cat([x, x.new_zeros(b, pad, d)], dim=1)
            mask = torch.cat([mask, mask.new_zeros(b, pad)], dim=1)
        x = x.view(b, r, per_region, d)
        token_mask = mask.view(b, r, per_region)
        x = torch.cat([x, self.global_token.to(x.dtype).expand(b, r, 1, d)], dim=2)
        token_mask = torch.cat([token_mask, token_mask.new_ones(b, r, 1)], dim=2)
        flat_mask = token_mask.reshape(b * r, 1, 1, rs)

        x = self.region_layers[0](self.position(x.reshape(b * r, rs, d)), flat_mask).view(b, r, rs, d)
        if self.histgen_v1:
            slot = 0
            region_mask = token_mask[:, :, 0]
        else:
            slot = rs - 1
            region_mask = token_mask[:, :, :-1].any(dim=-1)
        slide_tokens = self.slide_layer(self.position(x[:, :, slot]), region_mask[:, None, None, :])
        x = torch.cat([x[:, :, :slot], slide_tokens.unsqueeze(2), x[:, :, slot + 1 :]], dim=2)
        x = self.region_layers[1](self.position(x.reshape(b * r, rs, d)), flat_mask).view(b, r, rs, d)
        x = self.norm(x)

        scores = torch.tanh(self.pool_score(self.pool_proj(x))).squeeze(-1)
        if not self.histgen_v1:
            scores = scores.masked_fill(~token_mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        region_tokens = torch.tanh(self.pool_dense(torch.sum(weights.unsqueeze(-1) * x, dim=2)))
        return region_tokens, region_mask, weights[:, :, :-1].reshape(b, -1)


class ScriptableReportDecoder(nn.Module):
    """:class:`ReportDecoder`'s children (same state-dict keys) without its ``forward``.

    ``ReportDecoder.forward`` takes the memory *module* as an argument; TorchScript types modules per
    instance, so a second model scripted in the same process would not match that argument's type.
    The shell's own methods drive the layers instead; ``forward`` is the output layer.
    """

    def __init__(self, decoder: ReportDecoder) -> None:
        super().__init__()
        self.d_model: int = decoder.d_model
        self.embed = decoder.embed
        self.position = decoder.position
        self.layers = decoder.layers
        self.norm = decoder.norm
        self.logit = decoder.logit

    def forward(self, x: Tensor) -> Tensor:
        """Hidden states ``[..., d]`` -> log-probabilities ``[..., V+1]``."""
        return F.log_softmax(self.logit(self.norm(x)), dim=-1)


class ScriptableHistGen(nn.Module):
    """A HistGen report generator that ``torch.jit.script`` compiles whole.

    State-dict keys equal :class:`HistGen`'s, so ``load_state_dict(torch.load("model.pt"))`` works.

    Args:
        config: hyper-parameters (a fresh HistGen is built) when ``model`` is None.
        model: an eager HistGen whose modules (and weights) are shared.
        tokens: the vocabulary's tokens (``tokens[i]`` has id ``i + 1``), for :meth:`decode`/:meth:`reports`.

    Methods (all kept by ``torch.jit.save``):
        ``forward(features [B, N, D], mask [B, N] | None) -> ids [B, L]`` (config's beam size and length);
        ``generate(features, mask, beam_size, max_len, block_trigrams) -> ids``;
        ``score(features, target_ids [B, T], mask) -> log-probs [B, T-1, V+1]`` (teacher forcing);
        ``decode(ids) -> list[str]``; ``reports(features, mask) -> list[str]``.
    """

    def __init__(
        self, config: HistGenConfig | None = None, model: HistGen | None = None, tokens: list[str] | None = None
    ) -> None:
        super().__init__()
        if model is None:
            if config is None:
                raise ValueError("give a HistGenConfig or a HistGen model")
            model = HistGen(config)
        c = model.config
        self.input_norm: bool = c.input_norm
        # without input_norm the (unused) buffers stay out of the state dict, which then matches model.pt's
        self.register_buffer("input_mean", model.input_mean.clone() if c.input_norm else torch.zeros(c.in_dim),
                             persistent=c.input_norm)
        self.register_buffer("input_std", model.input_std.clone() if c.input_norm else torch.ones(c.in_dim),
                             persistent=c.input_norm)
        self.projection = model.projection
        self.visual_embed = model.visual_embed
        self.memory_matrix = model.memory_matrix
        self.context = model.context
        self.visual_context_attn = model.visual_context_attn
        self.encoder = ScriptableRegionEncoder(model.encoder)
        self.decoder = ScriptableReportDecoder(model.decoder)
        self.in_dim: int = c.in_dim
        self.d_model: int = c.d_model
        self.num_heads: int = c.num_heads
        self.prototype_num: int = c.prototype_num
        self.histgen_v1: bool = c.compat == "histgen-v1"
        self.beam_size: int = c.beam_size
        self.max_seq_length: int = c.max_seq_length
        self.vocab_size: int = c.vocab_size
        self.tokens: list[str] = list(tokens or [])
        self.trigram_penalty: float = TRIGRAM_PENALTY
        self.finished_penalty: float = FINISHED_PENALTY
        if self.tokens and len(self.tokens) != c.vocab_size:
            raise ValueError(f"{len(self.tokens)} tokens given for a model with vocab_size={c.vocab_size}")
        self.eval()

    # ------------------------------------------------------------------ encoding
    def _check(self, features: Tensor, mask: Tensor | None) -> Tensor:
        if features.dim() != 3:
            raise ValueError("features must be [B, N, D]")
        if features.size(2) != self.in_dim:
            raise ValueError("features have the wrong dimension D for this model (see in_dim)")
        if features.size(1) == 0:
            raise ValueError("empty bag: features have N = 0 patches")
        if mask is None:
            return torch.ones(features.size(0), features.size(1), dtype=torch.bool, device=features.device)
        m = mask.to(device=features.device, dtype=torch.bool)
        if m.size(0) != features.size(0) or m.size(1) != features.size(1):
            raise ValueError("mask shape does not match features [B, N]")
        if not bool(m.any(dim=1).all()):
            raise ValueError("a bag in the batch has no real patch (mask all False)")
        if self.histgen_v1:
            if not bool(m.all()):
                raise ValueError("compat='histgen-v1' has no padding: use bags of equal size")
        else:
            expected = torch.arange(m.size(1), device=m.device)[None] < m.sum(dim=1, keepdim=True)
            if not torch.equal(m, expected):
                raise ValueError("mask must be left-aligned: real patches first, padding at the end of each bag")
        return m

    def _prototype_indices(self, mask: Tensor) -> Tensor:
        k = self.prototype_num
        if self.histgen_v1:
            idx = torch.linspace(0, mask.size(1) - 1, steps=k).long().to(mask.device)
            return idx.expand(mask.size(0), k)
        lengths: list[int] = mask.sum(dim=1).tolist()
        rows: list[Tensor] = []
        for n in lengths:
            rows.append(torch.linspace(0, n - 1, steps=k).long())
        return torch.stack(rows).to(mask.device)

    @torch.jit.export
    def encode(self, features: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``features [B, N, D]`` -> region tokens ``[B, R, d]``, region mask ``[B, R]``, patch weights."""
        m = self._check(features, mask)
        if self.input_norm:
            features = (features - self.input_mean) / self.input_std
        x = self.visual_embed(self.projection(features))
        idx = self._prototype_indices(m)
        prototypes = torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.size(-1)))
        responses = self.context(prototypes, self.memory_matrix)
        x = x + self.visual_context_attn(x, responses, responses)
        return self.encoder(x, m)

    # ------------------------------------------------------------------ decoding steps
    def _cross(self, region_tokens: Tensor, region_mask: Tensor) -> tuple[list[Tensor], list[Tensor], Tensor | None]:
        cross_k: list[Tensor] = []
        cross_v: list[Tensor] = []
        for layer in self.decoder.layers:
            k, v = layer.cross_attn.project_kv(region_tokens, region_tokens)
            cross_k.append(k)
            cross_v.append(v)
        cross_mask: Tensor | None = None
        if not self.histgen_v1:
            cross_mask = region_mask[:, None, None, :]
        return cross_k, cross_v, cross_mask

    def _step(
        self,
        ids: Tensor,
        step: int,
        self_k: list[Tensor],
        self_v: list[Tensor],
        cross_k: list[Tensor],
        cross_v: list[Tensor],
        cross_mask: Tensor | None,
        mem_k: Tensor,
        mem_v: Tensor,
    ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """One token per hypothesis: ``ids [B]`` -> log-probs ``[B, V+1]`` and the grown self-attention cache."""
        x = self.decoder.position(self.decoder.embed(ids[:, None]) * math.sqrt(self.d_model), step)
        x = x + self.context.respond(x, mem_k, mem_v)
        new_k: list[Tensor] = []
        new_v: list[Tensor] = []
        i = 0
        for layer in self.decoder.layers:
            h = layer.norm1(x)
            k, v = layer.self_attn.project_kv(h, h)
            k = torch.cat([self_k[i], k], dim=2)
            v = torch.cat([self_v[i], v], dim=2)
            new_k.append(k)
            new_v.append(v)
            x = layer(x, (k, v), None, (cross_k[i], cross_v[i]), cross_mask)
            i += 1
        return self.decoder(x[:, -1]), new_k, new_v

    def _empty_cache(self, region_tokens: Tensor) -> list[Tensor]:
        empty = region_tokens.new_zeros(region_tokens.size(0), self.num_heads, 0, self.d_model // self.num_heads)
        cache: list[Tensor] = []
        for _ in self.decoder.layers:
            cache.append(empty)
        return cache

    # ------------------------------------------------------------------ searches
    def _beam_search(self, region_tokens: Tensor, region_mask: Tensor, beam_size: int, max_len: int) -> Tensor:
        """:func:`scripts.decoding.beam_search` (early stop on) in TorchScript."""
        b = region_tokens.size(0)
        device = region_tokens.device
        cross_k, cross_v, cross_mask = self._cross(region_tokens, region_mask)
        self_k = self._empty_cache(region_tokens)
        self_v = self._empty_cache(region_tokens)
        mem_k, mem_v = self.context.project_memory(self.memory_matrix)
        ids = torch.zeros(b, dtype=torch.long, device=device)
        logprobs, self_k, self_v = self._step(ids, 0, self_k, self_v, cross_k, cross_v, cross_mask, mem_k, mem_v)
        step = 1
        vocab = logprobs.size(-1)
        if beam_size > vocab:
            raise ValueError("beam_size exceeds the number of output ids")
        best_score = torch.full([b], float("-inf"), device=device)
        best_seq = torch.zeros(b, max_len, dtype=torch.long, device=device)
        seqs = torch.zeros(b, beam_size, 0, dtype=torch.long, device=device)
        sums = torch.zeros(b, 1, device=logprobs.device, dtype=logprobs.dtype)
        offsets = torch.arange(b, device=device)[:, None]
        slack = 1e-5 * max_len
        for t in range(max_len):
            width = sums.size(1)
            candidates = (sums.unsqueeze(-1) + logprobs.view(b, width, vocab)).view(b, -1)
            sums, ix = candidates.topk(beam_size, dim=-1)
            beam_ix = torch.div(ix, vocab, rounding_mode="floor")
            words = ix % vocab
            if t > 0:
                seqs = seqs.gather(1, beam_ix.unsqueeze(-1).expand(-1, -1, seqs.size(-1)))
            seqs = torch.cat([seqs, words.unsqueeze(-1)], dim=-1)
            index = (beam_ix + offsets * width).reshape(-1)
            self_k = [k.index_select(0, index) for k in self_k]
            self_v = [v.index_select(0, index) for v in self_v]
            cross_k = [k.index_select(0, index) for k in cross_k]
            cross_v = [v.index_select(0, index) for v in cross_v]
            if cross_mask is not None:
                cross_mask = cross_mask.index_select(0, index)

            ended = words == 0
            if t == max_len - 1:
                ended = torch.ones_like(ended)
            for v in range(beam_size):
                better = ended[:, v] & (sums[:, v] > best_score)
                if bool(better.any()):
                    best_score = torch.where(better, sums[:, v], best_score)
                    rows = better.nonzero().squeeze(1)
                    fresh = torch.zeros(rows.size(0), max_len, dtype=torch.long, device=device)
                    fresh[:, : t + 1] = seqs.index_select(0, rows)[:, v]
                    best_seq = best_seq.index_copy(0, rows, fresh)
            sums = sums - ended.to(sums.dtype) * self.finished_penalty
            if t == max_len - 1:
                break
            if bool((best_score >= sums.max(dim=1).values + slack).all()):
                break
            step_logprobs, self_k, self_v = self._step(
                seqs[:, :, -1].reshape(-1), step, self_k, self_v, cross_k, cross_v, cross_mask, mem_k, mem_v
            )
            step += 1
            logprobs = F.log_softmax(step_logprobs, dim=-1)
        return best_seq

    def _greedy_search(self, region_tokens: Tensor, region_mask: Tensor, max_len: int, block_trigrams: bool) -> Tensor:
        """:func:`scripts.decoding.greedy_search` (with the optional trigram penalty) in TorchScript."""
        b = region_tokens.size(0)
        device = region_tokens.device
        cross_k, cross_v, cross_mask = self._cross(region_tokens, region_mask)
        self_k = self._empty_cache(region_tokens)
        self_v = self._empty_cache(region_tokens)
        mem_k, mem_v = self.context.project_memory(self.memory_matrix)
        seq = torch.zeros(b, max_len, dtype=torch.long, device=device)
        it = torch.zeros(b, dtype=torch.long, device=device)
        unfinished = torch.ones(b, dtype=torch.bool, device=device)
        seen: list[dict[int, list[int]]] = []
        for _ in range(b):
            seen.append(torch.jit.annotate(dict[int, list[int]], {}))
        for t in range(max_len):
            logprobs, self_k, self_v = self._step(it, t, self_k, self_v, cross_k, cross_v, cross_mask, mem_k, mem_v)
            if block_trigrams and t >= 3:
                width = logprobs.size(-1)
                rows: list[list[int]] = seq[:, t - 3 : t].tolist()
                penalty = torch.zeros_like(logprobs)
                for i in range(b):
                    first, second, third = rows[i][0], rows[i][1], rows[i][2]
                    key = first * width + second
                    if key in seen[i]:
                        seen[i][key].append(third)
                    else:
                        seen[i][key] = [third]
                    follow = second * width + third
                    if follow in seen[i]:
                        for word in seen[i][follow]:
                            penalty[i, word] += 1.0
                logprobs = logprobs + penalty * self.trigram_penalty
            it = logprobs.argmax(dim=-1).masked_fill(~unfinished, 0)
            seq[:, t] = it
            unfinished = unfinished & (it != 0)
            if not bool(unfinished.any()):
                break
        return seq

    # ------------------------------------------------------------------ public
    @torch.jit.export
    def generate(
        self,
        features: Tensor,
        mask: Tensor | None = None,
        beam_size: int = -1,
        max_len: int = -1,
        block_trigrams: bool = True,
    ) -> Tensor:
        """Report ids ``[B, max_len]`` (0-padded after the end token); -1 takes the config's value."""
        beam = self.beam_size if beam_size < 0 else beam_size
        length = self.max_seq_length if max_len < 0 else max_len
        if beam < 1 or length < 1:
            raise ValueError("beam_size and max_len must be >= 1")
        region_tokens, region_mask, _ = self.encode(features, mask)
        if beam == 1:
            return self._greedy_search(region_tokens, region_mask, length, block_trigrams)
        return self._beam_search(region_tokens, region_mask, beam, length)

    def forward(self, features: Tensor, mask: Tensor | None = None) -> Tensor:
        """``features [B, N, D]`` (+ ``mask [B, N]``) -> ids ``[B, L]`` with the config's beam size and length."""
        return self.generate(features, mask, -1, -1, True)

    @torch.jit.export
    def score(self, features: Tensor, target_ids: Tensor, mask: Tensor | None = None) -> Tensor:
        """Teacher-forced log-probabilities ``[B, T-1, V+1]`` of ``target_ids[:, 1:]`` (as ``HistGen.score``).

        Keys whose id is 0 (padding), except position 0, are masked, as ``ReportDecoder.forward`` does.
        """
        region_tokens, region_mask, _ = self.encode(features, mask)
        ids = target_ids[:, :-1]
        t = ids.size(1)
        keep = ids > 0
        keep[:, 0] = True
        causal = torch.ones(t, t, dtype=torch.bool, device=ids.device).tril()
        self_mask = keep[:, None, None, :] & causal[None, None]
        cross_mask: Tensor | None = None if self.histgen_v1 else region_mask[:, None, None, :]
        mem_k, mem_v = self.context.project_memory(self.memory_matrix)
        x = self.decoder.position(self.decoder.embed(ids) * math.sqrt(self.d_model), 0)
        x = x + self.context.respond(x, mem_k, mem_v)
        for layer in self.decoder.layers:
            h = layer.norm1(x)
            x = layer(x, layer.self_attn.project_kv(h, h), self_mask,
                      layer.cross_attn.project_kv(region_tokens, region_tokens), cross_mask)
        return self.decoder(x)

    @torch.jit.export
    def decode(self, ids: Tensor) -> list[str]:
        """Ids ``[B, L]`` -> texts: skip one leading 0, stop at the next 0, join tokens with spaces."""
        if len(self.tokens) == 0:
            raise RuntimeError("this model was exported without its vocabulary")
        texts: list[str] = []
        rows: list[list[int]] = ids.tolist()
        for row in rows:
            start = 1 if len(row) > 0 and row[0] == 0 else 0
            words: list[str] = []
            for value in row[start:]:
                if value == 0:
                    break
                words.append(self.tokens[value - 1])
            texts.append(" ".join(words))
        return texts

    @torch.jit.export
    def reports(self, features: Tensor, mask: Tensor | None = None) -> list[str]:
        """``features [B, N, D]`` -> report texts (config's beam size and length)."""
        return self.decode(self.forward(features, mask))
