"""Closed forms of the noise-induced regularizers of linear models (Orvieto et al., Sections 2.3, 3.1, 3.2, 4 and
Appendix E).

Setting: Φ = W_M ⋯ W_1 Xᵀ (d_M × n) with X (n × d_0), weights shaped (d_out, d_in) like nn.Linear.weight, no
biases, and L = 1/(2n) ‖Yᵀ − Φ‖²_F. Perturbing the weights gives Φ + Δ with E[Δ] = 0 in every case below, so

    E[L(w + noise)] − L(w) = 1/(2n) E‖Δ‖²_F        (exactly: the cross term (1/n)⟨Φ − Yᵀ, E Δ⟩ vanishes),

and each function returns that increase split into its σ² part (`second_order`, the explicit regularizer) and its
higher-order part (`variance_term`). The identities used are E[E M Eᵀ] = tr(M) I and E[Eᵀ M E] = tr(M) I for E with
iid N(0, 1) entries, hence E‖A E B‖²_F = ‖A‖²_F ‖B‖²_F.
"""

from __future__ import annotations

from typing import Sequence

import torch


def _squared_norm(matrix: torch.Tensor) -> torch.Tensor:
    return matrix.pow(2).sum()


def one_hidden_layer_all_parameter_noise(
    W1: torch.Tensor, W2: torch.Tensor, X: torch.Tensor, sigma: float
) -> dict[str, torch.Tensor]:
    """Noise σE₁, σE₂ on both layers at once (Sec. 3.1). Δ = σ(W₂E₁ + E₂W₁)Xᵀ + σ²E₂E₁Xᵀ, the two parts
    uncorrelated (odd moments vanish), so

        second_order  = σ²/(2n) [‖W₂‖²_F ‖X‖²_F + d₂ ‖W₁Xᵀ‖²_F]
        variance_term = σ⁴/(2n) d₁ d₂ ‖X‖²_F

    The variance term has ‖X‖²_F, as in the text of Sec. 3.1, not the ‖X‖⁴_F of the Fig. 1 caption:
    E‖E₂E₁Xᵀ‖² = E_{E₁}[d₂ ‖E₁Xᵀ‖²] = d₂ d₁ ‖X‖²_F — E₂ contributes d₂ = tr(I_{d₂}), E₁ contributes d₁ times
    ‖X‖²_F; X appears once, quadratically. (Checked against Monte Carlo in tests/test_curvature.py.)
    R_σ = L + second_order + variance_term holds exactly, not only to order σ²."""
    n = X.shape[0]
    d1, d2 = W1.shape[0], W2.shape[0]
    second_order = sigma**2 / (2 * n) * (_squared_norm(W2) * _squared_norm(X) + d2 * _squared_norm(W1 @ X.T))
    variance_term = sigma**4 / (2 * n) * d1 * d2 * _squared_norm(X)
    return {"second_order": second_order, "variance_term": variance_term, "total": second_order + variance_term}


def one_hidden_layer_layerwise_noise(
    W1: torch.Tensor, W2: torch.Tensor, X: torch.Tensor, sigma: float
) -> dict[str, torch.Tensor]:
    """Noise √2σE_j on one layer j ∈ {1, 2} chosen uniformly at random (Sec. 3.2):
    ½ · 1/(2n) · 2σ² (‖W₂‖²‖X‖² + d₂‖W₁Xᵀ‖²) = σ²/(2n)[…], the same σ² term as Sec. 3.1 and no σ⁴ term, since
    only one factor is ever perturbed and Δ is linear in the noise."""
    n = X.shape[0]
    d2 = W2.shape[0]
    second_order = sigma**2 / (2 * n) * (_squared_norm(W2) * _squared_norm(X) + d2 * _squared_norm(W1 @ X.T))
    zero = torch.zeros((), dtype=second_order.dtype, device=second_order.device)
    return {"second_order": second_order, "variance_term": zero, "total": second_order}


