"""Statistics for folio-bench: stdlib only (no numpy/scipy on the target).

mean, sample standard deviation, percentiles (linear interpolation between
order statistics, numpy's default), the Student t distribution (CDF via the
regularized incomplete beta function, quantile by bisection), a confidence
interval of the mean, Welch's unequal-variance t-test and Holm's adjustment
of p-values for testing many workload/size pairs at once.
"""

import math


def mean(xs):
    if not xs:
        raise ValueError("mean of no values")
    return math.fsum(xs) / len(xs)


def stdev(xs):
    """Sample standard deviation (n - 1); 0 for a single value."""
    if len(xs) < 2:
        return 0.0
    m = mean(xs)
    return math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def percentile(xs, p):
    """p in [0, 100]; linear interpolation (numpy 'linear', R type 7)."""
    if not xs:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError("percentile %r outside 0..100" % p)
    s = sorted(xs)
    pos = (len(s) - 1) * p / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def median(xs):
    return percentile(xs, 50)


def _betacf(a, b, x):
    """Continued fraction of the incomplete beta function (Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a, b, x):
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    lbeta = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    front = math.exp(lbeta + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1 - x) / b


def t_cdf(t, df):
    """P(T <= t) for Student's t with df (> 0, may be fractional) degrees."""
    if df <= 0:
        raise ValueError("degrees of freedom must be positive")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_ppf(q, df):
    """Quantile of Student's t: the t with t_cdf(t, df) == q."""
    if not 0 < q < 1:
        raise ValueError("quantile %r outside (0, 1)" % q)
    if q == 0.5:
        return 0.0
    lo, hi = -1.0, 1.0
    while t_cdf(lo, df) > q:
        lo *= 2
    while t_cdf(hi, df) < q:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def confidence_interval(xs, level=0.95):
    """(low, high) of the mean, Student t; a single value gives (x, x)."""
    m = mean(xs)
    if len(xs) < 2:
        return (m, m)
    half = t_ppf(0.5 + level / 2, len(xs) - 1) * stdev(xs) / math.sqrt(len(xs))
    return (m - half, m + half)


def welch(a, b):
    """Welch's t-test of mean(b) - mean(a): (t, df, two-sided p)."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's test needs two samples of 2+ values")
    va, vb = stdev(a) ** 2 / len(a), stdev(b) ** 2 / len(b)
    diff = mean(b) - mean(a)
    if va + vb == 0:
        return (0.0 if diff == 0 else math.copysign(math.inf, diff),
                float(len(a) + len(b) - 2), 1.0 if diff == 0 else 0.0)
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    p = 2 * (1 - t_cdf(abs(t), df))
    return (t, df, max(0.0, min(1.0, p)))


def summary(xs, level=0.95):
    """The numbers a report prints for one sample."""
    m, sd = mean(xs), stdev(xs)
    lo, hi = confidence_interval(xs, level)
    return {
        "n": len(xs), "mean": m, "stdev": sd,
        "stdev_pct": 100 * sd / m if m else 0.0,
        "min": min(xs), "median": median(xs), "p95": percentile(xs, 95),
        "max": max(xs), "ci_low": lo, "ci_high": hi,
    }


def holm(ps):
    """Holm-Bonferroni adjusted p-values, in the order given (R p.adjust)."""
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    adj = [0.0] * len(ps)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        adj[i] = running
    return adj
