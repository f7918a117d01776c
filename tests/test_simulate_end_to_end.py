"""End-to-end ODE of balanced deep linear nets against the factorised network's gradient flow."""

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.scipy.linalg as jsl
import numpy as np
import pytest
import scipy.linalg as sl

from linsolve import Task, exact, simulate

D_OUT, D_IN = 3, 4
TS = jnp.linspace(0.0, 4.0, 21)
REF_TOL = dict(rtol=1e-12, atol=1e-14)


def _rel_path_error(P, P_ref):
    """``max_t |P(t) - P_ref(t)|_F / max_t |P_ref(t)|_F``."""
    num = jnp.max(jnp.linalg.norm(P - P_ref, axis=(-2, -1)))
    return float(num / jnp.max(jnp.linalg.norm(P_ref, axis=(-2, -1))))


def _regression_task(key):
    """Data task with a random, non-whitened, non-aligned SPD Sxx (condition number ~ 30)."""
    kx, kc, kw = jr.split(key, 3)
    C = jr.normal(kc, (D_IN, D_IN)) / 2 + jnp.diag(jnp.array([1.5, 1.0, 0.6, 0.3]))
    X = jr.normal(kx, (60, D_IN)) @ C.T
    Y = X @ jr.normal(kw, (D_OUT, D_IN)).T / 2 + 0.3 * jr.normal(kw, (60, D_OUT))
    task = Task.from_data(X, Y)
    evals = np.linalg.eigvalsh(np.asarray(task.Sxx))
    assert evals[0] > 0 and abs(task.Sxx[0, 1]) > 1e-2  # SPD and not diagonal
    return task


def _sensing(key, m=10, rank=1):
    """Matrix sensing ``l(P) = 1/(2m) sum_i (<A_i, P> - b_i)^2``, low-rank ground truth."""
    ka, ku, kv = jr.split(key, 3)
    A = jr.normal(ka, (m, D_OUT, D_IN))
    target = jr.normal(ku, (D_OUT, rank)) @ jr.normal(kv, (rank, D_IN))
    b = jnp.einsum("moi,oi->m", A, target)

    def loss(P):
        r = jnp.einsum("moi,oi->m", A, P) - b
        return 0.5 * jnp.mean(r * r)

    return loss, target


def _chain(Ws):
    P = Ws[0]
    for W in Ws[1:]:
        P = W @ P
    return P


def _factorised_flow(Ws0, loss, ts, lr=1.0):
    """Reference: diffrax on the full weights, ``dW_j/dt = -lr jax.grad(loss(W_N...W_1))``."""

    def field(t, Ws, args):
        grads = jax.grad(lambda ws: loss(_chain(ws)))(Ws)
        return jax.tree_util.tree_map(lambda g: -lr * g, grads)

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field), diffrax.Dopri8(), 0.0, float(ts[-1]), None, tuple(Ws0),
        saveat=diffrax.SaveAt(ts=ts), stepsize_controller=diffrax.PIDController(**REF_TOL),
        max_steps=100_000,
    )
    return jax.vmap(_chain)(sol.ys)


# depth, hidden widths of the reference network (None: min(d_out, d_in)), random hidden frames
CASES = [(2, (6,), True), (3, None, False), (4, (5, 3, 7), True)]


