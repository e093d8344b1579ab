"""Tests of the batched FISTA baseline (§4.1, eq. 10; Beck & Teboulle, 2009) against known answers:
closed forms, the LASSO optimality (KKT) conditions, a duality-gap certificate and scikit-learn."""

import pytest
import torch
from sklearn.linear_model import Lasso

from pyro_vsc.fista import default_tolerance, fista, lasso_objective, lipschitz_constant

# Numerical tolerances (deterministic, not statistical). With the float64 default stopping rule
# (relative change <= 1e-8) the measured KKT violations on these problems are below 1e-6·λ;
# KKT_TOL = 1e-5 leaves a 10x margin while an unconverged or wrong solution violates the
# conditions by O(λ) (e.g. the zero code violates them by max|Aᵀx| - λ).
KKT_TOL = 1e-5


def _random_problem(dim, num_atoms, batch, seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(dim, num_atoms, generator=generator, dtype=dtype)
    dictionary = dictionary / dictionary.norm(dim=0)
    x = 2.0 * torch.randn(batch, dim, generator=generator, dtype=dtype)
    return dictionary, x


def _kkt_violation(dictionary, x, codes, lam):
    """Largest violation of the LASSO optimality conditions, relative to λ.

    0 ∈ Aᵀ(Az - x) + λ∂‖z‖₁ means: Aᵢᵀ(x - Az) = λ·sign(zᵢ) where zᵢ ≠ 0 and |Aᵢᵀ(x - Az)| <= λ
    where zᵢ = 0.
    """
    correlation = (x - codes @ dictionary.T) @ dictionary
    active = codes != 0
    on_support = (correlation - lam * codes.sign()).abs()
    off_support = (correlation.abs() - lam).clamp(min=0.0)
    return float(torch.where(active, on_support, off_support).max()) / lam


def _duality_gap(dictionary, x, codes, lam):
    """Per-sample duality gap P(z) - D(θ) >= P(z) - P*, a certificate of suboptimality.

    The dual of ½‖x - Az‖² + λ‖z‖₁ is max_θ ½‖x‖² - ½‖x - θ‖² s.t. ‖Aᵀθ‖∞ <= λ; the scaled
    residual θ = r / max(1, ‖Aᵀr‖∞/λ) is dual feasible.
    """
    residual = x - codes @ dictionary.T
    scale = ((residual @ dictionary).abs().amax(-1) / lam).clamp(min=1.0)
    theta = residual / scale.unsqueeze(-1)
    dual = 0.5 * x.pow(2).sum(-1) - 0.5 * (x - theta).pow(2).sum(-1)
    return lasso_objective(dictionary, x, codes, lam) - dual


def test_lasso_objective_hand_computed():
    dictionary = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    x = torch.tensor([[3.0, -1.0]])
    codes = torch.tensor([[2.0, -0.5]])
    # residual = (3 - 2, -1 + 1) = (1, 0): ½·1 + λ(2 + 0.5) = 0.5 + 1.5·2.5.
    assert lasso_objective(dictionary, x, codes, 1.5).item() == pytest.approx(0.5 + 1.5 * 2.5)


def test_lipschitz_constant_is_largest_eigenvalue_of_gram():
    dictionary, _ = _random_problem(20, 30, 1, seed=1)
    expected = torch.linalg.eigvalsh(dictionary.T @ dictionary).max()
    torch.testing.assert_close(lipschitz_constant(dictionary), expected)


def test_iterates_follow_the_fista_recursion():
    # Beck & Teboulle (2009), FISTA with constant step: written out row by row for the first steps.
    dictionary, x = _random_problem(10, 14, batch=3, seed=11)
    lam = 0.4
    lipschitz = float(torch.linalg.eigvalsh(dictionary.T @ dictionary).max())
    for num_steps in range(1, 6):
        expected = []
        for row in x:
            previous = current = momentum = torch.zeros(14, dtype=torch.float64)
            t = 1.0
            for _ in range(num_steps):
                gradient = dictionary.T @ (dictionary @ momentum - row)
                step = momentum - gradient / lipschitz
                previous, current = current, step.sign() * (step.abs() - lam / lipschitz).clamp(min=0.0)
                t_next = (1.0 + (1.0 + 4.0 * t**2) ** 0.5) / 2.0
                momentum = current + (t - 1.0) / t_next * (current - previous)
                t = t_next
            expected.append(current)
        result = fista(dictionary, x, lam, max_iter=num_steps, tol=0.0)
        assert result.iterations == num_steps and not result.converged
        torch.testing.assert_close(result.codes, torch.stack(expected), rtol=1e-12, atol=1e-12)


def orthonormal_problem():
    """(Q, x, λ, z*): with AᵀA = I the LASSO decouples and z* = S_λ(Aᵀx) exactly."""
    generator = torch.Generator().manual_seed(2)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=generator, dtype=torch.float64))
    x = torch.randn(8, 16, generator=generator, dtype=torch.float64)
    lam = 0.7
    correlations = x @ q
    return q, x, lam, correlations.sign() * (correlations.abs() - lam).clamp(min=0.0)


