"""Where a report model looked: one attention weight per patch, for heatmaps.

HistGen reads a slide in two stages, and the weight of a patch is the product of both:

- **inside its region** (``SlideEncoding.patch_weights``): the encoder's attentive pooling over the
  ``region_size - 1`` patches of a region (plus the region's global token). Renormalised here over the
  region's real patches, so each region's patch weights sum to 1;
- **the region** (``region_weights``): the decoder's cross-attention on the region token while it writes
  the report, averaged over heads, decoder layers and the generated words (teacher-forced on the report
  the model generated). Sums to 1 over the slide's regions. Without a report (``report_ids=None``) every
  real region gets the same weight.

Two combinations:

- ``share = within_region * region_weights[region]`` sums to 1 over the slide: the share of the report's
  attention that went to each patch. A region holding a single patch (the last, partial region of a bag)
  hands all of its region's share to that patch, so shares of patches in full and partial regions differ
  by up to ``region_size - 1`` times for the same attention;
- ``relative = (within_region * n_r) * (region_weights[region] * R)`` (``n_r`` real patches in the region,
  ``R`` real regions): the patch's pooling weight relative to an average patch of its region, times its
  region's attention relative to an average region. 1 means "as much as an average patch at both levels",
  4 means "four times that"; partial regions are not inflated. Heatmaps show this value.
"""

from __future__ import annotations

import dataclasses

import torch

from scripts.networks import SlideEncoding

__all__ = ["PatchAttention", "decoder_cross_attention", "patch_attention"]


@dataclasses.dataclass
class PatchAttention:
    """Attention of a report model on each patch of a batch of bags.

    Attributes:
        within_region: ``[B, N]`` pooling weight of each patch in its region (sums to 1 per region; 0 on padding).
        region_weights: ``[B, R]`` weight of each region (sums to 1 per bag; 0 on empty regions).
        share: ``[B, N]`` ``within_region`` times its region's weight (sums to 1 per bag).
        relative: ``[B, N]`` both weights relative to their averages, multiplied (1 = average; 0 on padding).
        regions: ``[N]`` region index of each bag position.
    """

    within_region: torch.Tensor
    region_weights: torch.Tensor
    share: torch.Tensor
    relative: torch.Tensor
    regions: torch.Tensor


@torch.no_grad()
def decoder_cross_attention(
    model: torch.nn.Module, memory: torch.Tensor, memory_mask: torch.Tensor | None, report_ids: torch.Tensor
) -> torch.Tensor:
    """Cross-attention probabilities of every decoder layer on the decoder's memory, teacher-forced on a report.

    Args:
        model: the report model (:meth:`scripts.networks.HistGen.cross_attention` returns the probabilities).
        memory: ``[B, M, d_model]`` what the decoder reads (``model.decoder_memory(encoding)``: the region tokens).
        memory_mask: ``[B, M] bool`` slots the decoder may attend, or None for all.
        report_ids: ``[B, L] long`` report word ids, 0-padded after the end (no BOS).

    Returns:
        ``[layers, B, heads, L + 1, M]``: query ``t`` is the step that produced word ``t`` (the last one the end).
    """
    b = report_ids.shape[0]
    ids = torch.cat([report_ids.new_zeros(b, 1), report_ids], dim=1)  # BOS, then the report's words
    return model.cross_attention(ids, memory, memory_mask)


def _region_weights_from_report(model: torch.nn.Module, encoding: SlideEncoding, report_ids: torch.Tensor
                                ) -> torch.Tensor:
    """``[B, R]`` decoder cross-attention on each region, averaged over layers, heads and the report's words."""
    memory, memory_mask = model.decoder_memory(encoding)
    probs = decoder_cross_attention(model, memory, memory_mask, report_ids)  # [L, B, H, T, M]
    r = encoding.region_tokens.shape[1]
    probs = probs[..., :r]  # the region tokens come first in the memory
    lengths = (report_ids > 0).sum(dim=1).clamp(min=1)  # query t = 0..len-1 produced word t
    t = probs.shape[3]
    words = (torch.arange(t, device=report_ids.device)[None] < lengths[:, None]).float()  # [B, T]
    per_query = probs.mean(dim=(0, 2))  # [B, T, R]
    return (per_query * words[..., None]).sum(dim=1) / words.sum(dim=1, keepdim=True)


@torch.no_grad()
def patch_attention(
    model: torch.nn.Module,
    features: torch.Tensor,
    mask: torch.Tensor | None = None,
    report_ids: torch.Tensor | None = None,
) -> PatchAttention:
    """Attention of ``model`` (a :class:`scripts.networks.HistGen`) on every patch of a batch.

    Args:
        model: the report model (eval mode is set for the call and restored).
        features: ``[B, N, D]`` float.
        mask: ``[B, N] bool`` (True = real patch, left-aligned) or None.
        report_ids: ``[B, L] long`` generated ids (0-padded after the end), e.g. the inferer's output;
            None gives every real region the same weight.

    Returns:
        A :class:`PatchAttention` (see the module docstring).
    """
    was_training = model.training
    model.eval()
    try:
        b, n = features.shape[:2]
        if mask is None:
            mask = torch.ones(b, n, dtype=torch.bool, device=features.device)
        mask = mask.to(device=features.device, dtype=torch.bool)
        encoded = model.encode(features, mask)
        per_region = model.config.region_size - 1
        r = encoded.region_tokens.shape[1]
        weights = encoded.patch_weights.view(b, r, per_region)
        real = torch.zeros(b, r * per_region, dtype=torch.bool, device=features.device)
        real[:, :n] = mask
        real = real.view(b, r, per_region)
        weights = weights * real
        sums = weights.sum(dim=-1, keepdim=True)
        within = torch.where(sums > 0, weights / sums.clamp_min(1e-30), torch.zeros_like(weights))
        region_ok = real.any(dim=-1)  # [B, R]
        if report_ids is None:
            region_weights = region_ok.float() / region_ok.float().sum(dim=1, keepdim=True)
        else:
            region_weights = _region_weights_from_report(model, encoded, report_ids.to(features.device))
            region_weights = region_weights * region_ok
            region_weights = region_weights / region_weights.sum(dim=1, keepdim=True).clamp_min(1e-30)
        share = (within * region_weights[..., None]).reshape(b, -1)[:, :n]
        n_real = real.sum(dim=-1, keepdim=True).float()  # [B, R, 1]
        n_regions = region_ok.sum(dim=1).float()[:, None, None]  # [B, 1, 1]
        relative = (within * n_real * region_weights[..., None] * n_regions).reshape(b, -1)[:, :n]
        regions = torch.arange(n, device=features.device) // per_region
        return PatchAttention(within.reshape(b, -1)[:, :n], region_weights, share, relative, regions)
    finally:
        model.train(was_training)
