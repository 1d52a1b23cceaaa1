"""The paper's three claims, each judged per task from the read model's numbers by a rule
stated in its judge's docstring (the report prints that docstring as the rule), and the
gain and seed-noise helpers those rules and the tables share."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from workers.report.evidence import ArmPoint, Evidence, TaskEvidence, _with
from workers.report.units import _finite, _num, _scale

ALTO, BASELINE = "alto", "lamb"
VERDICTS = ("holds", "does not hold", "mixed", "not measured")


@dataclass(frozen=True)
class Verdict:
    verdict: str  # one of VERDICTS
    detail: str


@dataclass(frozen=True)
class Claim:
    title: str
    verdict: str
    per_task: tuple[tuple[str, Verdict], ...]
    rule: str


def combine(verdicts: Sequence[str]) -> str:
    """One verdict for several tasks: unanimous, else mixed (unmeasured tasks abstain)."""
    measured = [v for v in verdicts if v != "not measured"]
    if not measured:
        return "not measured"
    if all(v == measured[0] for v in measured):
        return measured[0]
    return "mixed"


def _from_parts(parts: Sequence[bool]) -> str:
    if all(parts):
        return "holds"
    return "does not hold" if not any(parts) else "mixed"


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Rank correlation (average ranks for ties); 0 for fewer than two points."""
    if len(xs) < 2:
        return 0.0

    def ranks(values: Sequence[float]) -> list[float]:
        order = sorted(range(len(values)), key=lambda i: values[i])
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    sy = math.sqrt(sum((b - my) ** 2 for b in ry))
    return 0.0 if sx == 0 or sy == 0 else cov / (sx * sy)


def judge_alpha_sign(alphas: Sequence[tuple[int, float | None]]) -> Verdict:
    """Claim 1 for one task: the best alpha is positive at the smallest batch size and
    negative at the largest. Both ends as claimed: holds; neither: does not hold."""
    series = sorted((b, a) for b, a in alphas if _finite(a))
    if len(series) < 2:
        return Verdict("not measured", "fewer than two batch sizes with a recommended alpha")
    (small_b, small_a), (large_b, large_a) = series[0], series[-1]
    verdict = _from_parts([small_a > 0, large_a < 0])
    listed = ", ".join(f"{_num(a)} at {b}" for b, a in series)
    rho = spearman([math.log2(b) for b, _ in series], [a for _, a in series])
    return Verdict(
        verdict,
        f"best alpha {listed}: {'positive' if small_a > 0 else 'not positive'} at batch "
        f"{small_b}, {'negative' if large_a < 0 else 'not negative'} at batch {large_b} "
        f"(rank correlation of alpha with batch size {rho:+.2f})",
    )


@dataclass(frozen=True)
class UpliftPoint:
    batch_size: int
    uplift: float | None  # ALTO minus Lamb, positive = ALTO better, in display units
    noise: float | None = None  # standard error of that difference (None: one seed)


def judge_uplift_growth(points: Sequence[UpliftPoint]) -> Verdict:
    """Claim 2 for one task: ALTO's gain over Lamb grows with batch size. Holds when the
    gain at the largest batch size exceeds the gain at the smallest by more than their
    combined standard error, the gains rise with batch size overall (rank correlation
    > 0) and ALTO is ahead at the largest size; does not hold when the gain at the
    largest size is not above the smallest; mixed otherwise."""
    series = sorted((p for p in points if _finite(p.uplift)), key=lambda p: p.batch_size)
    if len(series) < 2:
        return Verdict("not measured", "fewer than two batch sizes with both ALTO and Lamb")
    first, last = series[0], series[-1]
    assert first.uplift is not None and last.uplift is not None  # series keeps finite gains
    growth = last.uplift - first.uplift
    noise = (
        math.hypot(first.noise, last.noise)
        if first.noise is not None and last.noise is not None
        else 0.0
    )
    rho = spearman(
        [p.batch_size for p in series],
        [p.uplift for p in series],  # type: ignore[misc]  # series keeps finite gains only
    )
    listed = ", ".join(f"{p.uplift:+.3g} at {p.batch_size}" for p in series)
    text = (
        f"gain {listed}; change from batch {first.batch_size} to {last.batch_size}: "
        f"{growth:+.3g} (standard error {noise:.2g}), rank correlation {rho:+.2f}"
    )
    if growth <= 0:
        return Verdict("does not hold", text)
    reasons = []
    if growth <= noise:
        reasons.append("the growth is within the seed noise")
    if rho <= 0:
        reasons.append("the gain does not rise with batch size overall")
    if last.uplift <= 0:
        reasons.append("ALTO is not ahead at the largest batch size")
    if reasons:
        return Verdict("mixed", f"{text}; but {', and '.join(reasons)}")
    return Verdict("holds", text)


@dataclass(frozen=True)
class FlatPoint:
    batch_size: int
    alto: float | None  # top Hessian eigenvalue of ALTO's recommended trial
    lamb: float | None
    alto_drift: float | None = None
    lamb_drift: float | None = None


