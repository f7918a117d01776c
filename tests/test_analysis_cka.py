"""CKA estimators, epoch-by-epoch matrices and closed forms against independent references."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linsolve import Task
from linsolve.analysis._cka import (
    cka,
    cka_linear,
    cka_matrix,
    cka_matrix_exact,
    cka_matrix_linear,
    cka_matrix_saxe,
    cka_minibatch,
    hsic,
)
from linsolve.simulate import gradient_flow

TOL = 1e-10
# Shared shapes (n samples, narrow p < n, wide p > n, T snapshots) keep the number of distinct
# compilations small: every test below reuses them where it can.
N, NARROW, WIDE, T = 12, 3, 20, 5


def _rng(seed):
    return np.random.default_rng(seed)


def _orthogonal(rng, d):
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diagonal(r))


# --- independent references (numpy, written from the definitions) ----------------------------


def _hsic0_ref(K, L):
    n = K.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    return np.trace(K @ H @ L @ H) / (n - 1) ** 2


def _hsic1_ustat(K, L):
    """Unbiased HSIC as the U-statistic over ordered 4-tuples of distinct indices (Song et al. 2012):
    mean of k_ij l_ij + k_ij l_qr - 2 k_ij l_iq."""
    n = K.shape[0]
    tot, count = 0.0, 0
    for i, j, q, r in itertools.permutations(range(n), 4):
        tot += K[i, j] * L[i, j] + K[i, j] * L[q, r] - 2 * K[i, j] * L[i, q]
        count += 1
    return tot / count


def _cka_ref(A, B, hs=_hsic0_ref):
    K, L = A @ A.T, B @ B.T
    return hs(K, L) / np.sqrt(hs(K, K) * hs(L, L))


def _hsic1_formula(K, L):
    n = K.shape[0]
    Kt, Lt = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
    one = np.ones(n)
    return (
        np.trace(Kt @ Lt)
        + (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
        - 2 / (n - 2) * one @ Kt @ Lt @ one
    ) / (n * (n - 3))


# --- invariances and exact values ----------------------------------------------------------


@pytest.mark.parametrize("p", [NARROW, WIDE], ids=["p<n", "p>n"])
def test_invariant_to_orthogonal_scaling_translation(p):
    rng = _rng(p)
    X = rng.normal(size=(N, p)) + 2.0
    Q = _orthogonal(rng, p)
    shift = rng.normal(size=p)
    A = np.diag(np.linspace(0.1, 3.0, p))  # a general invertible map: not an invariance
    kws = [{}, {"debiased": True}]
    if p == NARROW:
        kws += [{"kernel": "rbf"}, {"kernel": "rbf", "debiased": True}]
    for kw in kws:
        assert abs(float(cka(X, X @ Q, **kw)) - 1) < TOL, kw
        assert abs(float(cka(X, 3.0 * X @ Q + 5.0, **kw)) - 1) < TOL, kw
        assert abs(float(cka(0.2 * X - shift, X @ Q + shift, **kw)) - 1) < TOL, kw
        assert float(cka(X, X @ A, **kw)) < 0.99, kw


def test_minibatch_invariant():
    rng = _rng(1)
    X = rng.normal(size=(4, N, NARROW))
    Q = _orthogonal(rng, NARROW)
    assert abs(float(cka_minibatch(X, 3.0 * X @ Q + 5.0)) - 1) < TOL
    A = np.diag([0.1, 1.0, 3.0])
    assert float(cka_minibatch(X, X @ A)) < 0.99


def test_u_vs_u_plus_sv_exact():
    G = _rng(2).normal(size=(N, 2))
    q, _ = np.linalg.qr(G - G.mean(axis=0))  # centred, orthonormal columns
    for s in (0.3, 1.0, 2.5):
        u, v = q[:, 0], s * q[:, 1]
        assert abs(float(cka(u, np.stack([u, v], axis=1))) - 1 / np.sqrt(1 + s**4)) < TOL


def test_unbiased_near_zero_for_independent_features():
    rng = _rng(3)
    A, B = rng.normal(size=(500, 20)), rng.normal(size=(500, 20))
    biased, unbiased = float(cka(A, B)), float(cka(A, B, debiased=True))
    assert 0.03 < biased < 0.05  # ~ sqrt(pq)/n for independent Gaussians
    assert abs(unbiased) < 0.01


# --- estimators against brute force -------------------------------------------------------


def test_hsic_estimators_match_definitions():
    rng = _rng(4)
    A = rng.normal(size=(7, 3)) + 1.0
    B = rng.normal(size=(7, 5)) - 2.0
    K, L = A @ A.T, B @ B.T
    assert abs(float(hsic(K, L)) - _hsic0_ref(K, L)) < TOL
    ref = _hsic1_ustat(K, L)
    assert abs(float(hsic(K, L, debiased=True)) - ref) < TOL * max(1, abs(ref))
    assert abs(_hsic1_formula(K, L) - ref) < TOL * max(1, abs(ref))  # the reference formula too


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_matches_brute_force(debiased):
    rng = _rng(5)
    hs = _hsic1_formula if debiased else _hsic0_ref
    for p in (NARROW, WIDE):  # feature-space and Gram-space forms
        A = rng.normal(size=(N, p)) + 0.5
        B = rng.normal(size=(N, p)) @ rng.normal(size=(p, p)) - 1.0
        assert abs(float(cka(A, B, debiased=debiased)) - _cka_ref(A, B, hs)) < TOL


def test_rbf_matches_brute_force():
    rng = _rng(6)
    A, B = rng.normal(size=(N, NARROW)), rng.normal(size=(N, NARROW))

    def sqdist(X):
        return ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)

    def med(X):
        return np.median(sqdist(X)[np.triu_indices(len(X), 1)])

    for bw, debiased, hs in ((None, False, _hsic0_ref), (0.7, True, _hsic1_formula)):
        sa, sb = (med(A), med(B)) if bw is None else (bw**2, bw**2)
        K, L = np.exp(-sqdist(A) / (2 * sa)), np.exp(-sqdist(B) / (2 * sb))
        ref = hs(K, L) / np.sqrt(hs(K, K) * hs(L, L))
        assert abs(float(cka(A, B, kernel="rbf", bandwidth=bw, debiased=debiased)) - ref) < TOL


def test_minibatch_accumulates_unbiased_hsic():
    rng = _rng(7)
    A = rng.normal(size=(3, N, NARROW))
    B = A @ rng.normal(size=(NARROW, NARROW)) + 0.3 * rng.normal(size=(3, N, NARROW))
    terms = sum(
        np.array(
            [
                _hsic1_formula(a @ a.T, b @ b.T),
                _hsic1_formula(a @ a.T, a @ a.T),
                _hsic1_formula(b @ b.T, b @ b.T),
            ]
        )
        for a, b in zip(A, B)
    )
    ref = terms[0] / np.sqrt(terms[1] * terms[2])
    assert abs(float(cka_minibatch(A, B)) - ref) < TOL
    assert abs(float(cka_minibatch(list(A), list(B))) - ref) < TOL  # sequence form
    one = cka_minibatch(A[:1], B[:1])
    assert abs(float(one) - float(cka(A[0], B[0], debiased=True))) < TOL


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_matrix_matches_pairwise_brute_force(debiased):
    rng = _rng(8)
    hs = _hsic1_formula if debiased else _hsic0_ref
    for p in (NARROW, WIDE):  # feature-space and Gram-space forms
        base = rng.normal(size=(N, p))
        reps = base[None] + np.linspace(0, 2, T)[:, None, None] * rng.normal(size=(T, N, p))
        C = np.asarray(cka_matrix(reps, debiased=debiased))
        ref = np.array([[_cka_ref(reps[i], reps[j], hs) for j in range(T)] for i in range(T)])
        assert np.max(np.abs(C - ref)) < TOL
        assert np.allclose(np.diagonal(C), 1.0) and np.allclose(C, C.T)


# --- linear layers: closed form in M = W^T W ---------------------------------------------


@pytest.mark.parametrize("debiased", [False, True])
def test_linear_layer_closed_form(debiased):
    rng = _rng(9)
    d, h = 5, NARROW
    X = rng.normal(size=(N, d)) @ rng.normal(size=(d, d)) + 1.0
    Ws = rng.normal(size=(T, h, d))
    acts = np.einsum("nd,thd->tnh", X, Ws)
    Ms = np.einsum("thd,the->tde", Ws, Ws)
    from_acts = np.asarray(cka_matrix(acts, debiased=debiased))
    closed = np.asarray(cka_matrix_linear(Ms, X=X, debiased=debiased))
    assert np.max(np.abs(from_acts - closed)) < TOL
    if not debiased:
        Xc = X - X.mean(0)
        S = Xc.T @ Xc
        via_cov = np.asarray(cka_matrix_linear(Ms, cov=S / N))
        assert np.max(np.abs(from_acts - via_cov)) < TOL
        M1, M2 = Ms[0], Ms[1]  # the defining trace formula, written out for one pair
        ref = np.trace(S @ M1 @ S @ M2) / np.sqrt(np.trace(S @ M1 @ S @ M1) * np.trace(S @ M2 @ S @ M2))
        assert abs(float(cka_linear(M1, M2, X=X)) - ref) < TOL
    # rotating the hidden units (W -> R W) is invisible
    R = _orthogonal(rng, h)
    assert abs(float(cka(X @ Ws[0].T, X @ (R @ Ws[0]).T, debiased=debiased)) - 1) < TOL


# --- closed-form matrices along exact solutions vs simulated gradient flow -------------------

TS = jnp.array([0.0, 1.0, 2.5, 4.0, 6.0, 10.0, 20.0])
SVALS = jnp.array([3.0, 1.5, 0.6, 0.2])


def _rk4_flow(W1, W2, Syx, ts, dt=5e-3):
    """Independent reference: classical RK4 (numpy) on tau dW1/dt = -W2^T E, dW2/dt = -E W1^T,
    E = W2 W1 - Syx (whitened inputs, tau = 1), batched over a leading init axis."""

    def field(W1, W2):
        E = W2 @ W1 - Syx
        return -np.swapaxes(W2, -1, -2) @ E, -E @ np.swapaxes(W1, -1, -2)

    out, t = [], 0.0
    for t_next in np.asarray(ts):
        n = int(round((t_next - t) / dt))
        h = (t_next - t) / max(n, 1)
        for _ in range(n):
            a1, b1 = field(W1, W2)
            a2, b2 = field(W1 + h / 2 * a1, W2 + h / 2 * b1)
            a3, b3 = field(W1 + h / 2 * a2, W2 + h / 2 * b2)
            a4, b4 = field(W1 + h * a3, W2 + h * b3)
            W1 = W1 + h / 6 * (a1 + 2 * a2 + 2 * a3 + a4)
            W2 = W2 + h / 6 * (b1 + 2 * b2 + 2 * b3 + b4)
        out.append((W1, W2))
        t = t_next
    return np.stack([o[0] for o in out], 1), np.stack([o[1] for o in out], 1)


def _sqrtm(M):
    w, v = np.linalg.eigh(M)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


@pytest.fixture(scope="module")
def flows():
    """Three inits of one (4, 4, 4) net on one whitened task (built in numpy) and their RK4 paths:
    Saxe-aligned (u0 = 1e-3 on every mode) and lambda-balanced with lam = 0 and 0.5."""
    d, rng = 4, _rng(11)
    U, V, O = (_orthogonal(rng, d) for _ in range(3))
    Syx = U @ np.diag(np.asarray(SVALS)) @ V.T
    task = Task(np.eye(d), Syx, Syx @ Syx.T)
    inits = {"saxe": (np.sqrt(1e-3) * V.T, np.sqrt(1e-3) * U)}
    for name, lam in (("lam0", 0.0), ("lam05", 0.5)):
        W1 = 0.05 * rng.normal(size=(d, d))
        inits[name] = (W1, O @ _sqrtm(W1 @ W1.T + lam * np.eye(d)))  # W2^T W2 - W1 W1^T = lam I
    W1s = np.stack([p[0] for p in inits.values()])
    W2s = np.stack([p[1] for p in inits.values()])
    W1t, W2t = _rk4_flow(W1s, W2s, Syx, TS)
    return task, {k: (p, (W1t[i], W2t[i])) for i, (k, p) in enumerate(inits.items())}


def test_saxe_closed_form_matches_simulation(flows):
    task, runs = flows
    _, (W1, _) = runs["saxe"]
    Ms = np.einsum("thi,thj->tij", W1, W1)
    sim = np.asarray(cka_matrix_linear(Ms))
    closed = np.asarray(cka_matrix_saxe(TS, s=SVALS, u0=1e-3, depth=2, layer=1))
    assert np.max(np.abs(sim - closed)) < 1e-7
    assert np.min(closed) < 0.9  # the snapshots differ


def _check_exact_vs_snapshots(task, init0, traj):
    (W1_0, W2_0), (W1, W2) = init0, traj
    Xp = _rng(14).normal(size=(N, 4))  # evaluation inputs (not centred, not whitened)
    reps = {
        "hidden": np.einsum("nd,thd->tnh", Xp, W1),
        "output": np.einsum("nd,thd->tnh", Xp, np.einsum("toh,thd->tod", W2, W1)),
    }
    for layer in ("hidden", "output"):
        for debiased in (False, True):
            sim = np.asarray(cka_matrix(reps[layer], debiased=debiased))
            exact = cka_matrix_exact(TS, W1_0, W2_0, task, layer=layer, X=Xp, debiased=debiased)
            assert np.max(np.abs(sim - np.asarray(exact))) < 1e-7, (layer, debiased)
    assert np.min(np.asarray(exact)) < 0.9  # the matrix has structure (not all ones)


@pytest.mark.parametrize("case", ["lam0", "lam05"])
def test_cka_matrix_exact_matches_simulated_snapshots(flows, case):
    task, runs = flows
    _check_exact_vs_snapshots(task, *runs[case])


@pytest.mark.slow
@pytest.mark.parametrize("case", ["lam0", "lam05"])
def test_cka_matrix_exact_matches_gradient_flow(flows, case):
    """The same with the library's diffrax simulator (slow: compiles Dopri8)."""
    task, runs = flows
    init0 = runs[case][0]
    traj = gradient_flow(init0, task, TS)
    _check_exact_vs_snapshots(task, init0, tuple(np.asarray(W) for W in traj.params))


