"""Theme retrieval: contrastive 2-bar melody embedding + DBSCAN (Theme Transformer §4.1).

The authors never released this part; this is Studio's version. A small GRU embeds a 2-bar
melody segment (pitch, interval, onset, duration per note) into a unit vector; it is trained with
NT-Xent (SimCLR) where the positive of a segment is an augmented copy (pitch shift on the scale,
last-note duration change, note split/merge) and the other segments of the batch are negatives.
A piece's segments (one per bar) are clustered with DBSCAN on cosine distance; the largest
cluster, with overlapping members resolved, gives the theme occurrences; the earliest is the theme.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from studio.tasks.music.segments import SEGMENT_BARS, Segment, augment, melody_segments, scale_of
from studio.tasks.music.tokenizer import Song

MAX_ONSET = 63
MAX_INTERVAL = 24


class MelodyEncoder(ModelMixin, ConfigMixin):
    config_name = "config.json"

    @register_to_config
    def __init__(self, dim: int = 96, out_dim: int = 64, eps: float = 0.12):
        super().__init__()
        self.pitch = nn.Embedding(128, dim)
        self.interval = nn.Embedding(2 * MAX_INTERVAL + 2, dim)  # last index: first note (no interval)
        self.onset = nn.Embedding(MAX_ONSET + 1, dim)
        self.duration = nn.Embedding(MAX_ONSET + 2, dim)
        self.gru = nn.GRU(dim, dim, batch_first=True, bidirectional=True)
        self.proj = nn.Sequential(nn.Linear(4 * dim, dim), nn.GELU(), nn.Linear(dim, out_dim))

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, 4) int features + (B,) note counts -> (B, out_dim) unit vectors."""
        x = self.pitch(feats[..., 0]) + self.interval(feats[..., 1]) + self.onset(feats[..., 2]) + self.duration(feats[..., 3])
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, h = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=feats.shape[1])  # (B, L, 2D)
        mask = (torch.arange(feats.shape[1], device=feats.device)[None] < lengths[:, None].to(feats.device))[..., None]
        mean = (out * mask).sum(1) / lengths[:, None].to(out.dtype).clamp_min(1)  # (B, 2D)
        last = torch.cat([h[0], h[1]], dim=-1)  # (B, 2D)
        return F.normalize(self.proj(torch.cat([mean, last], dim=-1)), dim=-1)


def featurize(segments: list[Segment]) -> tuple[torch.Tensor, torch.Tensor]:
    """Segments -> (B, L, 4) [pitch, interval, onset, duration] and (B,) lengths."""
    L = max(1, max(len(s.notes) for s in segments))
    feats = np.zeros((len(segments), L, 4), dtype=np.int64)
    lengths = np.zeros(len(segments), dtype=np.int64)
    for i, s in enumerate(segments):
        prev = None
        for j, (p, o, d) in enumerate(s.notes[:L]):
            iv = 2 * MAX_INTERVAL + 1 if prev is None else max(-MAX_INTERVAL, min(MAX_INTERVAL, p - prev)) + MAX_INTERVAL
            feats[i, j] = (p, iv, min(o, MAX_ONSET), min(d, MAX_ONSET + 1))
            prev = p
        lengths[i] = max(1, min(len(s.notes), L))
    return torch.from_numpy(feats), torch.from_numpy(lengths)


@torch.no_grad()
def embed(encoder: MelodyEncoder, segments: list[Segment], batch: int = 512) -> np.ndarray:
    encoder.eval()
    outs = [encoder(*featurize(segments[i : i + batch])) for i in range(0, len(segments), batch)]
    return torch.cat(outs).float().numpy() if outs else np.zeros((0, encoder.config.out_dim), np.float32)


# ---------------------------------------------------------------- contrastive training


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """SimCLR loss over a batch of positive pairs (B, D) x (B, D), unit vectors."""
    z = torch.cat([z1, z2])  # (2B, D)
    sim = z @ z.T / tau  # (2B, 2B)
    sim.fill_diagonal_(float("-inf"))
    B = z1.shape[0]
    target = torch.cat([torch.arange(B, 2 * B), torch.arange(0, B)])
    return F.cross_entropy(sim, target)


@dataclass(frozen=True)
class RetrieverTrainSpec:
    steps: int = 1500
    batch: int = 256
    lr: float = 2e-3
    tau: float = 0.1
    seed: int = 0