# One power-iteration estimate per arm and batch size, with no seeds behind it: ALTO counts
# as flatter only when its eigenvalue is below Lamb's by more than this fraction.
FLATTER_BY = 0.10


def _flatness_word(alto: float, lamb: float) -> str:
    if abs(alto) < (1 - FLATTER_BY) * abs(lamb):
        return "flatter"
    if abs(lamb) < (1 - FLATTER_BY) * abs(alto):
        return "sharper"
    return f"as sharp, within {FLATTER_BY:.0%}"


def judge_flatness(points: Sequence[FlatPoint]) -> Verdict:
    """Claim 3 for one task: ALTO's minima are flatter, i.e. the top Hessian eigenvalue
    (compared by magnitude: power iteration returns the eigenvalue of largest magnitude)
    of ALTO's best trial is more than 10% below Lamb's. Judged at the largest batch size
    and over all batch sizes (a majority): both: holds; neither: does not hold."""
    series = sorted(
        (p for p in points if _finite(p.alto) and _finite(p.lamb)), key=lambda p: p.batch_size
    )
    if not series:
        return Verdict("not measured", "no batch size with both eigenvalues measured")
    last = series[-1]
    assert last.alto is not None and last.lamb is not None  # series keeps finite eigenvalues
    flatter = [
        _flatness_word(p.alto, p.lamb) == "flatter"  # type: ignore[arg-type]  # all finite
        for p in series
    ]
    at_largest, majority = flatter[-1], sum(flatter) * 2 > len(flatter)
    drift = ""
    if _finite(last.alto_drift) and _finite(last.lamb_drift):
        drift = (
            f"; drift from the start there: ALTO {_num(last.alto_drift)}, "
            f"Lamb {_num(last.lamb_drift)}"
        )
    return Verdict(
        _from_parts([at_largest, majority]),
        f"at batch {last.batch_size} top eigenvalue ALTO {_num(last.alto, 4)} vs Lamb "
        f"{_num(last.lamb, 4)} ({_flatness_word(last.alto, last.lamb)}); ALTO flatter "
        f"at {sum(flatter)} of {len(flatter)} batch sizes{drift}",
    )


def claims(evidence: Evidence) -> list[Claim]:
    tasks_alto = [t for t in evidence.tasks if ALTO in t.arms]
    per1, per2, per3 = [], [], []
    for t in tasks_alto:
        alphas = [(b, t.points[(b, ALTO)].settings.get("alpha")) for b in _with(t, ALTO)]
        per1.append((t.task, judge_alpha_sign(alphas)))
        if BASELINE in t.arms:
            ups, flats = [], []
            for b in t.batch_sizes:
                a, lamb = t.points.get((b, ALTO)), t.points.get((b, BASELINE))
                if a is None or lamb is None:
                    continue
                ups.append(UpliftPoint(b, _uplift(t, a), _noise(t, a, lamb)))
                flats.append(
                    FlatPoint(
                        b,
                        a.top_eigenvalue,
                        lamb.top_eigenvalue,
                        a.drift_from_start,
                        lamb.drift_from_start,
                    )
                )
            per2.append((t.task, judge_uplift_growth(ups)))
            per3.append((t.task, judge_flatness(flats)))
    out = []
    for title, per, rule in (
        (
            "Best alpha is positive at small batch and negative at large batch",
            per1,
            judge_alpha_sign.__doc__,
        ),
        ("ALTO's gain over Lamb grows with batch size", per2, judge_uplift_growth.__doc__),
        (
            "ALTO finds flatter minima (smaller top Hessian eigenvalue) than Lamb",
            per3,
            judge_flatness.__doc__,
        ),
    ):
        out.append(
            Claim(title, combine([v.verdict for _, v in per]), tuple(per), _oneline(rule or ""))
        )
    return out


def _oneline(doc: str) -> str:
    return " ".join(doc.split())


def _uplift(task: TaskEvidence, point: ArmPoint) -> float | None:
    return None if point.uplift is None else point.uplift * _scale(task)


def gain(task: TaskEvidence, batch_size: int, rival: str) -> float | None:
    """ALTO's gain over another arm in display units, positive = ALTO better: the stored
    uplift for Lamb (the dispatcher's baseline), the same difference for any other arm."""
    a, b = task.points.get((batch_size, ALTO)), task.points.get((batch_size, rival))
    if a is None or b is None:
        return None
    if rival == BASELINE and a.uplift is not None:
        return _uplift(task, a)
    if a.metric is None or b.metric is None:
        return None
    sign = 1.0 if task.direction == "max" else -1.0
    return sign * (a.metric - b.metric) * _scale(task)


def _noise(task: TaskEvidence, a: ArmPoint, b: ArmPoint) -> float | None:
    """Standard error of the difference of two means over seeds (None with one seed)."""
    if a.metric_std is None or b.metric_std is None or min(a.n_seeds, b.n_seeds) < 2:
        return None
    if not (_finite(a.metric_std) and _finite(b.metric_std)):
        return None
    variance = a.metric_std**2 / a.n_seeds + b.metric_std**2 / b.n_seeds
    return math.sqrt(variance) * _scale(task)