@pytest.mark.parametrize("depth, widths, random_frames", CASES)
def test_regression_matches_factorised_gradient_flow(depth, widths, random_frames):
    task = _regression_task(jr.PRNGKey(0))
    P0 = 0.4 * jr.normal(jr.PRNGKey(1), (D_OUT, D_IN))
    Ws0 = simulate.balanced_factorization(
        P0, depth, widths=widths, key=jr.PRNGKey(2) if random_frames else None
    )
    for a, b in zip(Ws0[:-1], Ws0[1:], strict=True):
        np.testing.assert_allclose(b.T @ b, a @ a.T, atol=1e-13)
    np.testing.assert_allclose(_chain(Ws0), P0, atol=1e-14)
    ref = simulate.gradient_flow(Ws0, task, TS, lrs=0.7, steady_state=False, **REF_TOL)
    run = simulate.end_to_end_flow(P0, task, TS, depth=depth, lr=0.7)
    assert int(run.status) == simulate.CONVERGED and int(ref.status) == simulate.CONVERGED
    assert _rel_path_error(run.product(), ref.product()) < 1e-8
    np.testing.assert_allclose(run.loss, ref.loss, rtol=1e-8)
    assert float(run.loss[-1]) < 0.5 * float(run.loss[0])  # it did learn


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_matrix_sensing_matches_factorised_flow(depth):
    loss, _ = _sensing(jr.PRNGKey(3))
    P0 = 0.3 * jr.normal(jr.PRNGKey(4), (D_OUT, D_IN))
    Ws0 = simulate.balanced_factorization(P0, depth)
    P_ref = _factorised_flow(Ws0, loss, TS)
    run = simulate.end_to_end_flow(P0, loss, TS, depth=depth)
    assert int(run.status) == simulate.CONVERGED
    assert _rel_path_error(run.product(), P_ref) < 1e-8
    np.testing.assert_allclose(run.loss, jax.vmap(loss)(P_ref), rtol=1e-8, atol=1e-14)
    assert float(run.loss[-1]) < 0.1 * float(run.loss[0])


def test_depth_one_is_linear_regression_closed_form():
    """``P(t) = P* + (P0 - P*) exp(-lr t Sxx)``."""
    task = _regression_task(jr.PRNGKey(0))
    P0 = 0.4 * jr.normal(jr.PRNGKey(1), (D_OUT, D_IN))
    P_star = task.Syx @ jnp.linalg.inv(task.Sxx)
    exact_P = jax.vmap(lambda t: P_star + (P0 - P_star) @ jsl.expm(-0.7 * t * task.Sxx))(TS)
    run = simulate.end_to_end_flow(P0, task, TS, depth=1, lr=0.7)
    assert _rel_path_error(run.product(), exact_P) < 1e-9


def _whitened_task(s, key):
    """Sxx = I, Syx = U diag(s) V^T in random frames; returns the task and (U, V)."""
    ku, kv = jr.split(key)
    U = jnp.linalg.qr(jr.normal(ku, (D_OUT, D_OUT)))[0]
    V = jnp.linalg.qr(jr.normal(kv, (D_IN, D_IN)))[0][:, :D_OUT]
    Syx = (U * s) @ V.T
    return Task(jnp.eye(D_IN), Syx, Syx @ Syx.T + 0.1 * jnp.eye(D_OUT)), U, V


S_TARGET = jnp.array([4.0, 2.0, 1.0])
TS_LONG = jnp.linspace(0.0, 400.0, 201)


def test_aligned_small_init_matches_saxe_modes():
    """Aligned start ``U diag(u0) V^T``, whitened: each singular value is an exact Saxe mode."""
    task, U, V = _whitened_task(S_TARGET, jr.PRNGKey(5))
    u0 = jnp.array([1e-6, 3e-6, 1e-5])
    # atol far below the 1e-6 start: the default 1e-12 allows a 1e-6 relative error there, which
    # the plateau turns into an error of the switching time (path error 1.6e-9 vs 1.7e-10)
    run = simulate.end_to_end_flow((U * u0) @ V.T, task, TS_LONG, depth=3, atol=1e-20)
    modes = jnp.stack(
        [exact.saxe_mode(TS_LONG, s=s, u0=u, depth=3) for s, u in zip(S_TARGET, u0, strict=True)], -1
    )
    exact_P = jnp.einsum("ok,tk,ik->toi", U, modes, V)
    assert _rel_path_error(run.product(), exact_P) < 1e-8


