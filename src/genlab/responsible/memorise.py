"""Memorisation maths as pure functions: verbatim token n-grams shared with the training text, and nearest-neighbour
distances from generated images to the training images.

Text: every n-gram of a token sequence gets a 64-bit polynomial hash (each token id first scrambled by the
splitmix64 finaliser, then combined with an odd base modulo 2^64), computed for all positions at once by doubling
(the hash of a 2m-gram is the hash of its first m-gram times base^m plus the hash of its second m-gram). Generated
n-grams are looked up among the training n-grams with ``searchsorted`` on the sorted query hashes, so a 5 M-token
training split costs a few vectorised passes and no sort of its own; every hash hit is then checked token by token
against the training text, so a hash collision can never count as a copy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

_BASE = 0xC6A4A7935BD1E995  # odd 64-bit multiplier (Python int)
_MASK = (1 << 64) - 1


def _mix(tokens: np.ndarray) -> np.ndarray:
    """Token ids (N,) -> scrambled uint64 (N,) (splitmix64 finaliser): nearby ids get unrelated values."""
    x = tokens.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def ngram_hashes(tokens: np.ndarray, n: int, *, mixed: np.ndarray | None = None) -> np.ndarray:
    """uint64 (N - n + 1,): the hash of tokens[i : i + n] for every i (empty when N < n).

    hash(w) = sum_j mix(w[j]) * BASE^(n - 1 - j) mod 2^64; uint64 arithmetic in NumPy wraps, which is the modulus.
    ``mixed``: ``_mix(tokens)`` when the caller keeps it for several sizes (saves a pass over a long array).
    """
    if n < 1:
        raise ValueError(f"n-gram size must be at least 1, got {n}")
    N = len(tokens)
    if N < n:
        return np.zeros(0, dtype=np.uint64)
    block, blen = (_mix(np.asarray(tokens)) if mixed is None else mixed), 1  # hashes of blen-grams, (N - blen + 1,)
    out, olen = None, 0  # hashes of the olen-grams built so far from the set bits of n
    while True:
        if n & blen:
            if out is None:
                out, olen = block, blen
            else:  # (olen + blen)-gram at i = olen-gram at i, shifted by blen tokens, + blen-gram at i + olen
                m = N - olen - blen + 1
                out = out[:m] * np.uint64(pow(_BASE, blen, 1 << 64)) + block[olen : olen + m]
                olen += blen
        if 2 * blen > n:
            return out
        m = N - 2 * blen + 1
        block = block[:m] * np.uint64(pow(_BASE, blen, 1 << 64)) + block[blen : blen + m]
        blen *= 2


def ngram_hash_slow(window: Sequence[int]) -> int:
    """The same hash of one n-gram, with Python integers (for tests)."""
    h = 0
    for t in window:
        h = (h * _BASE + int(_mix(np.array([t]))[0])) & _MASK
    return h


def informative(seq: np.ndarray, n: int) -> np.ndarray:
    """bool (N - n + 1,): the n-gram at i is not mostly one repeated token (a run of spaces, dashes, dots).

    An n-gram (n >= 4) whose most common token fills more than half of it is uninformative: such runs recur in any
    corpus and would count as "copies" without copying anything.
    """
    if len(seq) < n:
        return np.zeros(0, dtype=bool)
    if n < 4:
        return np.ones(len(seq) - n + 1, dtype=bool)
    srt = np.sort(np.lib.stride_tricks.sliding_window_view(np.asarray(seq), n), axis=1)  # (W, n)
    idx = np.broadcast_to(np.arange(n), srt.shape)
    new = np.ones(srt.shape, dtype=bool)
    new[:, 1:] = srt[:, 1:] != srt[:, :-1]  # a new value starts a run in the sorted row
    run_start = np.maximum.accumulate(np.where(new, idx, 0), axis=1)
    mode = (idx - run_start + 1).max(1)  # (W,) count of the most common token
    return 2 * mode <= n


def _windows(seqs: Sequence[np.ndarray], n: int) -> tuple[np.ndarray, ...]:
    """All n-grams of all sequences: hashes (M,), owning sequence (M,), start offset (M,), informative (M,)."""
    hashes, owner, start, info = [], [], [], []
    for k, s in enumerate(seqs):
        h = ngram_hashes(s, n)
        hashes.append(h)
        owner.append(np.full(len(h), k, dtype=np.int64))
        start.append(np.arange(len(h), dtype=np.int64))
        info.append(informative(s, n))
    if not hashes:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)
    return np.concatenate(hashes), np.concatenate(owner), np.concatenate(start), np.concatenate(info)


@dataclass
class NgramMatch:
    """For each n-gram of each query sequence (flattened, M entries): where it occurs in the training tokens."""

    n: int
    owner: np.ndarray  # int64 (M,): which query sequence
    start: np.ndarray  # int64 (M,): offset in that sequence
    train_pos: np.ndarray  # int64 (M,): a training offset holding the same n tokens, or -1
    informative: np.ndarray  # bool (M,): not mostly one repeated token (see ``informative``)

    @property
    def found(self) -> np.ndarray:  # bool (M,): an informative n-gram found in training
        return (self.train_pos >= 0) & self.informative

    @property
    def found_any(self) -> np.ndarray:  # bool (M,): found in training, informative or not
        return self.train_pos >= 0

    def subset(self, keep: np.ndarray) -> NgramMatch:
        """Only the n-grams whose sequence is in ``keep`` (sequence numbers are unchanged)."""
        sel = np.isin(self.owner, keep)
        return NgramMatch(self.n, self.owner[sel], self.start[sel], self.train_pos[sel], self.informative[sel])

    def share(self, owners: np.ndarray | None = None) -> float | None:
        """Share of the informative n-grams (of the given sequences, or all) found verbatim in training."""
        sel = self.informative if owners is None else self.informative & np.isin(self.owner, owners)
        return float(self.found[sel].mean()) if sel.any() else None


def match_ngrams(train: np.ndarray, seqs: Sequence[np.ndarray], n: int, *,
                 train_mixed: np.ndarray | None = None) -> NgramMatch:
    """Find every n-gram of ``seqs`` in ``train`` (a token array, e.g. a memmap): hash, then verify exactly.

    ``train_mixed``: ``_mix(train)``, when the caller keeps it for several calls.
    """
    q, owner, start, info = _windows(seqs, n)  # (M,)
    pos = np.full(len(q), -1, dtype=np.int64)
    th = ngram_hashes(train, n, mixed=train_mixed)  # (N - n + 1,)
    if len(q) and len(th):
        uq, inv = np.unique(q, return_inverse=True)  # (U,), (M,)
        # A bitmap over the top bits of the query hashes (about 1/16 full) rules out most training n-grams with one
        # table lookup each; only the candidates left go through the binary search.
        bits = int(min(24, max(10, np.ceil(np.log2(len(uq))) + 4)))
        shift = np.uint64(64 - bits)
        table = np.zeros(1 << bits, dtype=bool)
        table[(uq >> shift).astype(np.intp)] = True
        cand = np.flatnonzero(table[(th >> shift).astype(np.intp)])  # (C,) ascending training offsets
        idx = np.minimum(np.searchsorted(uq, th[cand]), len(uq) - 1)  # (C,) the query each candidate might be
        ok = uq[idx] == th[cand]
        tpos, tq = cand[ok], idx[ok]  # training offsets whose n-gram hash is a query's, and which query
        first = np.full(len(uq), -1, dtype=np.int64)
        first[tq[::-1]] = tpos[::-1]  # reversed so the first occurrence is the one written last
        pos = first[inv.reshape(-1)]
        hit = np.flatnonzero(pos >= 0)
        if len(hit):
            flat = np.concatenate([np.asarray(x) for x in seqs])  # all query tokens, end to end
            base = np.r_[0, np.cumsum([len(x) for x in seqs])[:-1]]  # (S,): where each sequence starts in flat
            offs = np.arange(n)
            got = flat[(base[owner[hit]] + start[hit])[:, None] + offs]  # (hits, n)
            want = np.asarray(train[pos[hit][:, None] + offs])  # (hits, n) gathered from the memmap
            pos[hit[(got != want).any(1)]] = -1  # a hash collision, not a copy
    return NgramMatch(n, owner, start, pos, info)


def _extend(seq: np.ndarray, train: np.ndarray, i: int, p: int, n: int) -> int:
    """Length of the verbatim match of seq[i:] at train[p:], given that the first n tokens match."""
    length, chunk = n, 64
    while True:
        a = np.asarray(seq[i + length : i + length + chunk])
        b = np.asarray(train[p + length : p + length + len(a)])
        m = min(len(a), len(b))
        diff = np.flatnonzero(a[:m] != b[:m])
        if len(diff):
            return length + int(diff[0])
        length += m
        if m < chunk:
            return length


def copied_spans(train: np.ndarray, seqs: Sequence[np.ndarray], match: NgramMatch) -> list[tuple[int, int, int, int]]:
    """Verbatim copies of at least ``match.n`` tokens, each extended as far as it goes at one training occurrence.

    Returns (sequence, start, length in tokens, training offset) tuples, longest first. A span starts where a found
    n-gram reaches past the spans already taken in its sequence, so overlapping copies stitched together from
    different training passages appear as separate spans. Lengths are exact matches, hence lower bounds of the
    longest copy starting there (another occurrence of the same n-gram may continue further).
    """
    spans = []
    hits = np.flatnonzero(match.found)
    covered = {}  # sequence -> end of the last span taken
    for h in hits:  # ordered by sequence, then start
        k, i, p = int(match.owner[h]), int(match.start[h]), int(match.train_pos[h])
        if i + match.n <= covered.get(k, -1):
            continue
        length = _extend(np.asarray(seqs[k]), train, i, p, match.n)
        spans.append((k, i, length, p))
        covered[k] = i + length
    return sorted(spans, key=lambda s: (-s[2], s[0], s[1]))


def any_copy_of_length(train: np.ndarray, seqs: Sequence[np.ndarray], length: int, *,
                       train_mixed: np.ndarray | None = None) -> tuple[int, int, int] | None:
    """One (sequence, start, training offset) whose next ``length`` tokens occur verbatim in train, or None."""
    m = match_ngrams(train, seqs, length, train_mixed=train_mixed)
    hit = np.flatnonzero(m.found)
    return None if not len(hit) else (int(m.owner[hit[0]]), int(m.start[hit[0]]), int(m.train_pos[hit[0]]))


def longest_copy(train: np.ndarray, seqs: Sequence[np.ndarray], *, known: int = 0,
                 where: tuple[int, int, int] | None = None,
                 upper: int | None = None, train_mixed: np.ndarray | None = None
                 ) -> tuple[int, tuple[int, int, int] | None]:
    """The longest informative token span of any sequence found verbatim in train: (length, (seq, start, offset)).

    Binary search on the length (a copy of length L contains copies of every shorter length; the informative test
    makes this almost, not strictly, true), each probe one exact ``match_ngrams`` pass. ``known`` / ``where``: a copy already proven (e.g. by ``copied_spans``);
    ``upper``: a proven upper bound (e.g. ``longest_run_bound``). Together they cut the search to a probe or two.
    """
    lo = known if where is not None else 0
    hi = max((len(s) for s in seqs), default=0) if upper is None else max(upper, lo)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        got = any_copy_of_length(train, seqs, mid, train_mixed=train_mixed)
        if got:
            lo, where = mid, got
        else:
            hi = mid - 1
    return lo, where


def longest_run_bound(match: NgramMatch) -> int:
    """An upper bound on the longest copy: r consecutive found n-grams cover at most r + n - 1 tokens."""
    found = match.found_any  # every n-gram inside a copy is found, informative or not
    if not found.any():
        return match.n - 1
    # a new run starts where a found n-gram has no found predecessor in the same sequence
    prev_ok = np.r_[False, found[:-1] & (match.owner[1:] == match.owner[:-1])]  # (M,)
    run_id = np.cumsum(found & ~prev_ok)  # run number at each found position
    lengths = np.bincount(run_id[found])
    return int(lengths.max()) + match.n - 1


NGRAM_SIZES = (8, 16, 32)  # tokens


def text_memorisation(train: np.ndarray, generated: Sequence[np.ndarray], heldout: Sequence[np.ndarray],
                      decode: Callable[[list[int]], str], *, sizes: Sequence[int] = NGRAM_SIZES, top: int = 5,
                      example_chars: int = 400) -> dict:
    """Verbatim overlap of generated token sequences with ``train``, beside the same for held-out human text.

    For each n in ``sizes``: the share of informative n-grams found in train (and the share left out as mostly one
    repeated token). For each group: the longest informative span found in train (tokens and characters); for the
    generated group also the ``top`` longest copied spans as text.
    """
    seqs = [np.asarray(s) for s in generated] + [np.asarray(s) for s in heldout]
    groups = {"generated": np.arange(len(generated)), "heldout": np.arange(len(generated), len(seqs))}
    mixed = _mix(np.asarray(train))  # (N,) kept for every pass below
    matches = {n: match_ngrams(train, seqs, n, train_mixed=mixed) for n in sizes}  # both groups in one pass
    report: dict = {"ngram_sizes": list(sizes), "by_size": {}}
    for n, m in matches.items():
        row = {}
        for g, ids in groups.items():
            sel = np.isin(m.owner, ids)
            row |= {f"{g}_share": m.share(ids), f"{g}_ngrams": int(sel.sum()),
                    f"{g}_uninformative": float(1 - m.informative[sel].mean()) if sel.any() else None}
        report["by_size"][str(n)] = row
    for g, ids in groups.items():
        sub = {n: m.subset(ids) for n, m in matches.items()}
        with_hits = [n for n in sizes if sub[n].found.any()]
        spans = copied_spans(train, seqs, sub[max(with_hits)]) if with_hits else []
        known, where = (spans[0][2], (spans[0][0], spans[0][1], spans[0][3])) if spans else (0, None)
        bound = min(longest_run_bound(m) for m in sub.values()) if sizes else None
        keep = set(ids.tolist())
        only = [s if k in keep else s[:0] for k, s in enumerate(seqs)]  # the other group emptied, numbers kept
        length, where = longest_copy(train, only, known=known, where=where, upper=bound, train_mixed=mixed)
        text = decode(seqs[where[0]][where[1] : where[1] + length].tolist()) if where else ""
        out = {"sequences": len(ids), "tokens": int(sum(len(seqs[k]) for k in ids)),
               "longest_copy_tokens": length, "longest_copy_chars": len(text)}
        if g == "generated":
            out["longest_copy_text"] = text[:example_chars]
            out["examples"] = [
                {"sample": k, "start": i, "tokens": ln, "train_offset": p,
                 "text": decode(seqs[k][i : i + ln].tolist())[:example_chars]}
                for k, i, ln, p in spans[:top]
            ]
        report[g] = out
    return report


# ---------------------------------------------------------------------------------------------------------------
# images


@dataclass
class Neighbours:
    """Each query row's nearest and second-nearest reference rows."""

    dist: np.ndarray  # float64 (Q,): Euclidean distance to the nearest reference row
    index: np.ndarray  # int64 (Q,): that row
    second: np.ndarray  # float64 (Q,): distance to the second nearest (inf when there is one reference row)

    @property
    def relative(self) -> np.ndarray:
        """(Q,) nearest / second-nearest distance: near 0 for a copy of one image, near 1 for a blend of many."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.second > 0, self.dist / self.second, 0.0)


def nearest_distances(queries: np.ndarray, ref: np.ndarray, *, chunk: int = 1024) -> Neighbours:
    """Nearest and second-nearest ``ref`` rows (R, D) of each query row (Q, D), by Euclidean distance."""
    q, r = queries.astype(np.float64), ref.astype(np.float64)
    rr = (r * r).sum(1)  # (R,)
    dist, second, idx = np.empty(len(q)), np.full(len(q), np.inf), np.empty(len(q), dtype=np.int64)
    for a in range(0, len(q), chunk):
        b = q[a : a + chunk]  # (B, D)
        sq = np.maximum((b * b).sum(1)[:, None] + rr[None, :] - 2 * b @ r.T, 0)  # (B, R) squared distances
        j = sq.argmin(1)
        idx[a : a + chunk] = j
        dist[a : a + chunk] = np.sqrt(sq[np.arange(len(b)), j])
        if len(r) > 1:
            second[a : a + chunk] = np.sqrt(np.partition(sq, 1, axis=1)[:, 1])
    return Neighbours(dist, idx, second)


def copy_report(samples: Neighbours, heldout: Neighbours, *, percentile: float = 1.0) -> tuple[dict, np.ndarray]:
    """Nearest-training distances of samples against those of held-out real images (the natural baseline).

    A "possible copy" is both nearer to the training set than ``percentile`` % of held-out images are, and as
    singled out: its nearest / second-nearest ratio below the same percentile of held-out ratios. The second test
    keeps blurry averages (near many training images at once, which a pixel distance favours) from counting as
    copies. ``baseline_share`` is the share of held-out images themselves flagged. Also returns each sample's copy
    score (Q,): max(distance / threshold, ratio / ratio threshold), at most 1 when flagged.
    """
    qs = (0.01, 0.05, 0.25, 0.5, 0.75)
    thr = float(np.percentile(heldout.dist, percentile))
    thr_rel = float(np.percentile(heldout.relative, percentile))

    def flag(nb: Neighbours) -> np.ndarray:
        return (nb.dist <= thr) & (nb.relative <= thr_rel)

    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.maximum(np.where(samples.dist > 0, samples.dist / thr, 0.0),
                           np.where(samples.relative > 0, samples.relative / thr_rel, 0.0))
    med_h = float(np.median(heldout.dist))
    report = {
        "samples_quantiles": {str(q): float(np.quantile(samples.dist, q)) for q in qs},
        "heldout_quantiles": {str(q): float(np.quantile(heldout.dist, q)) for q in qs},
        "median_ratio": float(np.median(samples.dist)) / med_h if med_h > 0 else None,
        "samples_relative_median": float(np.median(samples.relative)),
        "heldout_relative_median": float(np.median(heldout.relative)),
        "distance_threshold": thr,
        "relative_threshold": thr_rel,
        "nearer_than_threshold_share": float((samples.dist <= thr).mean()),
        "possible_copies": int(flag(samples).sum()),
        "possible_copy_share": float(flag(samples).mean()),
        "baseline_share": float(flag(heldout).mean()),
    }
    return report, score