def test_orthonormal_dictionary_gives_soft_threshold_of_correlations():
    q, x, lam, expected = orthonormal_problem()
    result = fista(q, x, lam)
    assert result.converged
    torch.testing.assert_close(result.codes, expected, rtol=0, atol=1e-10)
    assert torch.equal(result.codes == 0, expected == 0)


# λ spans the sparse-coding regime of §4.1: from ~60% down to ~10% active atoms.
@pytest.mark.parametrize("lam", [0.5, 1.0, 3.0])
@pytest.mark.parametrize("dim,num_atoms", [(16, 32), (32, 16), (48, 48)])
def test_solution_satisfies_kkt_conditions(dim, num_atoms, lam):
    dictionary, x = _random_problem(dim, num_atoms, batch=12, seed=dim + num_atoms)
    result = fista(dictionary, x, lam)
    assert result.converged
    codes = result.codes
    assert (codes == 0).any() and (codes != 0).any(), "problem should have both active and inactive atoms"
    assert _kkt_violation(dictionary, x, codes, lam) <= KKT_TOL
    # Independent certificate: the duality gap bounds the distance to the optimal objective.
    objective = lasso_objective(dictionary, x, codes, lam)
    assert (_duality_gap(dictionary, x, codes, lam) <= 1e-6 * objective).all()


@pytest.mark.parametrize("factor", [1.0, 1.5])
def test_all_zero_solution_is_exact_and_finite(factor):
    dictionary, x = _random_problem(24, 40, batch=6, seed=3)
    lam = factor * float((x @ dictionary).abs().max())
    result = fista(dictionary, x, lam)
    assert result.converged
    assert result.iterations <= 10, "an all-zero batch stops at the first convergence check"
    assert torch.equal(result.codes, torch.zeros_like(result.codes))