def test_small_random_init_learns_singular_values_one_at_a_time():
    """Greedy low-rank learning (Arora et al. 2019): modes switch on in order of strength."""
    task, U, V = _whitened_task(S_TARGET, jr.PRNGKey(5))
    P0 = 1e-6 * jr.normal(jr.PRNGKey(6), (D_OUT, D_IN))  # not aligned with the task
    run = simulate.end_to_end_flow(P0, task, TS_LONG, depth=3, atol=1e-20)
    sv = np.linalg.svd(np.asarray(run.product()), compute_uv=False)  # (T, 3)
    frac = sv / np.asarray(S_TARGET)
    half = [int(np.argmax(frac[:, k] > 0.5)) for k in range(3)]
    assert 0 < half[0] < half[1] < half[2]  # learned in order, each at a distinct time
    for k in range(2):  # while mode k is half learned, mode k + 1 is still near zero
        assert frac[half[k], k + 1] < 0.02
    np.testing.assert_allclose(frac[-1], 1.0, atol=1e-3)  # all learned at the end
    # the plateaus between switches: each learned mode has already saturated before the next rises
    for k in range(2):
        assert frac[half[k + 1], k] > 0.97


@pytest.mark.parametrize("depth", [2, 3])
def test_zero_is_a_fixed_point(depth):
    task = _regression_task(jr.PRNGKey(0))
    run = simulate.end_to_end_flow(jnp.zeros((D_OUT, D_IN)), task, TS, depth=depth, lr=0.7)
    assert int(run.status) == simulate.CONVERGED
    assert float(jnp.max(jnp.abs(run.product()))) == 0.0
    np.testing.assert_array_equal(run.loss, run.loss[0])
    # depth 1 leaves zero at once
    assert float(jnp.max(jnp.abs(simulate.end_to_end_flow(
        jnp.zeros((D_OUT, D_IN)), task, TS, depth=1, lr=0.7).product()[-1]))) > 0.1


@pytest.mark.parametrize("depth, widths, random_frames", CASES[:2])
def test_rank_one_start_stays_rank_one(depth, widths, random_frames):
    """Zero singular values have zero velocity (N >= 2); the factorised network agrees."""
    task = _regression_task(jr.PRNGKey(0))
    P0 = 0.5 * jnp.outer(jr.normal(jr.PRNGKey(7), (D_OUT,)), jr.normal(jr.PRNGKey(8), (D_IN,)))
    Ws0 = simulate.balanced_factorization(
        P0, depth, widths=widths, key=jr.PRNGKey(2) if random_frames else None
    )
    assert max(int(jnp.linalg.matrix_rank(W)) for W in Ws0) == 1
    ref = simulate.gradient_flow(Ws0, task, TS, lrs=0.7, steady_state=False, **REF_TOL)
    run = simulate.end_to_end_flow(P0, task, TS, depth=depth, lr=0.7)
    sv = np.linalg.svd(np.asarray(run.product()), compute_uv=False)
    # depth 3: the zero singular values stay at rounding level. Depth 2: the solver's local errors
    # (rank-2 terms of a step, within rtol) seed them and they grow exponentially, like a mode
    # of the linear regime (1e-16 -> 8e-10 by t = 4, 1.6e-4 by t = 20); the factorised net,
    # whose steps keep the layers rank one, stays at 1e-16.
    assert np.all(sv[:, 1:] < (1e-8 if depth == 2 else 1e-13) * sv[:, :1])
    assert sv[0, 0] - sv[-1, 0] > 1.0  # the one mode moved
    assert _rel_path_error(run.product(), ref.product()) < 1e-8


def _gram_power(M, a):
    """``M^a`` of a PSD Gram by numpy eigh, eigenvalues below 1e-12 max set to 0, ``0^0 = 1``."""
    w, Q = np.linalg.eigh(np.asarray(M))
    w = np.where(w > 1e-12 * w.max(), w, 0.0)
    return (Q * (np.ones_like(w) if a == 0 else w**a)) @ Q.T