# --- bad input --------------------------------------------------------------------------------


def test_errors():
    A = _rng(15).normal(size=(N, NARROW))
    with pytest.raises(ValueError, match="same n samples"):
        cka(A, A[:9])
    with pytest.raises(ValueError, match="n >= 4"):
        cka(A[:3], A[:3], debiased=True)
    with pytest.raises(ValueError, match="zero variance"):
        cka(A, np.ones((N, NARROW)))
    with pytest.raises(ValueError, match="zero variance"):
        cka(np.full((N, NARROW), 3.0), A, debiased=True)
    with pytest.raises(ValueError, match="kernel"):
        cka(A, A, kernel="poly")
    with pytest.raises(ValueError, match="bandwidth"):
        cka(A, A, kernel="rbf", bandwidth=-1.0)
    with pytest.raises(ValueError, match="finite"):
        cka(np.where(A > 1, np.nan, A), A)
    with pytest.raises(ValueError, match=r"\(T, n, p\)"):
        cka_matrix(A)
    reps = np.stack([A, A, np.zeros_like(A), A, A])
    with pytest.raises(ValueError, match="snapshot 2"):
        cka_matrix(reps)
    with pytest.raises(ValueError, match="needs the inputs"):
        cka_matrix_linear(np.eye(3)[None], debiased=True)
    with pytest.raises(ValueError, match="m=8"):
        cka_minibatch(A[None], A[None, :8])
    with pytest.raises(ValueError, match="layer"):
        cka_matrix_saxe(np.ones(2), s=np.ones(2), u0=0.1, depth=2, layer=3)