def test_objective_decreases_from_init_and_warm_start_saves_iterations():
    dictionary, x = _random_problem(32, 48, batch=10, seed=4)
    lam = 0.5
    init = torch.randn(10, 48, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    result = fista(dictionary, x, lam, init=init)
    assert (lasso_objective(dictionary, x, result.codes, lam) < lasso_objective(dictionary, x, init, lam)).all()
    restarted = fista(dictionary, x, lam, init=result.codes)
    assert restarted.iterations < result.iterations
    torch.testing.assert_close(
        lasso_objective(dictionary, x, restarted.codes, lam),
        lasso_objective(dictionary, x, result.codes, lam),
        rtol=1e-8,
        atol=0,
    )


def test_agrees_with_sklearn_lasso():
    # sklearn minimises (1/(2 n_samples))‖y - Xw‖² + α‖w‖₁ with X = A (n_samples = D pixels):
    # multiplying by D gives ½‖y - Aw‖² + Dα‖w‖₁, so α = λ / D.
    dim, num_atoms, lam = 64, 48, 1.0
    dictionary, x = _random_problem(dim, num_atoms, batch=5, seed=6)
    lasso = Lasso(alpha=lam / dim, fit_intercept=False, tol=1e-12, max_iter=100_000)
    sklearn_codes = torch.stack([torch.from_numpy(lasso.fit(dictionary.numpy(), row.numpy()).coef_) for row in x])
    codes = fista(dictionary, x, lam).codes
    ours = lasso_objective(dictionary, x, codes, lam).mean()
    theirs = lasso_objective(dictionary, x, sklearn_codes, lam).mean()
    assert abs(ours - theirs) <= 1e-4 * theirs
    # D > K Gaussian dictionary: the solution is unique, so the codes agree too.
    torch.testing.assert_close(codes, sklearn_codes, rtol=0, atol=1e-5)


def test_tensor_lambda_matches_float_lambda_per_row():
    dictionary, x = _random_problem(24, 24, batch=3, seed=7)
    lams = torch.tensor([[0.2], [0.6], [1.2]], dtype=torch.float64)
    batched = fista(dictionary, x, lams).codes
    # The stopping rule is batch-wide, so a row solved alone stops at a slightly different
    # iterate; both are within ~1e-6 of the solution.
    for row, lam in enumerate(lams.flatten().tolist()):
        single = fista(dictionary, x[row : row + 1], lam).codes
        torch.testing.assert_close(batched[row : row + 1], single, rtol=0, atol=1e-5)
    scalar_tensor = fista(dictionary, x, torch.tensor(0.6, dtype=torch.float64)).codes
    torch.testing.assert_close(scalar_tensor, fista(dictionary, x, 0.6).codes)


def test_float32_reaches_float64_objective():
    dictionary, x = _random_problem(32, 48, batch=16, seed=8)
    lam = 0.5
    codes64 = fista(dictionary, x, lam).codes
    result32 = fista(dictionary.float(), x.float(), lam)
    assert result32.converged and result32.codes.dtype == torch.float32
    assert default_tolerance(torch.float32) > default_tolerance(torch.float64)
    objective64 = lasso_objective(dictionary, x, codes64, lam)
    objective32 = lasso_objective(dictionary, x, result32.codes.double(), lam)
    # float32 rounding (eps ≈ 1.2e-7) leaves a relative excess far below 1e-5.
    assert ((objective32 - objective64).abs() <= 1e-5 * objective64).all()


def test_zero_dictionary_gives_zero_codes():
    x = torch.randn(4, 8, dtype=torch.float64)
    result = fista(torch.zeros(8, 5, dtype=torch.float64), x, 1.0)
    assert torch.equal(result.codes, torch.zeros(4, 5, dtype=torch.float64))


def test_bad_inputs_are_rejected_with_clear_errors():
    dictionary, x = _random_problem(8, 6, batch=2, seed=9)
    with pytest.raises(ValueError, match="x must have shape"):
        fista(dictionary, x[:, :7], 1.0)
    with pytest.raises(ValueError, match="lam must be finite and >= 0"):
        fista(dictionary, x, -1.0)
    with pytest.raises(ValueError, match="does not broadcast"):
        fista(dictionary, x, torch.ones(3, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="share dtype and device"):
        fista(dictionary.float(), x, 1.0)
    with pytest.raises(ValueError, match="init must have shape"):
        fista(dictionary, x, 1.0, init=torch.zeros(2, 5, dtype=torch.float64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    dictionary, x = _random_problem(32, 48, batch=16, seed=10)
    cpu = fista(dictionary, x, 0.5)
    cuda = fista(dictionary.cuda(), x.cuda(), torch.tensor(0.5, dtype=torch.float64, device="cuda"))
    assert cuda.codes.device.type == "cuda"
    torch.testing.assert_close(cuda.codes.cpu(), cpu.codes, rtol=0, atol=1e-6)