def _literal_sum(P, G, depth, power):
    P, G = np.asarray(P), np.asarray(G)
    return sum(
        power(P @ P.T, (j - 1) / depth) @ G @ power(P.T @ P, (depth - j) / depth)
        for j in range(1, depth + 1)
    )


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_velocity_matches_literal_sum_of_gram_powers(depth):
    """Against the sum formed term by term: scipy's fractional powers (square, full rank) and
    eigh of the formed Grams (rectangular, full and rank-1 ``P``)."""
    keys = jr.split(jr.PRNGKey(9), 4)
    square = jr.normal(keys[0], (D_OUT, D_OUT))
    G = jr.normal(keys[1], (D_OUT, D_OUT))
    scipy_power = lambda M, a: np.real(sl.fractional_matrix_power(M, a))  # noqa: E731
    np.testing.assert_allclose(
        simulate.end_to_end_velocity(square, G, depth),
        _literal_sum(square, G, depth, scipy_power), rtol=1e-10, atol=1e-10,
    )
    G = jr.normal(keys[2], (D_OUT, D_IN))
    rank_one = jnp.outer(jnp.arange(1.0, D_OUT + 1), jnp.array([1.0, -2.0, 0.5, 1.0]))
    for P in (jr.normal(keys[3], (D_OUT, D_IN)), rank_one):
        np.testing.assert_allclose(
            simulate.end_to_end_velocity(P, G, depth), _literal_sum(P, G, depth, _gram_power),
            rtol=1e-9, atol=1e-9,
        )


def test_divergence_and_step_limit_are_reported():
    blow_up = simulate.end_to_end_flow(  # dP/dt = P^3 from ones: blows up at t = 1/2
        jnp.ones((2, 2)), lambda P: -0.25 * jnp.sum(P**4), jnp.linspace(0.0, 1.0, 5), depth=1
    )
    assert int(blow_up.status) == simulate.DIVERGED and bool(blow_up.diverged)
    assert 0.5 <= float(blow_up.diverged_at) <= 1.0
    assert np.all(np.isfinite(np.asarray(blow_up.product())))
    assert np.isinf(blow_up.loss[-1]) and np.isfinite(blow_up.loss[0])
    task = _regression_task(jr.PRNGKey(0))
    short = simulate.end_to_end_flow(jnp.ones((D_OUT, D_IN)), task, TS, depth=2, max_steps=3)
    assert int(short.status) == simulate.STEP_LIMIT and not bool(short.diverged)


def test_helpers_reject_bad_input():
    P0 = jr.normal(jr.PRNGKey(1), (D_OUT, D_IN))
    with pytest.raises(ValueError, match="`widths`"):
        simulate.balanced_factorization(P0, 3, widths=(2, 3))
    with pytest.raises(ValueError, match="`widths`"):
        simulate.balanced_factorization(P0, 3, widths=(3,))
    with pytest.raises(ValueError, match="`depth`"):
        simulate.balanced_factorization(P0, 0)
    with pytest.raises(ValueError, match="`grad`"):
        simulate.end_to_end_velocity(P0, P0.T, 2)
    with pytest.raises(ValueError, match="`depth`"):
        simulate.end_to_end_velocity(P0, P0, 0)


BAD = [
    (dict(P0=jnp.ones(4)), "`P0`"),
    (dict(P0=jnp.full((D_OUT, D_IN), jnp.nan)), "`P0`"),
    (dict(P0=jnp.ones((D_IN, D_OUT))), "`P0`"),
    (dict(depth=0), "`depth`"),
    (dict(depth=1.5), "`depth`"),
    (dict(depth=True), "`depth`"),
    (dict(ts=jnp.array([0.0, 2.0, 1.0])), "`ts`"),
    (dict(ts=jnp.array([-1.0, 1.0])), "`ts`"),
    (dict(ts=jnp.zeros((2, 2))), "`ts`"),
    (dict(lr=0.0), "`lr`"),
    (dict(loss=3.0), "`loss`"),
    (dict(loss=lambda P: P), "`loss`"),  # not a scalar
    (dict(loss=lambda P: P @ P), "`loss`"),  # fails to trace for a non-square P
    (dict(rtol=-1.0), "`rtol`"),
    (dict(observe=3), "`observe`"),
]


@pytest.mark.parametrize("change, name", BAD)
def test_bad_input_names_the_argument(change, name):
    kwargs = dict(
        P0=jnp.ones((D_OUT, D_IN)), loss=_regression_task(jr.PRNGKey(0)), ts=TS, depth=2, lr=1.0
    )
    kwargs.update(change)
    with pytest.raises(ValueError, match=name):
        simulate.end_to_end_flow(**kwargs)