def segment_pool(songs: list[Song]) -> list[tuple[Segment, list[int]]]:
    """All 2-bar melody segments with at least 3 notes, each with its piece's scale."""
    pool = []
    for song in songs:
        segs = melody_segments(song)
        scale = scale_of([n for s in segs for n in s.notes])
        pool += [(s, scale) for s in segs if len(s.notes) >= 3]
    return pool


def train_retriever(songs: list[Song], spec: RetrieverTrainSpec = RetrieverTrainSpec(), log=None) -> MelodyEncoder:
    """NT-Xent on (segment, augmented segment) pairs; both views are augmented (SimCLR)."""
    torch.manual_seed(spec.seed)
    rng = random.Random(spec.seed)
    pool = segment_pool(songs)
    if len(pool) < spec.batch:
        raise ValueError(f"songs: only {len(pool)} melody segments, need at least {spec.batch}")
    enc = MelodyEncoder()
    opt = torch.optim.AdamW(enc.parameters(), lr=spec.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, spec.lr, total_steps=spec.steps, pct_start=0.1)
    enc.train()
    for step in range(spec.steps):
        batch = rng.sample(pool, spec.batch)
        v1 = [augment(s, rng, sc) if rng.random() < 0.5 else s for s, sc in batch]
        v2 = [augment(s, rng, sc) for s, sc in batch]
        loss = nt_xent(enc(*featurize(v1)), enc(*featurize(v2)), spec.tau)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log is not None and (step % 100 == 0 or step == spec.steps - 1):
            log(step, float(loss.detach()))
    return enc.eval()


# ---------------------------------------------------------------- retrieval


@dataclass(frozen=True)
class ThemeResult:
    theme_bar: int  # first bar of the theme (its earliest occurrence)
    occurrences: list[int]  # first bars of all occurrences, sorted
    bars: int = SEGMENT_BARS

    @property
    def regions(self) -> list[tuple[int, int]]:
        return [(b, b + self.bars) for b in self.occurrences]


def cluster_segments(emb: np.ndarray, eps: float, min_samples: int = 2) -> np.ndarray:
    from sklearn.cluster import DBSCAN

    if len(emb) == 0:
        return np.zeros(0, dtype=int)
    return DBSCAN(eps=eps, min_samples=min_samples, metric="cosine").fit(emb).labels_


def _non_overlapping(bars: list[int], dist: list[float], width: int) -> list[int]:
    """Greedy: closest-to-centre members first, dropping any that overlap a kept one."""
    kept: list[int] = []
    for _, b in sorted(zip(dist, bars)):
        if all(abs(b - k) >= width for k in kept):
            kept.append(b)
    return sorted(kept)


def song_segments(song: Song) -> list[Segment]:
    return [s for s in melody_segments(song) if len(s.notes) >= 2]


def find_theme(song: Song, encoder: MelodyEncoder, eps: float | None = None, min_occurrences: int = 2) -> ThemeResult | None:
    """The largest DBSCAN cluster of the song's 2-bar melody segments, or None if nothing recurs."""
    segs = song_segments(song)
    if len(segs) < 2:
        return None
    return theme_from_embeddings(segs, embed(encoder, segs), eps if eps is not None else encoder.config.eps, min_occurrences)


def theme_from_embeddings(segs: list[Segment], emb: np.ndarray, eps: float, min_occurrences: int = 2) -> ThemeResult | None:
    labels = cluster_segments(emb, eps)
    best = None
    for lab in set(labels.tolist()) - {-1}:
        idx = np.flatnonzero(labels == lab)
        centre = emb[idx].mean(0)
        centre /= np.linalg.norm(centre) + 1e-8
        dist = (1 - emb[idx] @ centre).tolist()
        occ = _non_overlapping([segs[i].bar for i in idx], dist, SEGMENT_BARS)
        score = (len(occ), -float(np.mean(dist)))  # most occurrences; ties: the tighter cluster
        if len(occ) >= min_occurrences and (best is None or score > best[0]):
            best = (score, occ)
    if best is None:
        return None
    occ = best[1]
    return ThemeResult(theme_bar=occ[0], occurrences=occ)


def segment_distance(encoder: MelodyEncoder, a: list[Segment], b: list[Segment]) -> np.ndarray:
    """Cosine distances (len(a), len(b)) in the retrieval embedding."""
    if not a or not b:
        return np.zeros((len(a), len(b)), np.float32)
    return 1 - embed(encoder, a) @ embed(encoder, b).T