def deep_linear_layerwise_noise(weights: Sequence[torch.Tensor], X: torch.Tensor, sigma: float) -> torch.Tensor:
    """Noise √M σE_j on one layer j of M chosen uniformly at random (Sec. 4, Appendix E):

        σ²/(2n) Σⱼ ‖W_M ⋯ W_{j+1}‖²_F ‖W_{j−1} ⋯ W₁Xᵀ‖²_F

    (an empty product on the left is the d_M × d_M identity, ‖I‖²_F = d_M; on the right it is Xᵀ). Exact, since
    Δ = √M σ W_M⋯W_{j+1} E_j W_{j−1}⋯W₁Xᵀ is linear in E_j: the 1/M of the choice cancels the M of the variance.
    This is Eq. 11, σ²/2 · tr(∇²L DΦ DΦᵀ)."""
    n = X.shape[0]
    total = torch.zeros((), dtype=X.dtype, device=X.device)
    for j in range(len(weights)):
        right = X.T
        for weight in weights[:j]:
            right = weight @ right
        left = torch.eye(weights[-1].shape[0], dtype=X.dtype, device=X.device)
        for weight in reversed(weights[j + 1 :]):
            left = left @ weight
        total = total + _squared_norm(left) * _squared_norm(right)
    return sigma**2 / (2 * n) * total


def one_hidden_layer_regularized_minimum(X: torch.Tensor, y: torch.Tensor, sigma: float) -> torch.Tensor:
    """min over (W₁, W₂) of the regularised loss L + σ²/(2n)[‖W₂‖²_F ‖X‖²_F + d₂‖W₁Xᵀ‖²_F] (Eq. 11 for one hidden
    layer at per-parameter std σ, the loss GD with noise is claimed to minimise; Fig. 2), for d₂ = 1 and any d₁ ≥ 1.

    For a fixed end-to-end map β = W₁ᵀW₂ᵀ the penalty is least for W₁ = W₂ᵀβᵀ/‖W₂‖² (rank one), where it is
    a²‖X‖²_F + ‖Xβ‖²/a² with a = ‖W₂‖, least at a² = ‖Xβ‖/‖X‖_F: 2‖X‖_F ‖Xβ‖ (the AM-GM step of Eq. 10). With
    u = Xβ and c = σ²‖X‖_F the problem becomes min_u 1/(2n)‖y − u‖² + (c/n)‖u‖ over the column space of X, solved
    by shrinking the projection Py of y: u = (1 − c/‖Py‖)₊ Py. So

        min = 1/(2n) ‖y − Py‖² + (c²/(2n) + c(‖Py‖ − c)/n  if ‖Py‖ > c,  else ‖Py‖²/(2n)).

    Checked against GD on the explicit regulariser in tests/test_curvature.py."""
    X, y = X.double(), y.double().reshape(-1)
    n = X.shape[0]
    projected = X @ torch.linalg.lstsq(X, y.unsqueeze(1)).solution.squeeze(1)
    residual = _squared_norm(y - projected) / (2 * n)
    c = sigma**2 * torch.linalg.norm(X)
    length = torch.linalg.norm(projected)
    shrunk = c**2 / (2 * n) + c * (length - c) / n if length > c else length**2 / (2 * n)
    return residual + shrunk


def diagonal_network_regularizer(
    w1: torch.Tensor, w2: torch.Tensor, X: torch.Tensor, sigma: float
) -> dict[str, torch.Tensor]:
    """Diagonal network Φ = X(w₁∘w₁ − w₂∘w₂), noise σε on all of (w₁, w₂) (Sec. 2.3, Eq. 7):

        second_order  = 2σ² diag(XᵀX/n)ᵀ (w₁∘w₁ + w₂∘w₂)     (Eq. 7: the Lasso penalty on β = w₁² − w₂²)
        variance_term = 2σ⁴ ‖X‖²_F / n                         (our derivation; not in the paper)

    Derivation: Δ = X u with u = 2σ(w₁∘ε₁ − w₂∘ε₂) + σ²(ε₁∘ε₁ − ε₂∘ε₂); E u = 0, the coordinates of u are
    independent, and E u_j² = 4σ²(w₁ⱼ² + w₂ⱼ²) + σ⁴ E(ε₁ⱼ² − ε₂ⱼ²)² = 4σ²(w₁ⱼ² + w₂ⱼ²) + 4σ⁴ (odd moments vanish).
    So 1/(2n) E‖Xu‖² = 1/(2n) Σⱼ (XᵀX)ⱼⱼ E u_j², exactly the two terms above."""
    n = X.shape[0]
    column_norms = X.pow(2).sum(dim=0) / n  # diag(XᵀX/n)
    second_order = 2 * sigma**2 * column_norms @ (w1 * w1 + w2 * w2)
    variance_term = 2 * sigma**4 * _squared_norm(X) / n
    return {"second_order": second_order, "variance_term": variance_term, "total": second_order + variance_term}


__all__ = [
    "deep_linear_layerwise_noise",
    "diagonal_network_regularizer",
    "one_hidden_layer_all_parameter_noise",
    "one_hidden_layer_layerwise_noise",
    "one_hidden_layer_regularized_minimum",
]