def test_zero_variance_convention_under_jit():
    A = _rng(16).normal(size=(N, NARROW))
    assert float(jax.jit(lambda a, b: cka(a, b))(A, np.ones((N, NARROW)))) == 0.0


def test_float32_stays_float32():
    A = _rng(17).normal(size=(T, N, NARROW)).astype(np.float32)
    assert cka_matrix(A).dtype == jnp.float32


def _kornblith_notebook_rbf_cka(x, y):
    """``cka(gram_rbf(x), gram_rbf(y))`` of Kornblith et al.'s CKA notebook (biased), transcribed:
    the bandwidth is the median of ALL n^2 squared distances (zero diagonal included)."""

    def gram_rbf(x, threshold=1.0):
        dot_products = x.dot(x.T)
        sq_norms = np.diag(dot_products)
        sq_distances = -2 * dot_products + sq_norms[:, None] + sq_norms[None, :]
        sq_median_distance = np.median(sq_distances)
        return np.exp(-sq_distances / (2 * threshold**2 * sq_median_distance))

    def center_gram(gram):
        gram = gram.copy()
        means = np.mean(gram, 0)
        means -= np.mean(means) / 2
        gram -= means[:, None]
        gram -= means[None, :]
        return gram

    gx, gy = center_gram(gram_rbf(x)), center_gram(gram_rbf(y))
    return gx.ravel().dot(gy.ravel()) / (np.linalg.norm(gx) * np.linalg.norm(gy))


def test_rbf_median_over_all_entries_matches_kornblith_notebook():
    rng = _rng(21)
    A = rng.normal(size=(9, 3))
    B = A @ rng.normal(size=(3, 4)) + 0.5 * rng.normal(size=(9, 4))
    ref = _kornblith_notebook_rbf_cka(A, B)
    assert abs(float(cka(A, B, kernel="rbf", median="all")) - ref) < TOL
    # The default (pairs i < j only) is a different, larger bandwidth: the values differ.
    assert abs(float(cka(A, B, kernel="rbf")) - ref) > 1e-4
    with pytest.raises(ValueError, match="`median`"):
        cka(A, B, kernel="rbf", median="upper")


def test_bandwidth_must_be_finite():
    A = _rng(22).normal(size=(6, 2))
    for bw in (np.inf, np.nan, 0.0):
        with pytest.raises(ValueError, match="`bandwidth` must be a positive finite scalar"):
            cka(A, A, kernel="rbf", bandwidth=bw)
