"""The small regression network of the paper's "Registration of multi-modal images"
(Islam, Wijewickrema & O'Leary, Sci Rep 2021): an ANN with Bayesian regularisation.

D input features -> one hidden layer of tanh units -> K linear outputs, trained as
MATLAB's ``trainbr`` does: Levenberg-Marquardt on ``F = beta*E_D + alpha*E_W``
(``E_D`` the sum of squared errors, ``E_W`` the sum of squared weights) with the
hyperparameters re-estimated after every accepted step by MacKay's evidence
framework (MacKay 1992, "Bayesian interpolation"; Foresee & Hagan 1997,
"Gauss-Newton approximation to Bayesian learning"). Plain numpy.
"""

import numpy as np

from ..core.errors import HeadRegError

_SHAPES = {  # array name -> shape in terms of (D inputs, H hidden units, K outputs)
    "hidden_weights": "HD", "hidden_bias": "H", "output_weights": "KH", "output_bias": "K",
    "x_min": "D", "x_max": "D", "y_min": "K", "y_max": "K", "alpha": "1", "beta": "1", "gamma": "1",
}


def _as_matrix(a, name, columns=None):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or (columns is not None and a.shape[1] != columns):
        want = f"(N, {columns})" if columns is not None else "(N, D)"
        raise HeadRegError(f"{name} must be a 2-D array of shape {want}, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise HeadRegError(f"{name} contains NaN or infinite values")
    return a


def _scale(lo, hi):
    """mapminmax to [-1, 1] as centre and factor; a constant column maps to 0."""
    half = (hi - lo) / 2.0
    return (hi + lo) / 2.0, np.divide(1.0, half, out=np.zeros_like(half), where=half > 0)


def _gauss_newton(x1, h, v, e):
    """J^T J and J^T e for J = d(outputs)/d(weights) over all N*K outputs, from the
    Kronecker structure of J rather than forming it (it would be N*K x W).
    Weight order: hidden [W | b] row by row, then output [V | c] row by row."""
    n, d1 = x1.shape
    k, nh = v.shape
    g = 1.0 - h**2                                        # tanh'
    h1 = np.hstack([h, np.ones((n, 1))])
    a = (g[:, :, None] * x1[:, None, :]).reshape(n, -1)   # d(hidden input j)/dW, times g
    hidden = (a.T @ a) * np.kron(v.T @ v, np.ones((d1, d1)))
    cross = np.einsum("jdi,kj->jdki", (a.T @ h1).reshape(nh, d1, nh + 1), v).reshape(nh * d1, -1)
    output = np.kron(np.eye(k), h1.T @ h1)
    jtj = np.block([[hidden, cross], [cross.T, output]])
    jte = np.concatenate([(((e @ v) * g).T @ x1).ravel(), (e.T @ h1).ravel()])
    return jtj, jte


class BayesianANN:
    """One-hidden-layer tanh network trained with Bayesian regularisation (``trainbr``).

    After ``fit``: ``alpha``, ``beta`` (hyperparameters), ``effective_parameters``
    (gamma = W - 2 alpha trace(H^-1), H = 2 beta J^T J + 2 alpha I) and ``history``
    (one dict per epoch). Inputs and outputs are scaled to [-1, 1] per column and
    errors are measured in that scale, as MATLAB does; ``predict`` undoes it.
    """

    def __init__(self, hidden=10, epochs=1000, seed=0, mu=0.005, mu_decrease=0.1,
                 mu_increase=10, mu_max=1e10, min_gradient=1e-7):
        if hidden < 1 or epochs < 0:
            raise HeadRegError("hidden must be >= 1 and epochs >= 0")
        self.hidden, self.epochs, self.seed = int(hidden), int(epochs), seed
        self.mu, self.mu_decrease, self.mu_increase = mu, mu_decrease, mu_increase
        self.mu_max, self.min_gradient = mu_max, min_gradient
        self.arrays = None
        self.history = []

    def _unpack(self, w, d, k):
        nh = self.hidden
        w1 = w[:nh * (d + 1)].reshape(nh, d + 1)
        w2 = w[nh * (d + 1):].reshape(k, nh + 1)
        return w1, w2

    def fit(self, x, y):
        """Train on x (N, D) and y (N, K) or (N,); returns self."""
        x = _as_matrix(x, "x")
        y = np.asarray(y, dtype=np.float64)
        y = _as_matrix(y[:, None] if y.ndim == 1 else y, "y")
        n, d = x.shape
        k = y.shape[1]
        if y.shape[0] != n:
            raise HeadRegError(f"x has {n} samples but y has {y.shape[0]}")
        if n < 2:
            raise HeadRegError(f"need at least 2 training samples, got {n}")
        x_min, x_max, y_min, y_max = x.min(0), x.max(0), y.min(0), y.max(0)
        (xc, xs), (yc, ys) = _scale(x_min, x_max), _scale(y_min, y_max)
        x1 = np.hstack([(x - xc) * xs, np.ones((n, 1))])
        t = (y - yc) * ys

        # Nguyen-Widrow for the hidden layer, a small uniform draw for the output layer.
        rng = np.random.default_rng(self.seed)
        nh = self.hidden
        w1 = rng.uniform(-1, 1, (nh, d))
        w1 *= 0.7 * nh ** (1.0 / d) / np.linalg.norm(w1, axis=1, keepdims=True)
        b1 = 0.7 * nh ** (1.0 / d) * rng.uniform(-1, 1, (nh, 1))
        w = np.concatenate([np.hstack([w1, b1]).ravel(), rng.uniform(-0.5, 0.5, k * (nh + 1))])
        n_weights, n_errors = w.size, n * k

        def forward(w):
            w1, w2 = self._unpack(w, d, k)
            h = np.tanh(x1 @ w1.T)
            return h, w2, h @ w2[:, :-1].T + w2[:, -1] - t

        h, w2, e = forward(w)
        sse, ssw = float(np.sum(e**2)), float(w @ w)
        gamma = float(n_weights)                          # trainbr's initial values
        beta = (n_errors - gamma) / (2 * sse) if sse > 0 else 1.0
        beta = beta if beta > 0 else 1.0
        alpha = gamma / (2 * ssw) if ssw > 0 else 1.0
        mu, self.history = self.mu, []
        for epoch in range(1, self.epochs + 1):
            jtj, jte = _gauss_newton(x1, h, w2[:, :-1], e)
            half_gradient = beta * jte + alpha * w        # grad F / 2
            if 2 * np.linalg.norm(half_gradient) < self.min_gradient:
                break
            objective, eye = beta * sse + alpha * ssw, np.eye(n_weights)
            while mu <= self.mu_max:                      # Levenberg-Marquardt step
                w_new = w - np.linalg.solve(beta * jtj + (alpha + mu) * eye, half_gradient)
                h_new, w2_new, e_new = forward(w_new)
                sse_new, ssw_new = float(np.sum(e_new**2)), float(w_new @ w_new)
                if beta * sse_new + alpha * ssw_new < objective:
                    w, h, w2, e, sse, ssw = w_new, h_new, w2_new, e_new, sse_new, ssw_new
                    mu = max(mu * self.mu_decrease, 1e-20)
                    break
                mu *= self.mu_increase
            if mu > self.mu_max:
                break
            # Evidence update (trainbr: gamma from the Hessian of this epoch's start). When
            # beta/alpha is so large that inv() loses gamma's range [0, min(W, N*K)), keep
            # the previous hyperparameters rather than let alpha or beta turn negative.
            new_gamma = float(n_weights - alpha * np.trace(np.linalg.inv(beta * jtj + alpha * eye)))
            if 0.0 <= new_gamma <= n_weights and new_gamma < n_errors:
                gamma = new_gamma
                alpha = gamma / (2 * ssw) if ssw > 0 else 1.0
                beta = (n_errors - gamma) / (2 * sse) if sse > 0 else 1.0
            self.history.append({"epoch": epoch, "sse": sse, "ssw": ssw, "gamma": gamma,
                                 "alpha": alpha, "beta": beta, "mu": mu})
        w1, w2 = self._unpack(w, d, k)
        self.arrays = {
            "hidden_weights": w1[:, :-1].copy(), "hidden_bias": w1[:, -1].copy(),
            "output_weights": w2[:, :-1].copy(), "output_bias": w2[:, -1].copy(),
            "x_min": x_min, "x_max": x_max, "y_min": y_min, "y_max": y_max,
            "alpha": np.array([alpha]), "beta": np.array([beta]), "gamma": np.array([gamma]),
        }
        return self

    alpha = property(lambda self: float(self._fitted()["alpha"][0]))
    beta = property(lambda self: float(self._fitted()["beta"][0]))
    effective_parameters = property(lambda self: float(self._fitted()["gamma"][0]))

    def _fitted(self):
        if self.arrays is None:
            raise HeadRegError("the network has not been trained: call fit() or from_arrays() first")
        return self.arrays

    def predict(self, x):
        """Outputs (M, K) for inputs x (M, D), in the units of the training targets."""
        a = self._fitted()
        x = _as_matrix(x, "x", a["x_min"].size)
        (xc, xs), (yc, ys) = _scale(a["x_min"], a["x_max"]), _scale(a["y_min"], a["y_max"])
        h = np.tanh(((x - xc) * xs) @ a["hidden_weights"].T + a["hidden_bias"])
        out = h @ a["output_weights"].T + a["output_bias"]
        return out * np.divide(1.0, ys, out=np.zeros_like(ys), where=ys > 0) + yc

    def to_arrays(self):
        """Weights, biases, normalisation ranges, alpha, beta, gamma as numpy arrays."""
        return {name: value.copy() for name, value in self._fitted().items()}

    @classmethod
    def from_arrays(cls, arrays):
        """A predictor rebuilt from ``to_arrays()``; HeadRegError on missing or misshapen arrays."""
        missing = sorted(set(_SHAPES) - set(arrays))
        if missing:
            raise HeadRegError(f"ANN arrays lack {', '.join(missing)}")
        a = {name: np.array(arrays[name], dtype=np.float64) for name in _SHAPES}
        if a["hidden_weights"].ndim != 2 or a["output_weights"].ndim != 2:
            raise HeadRegError("ANN hidden_weights and output_weights must be 2-D")
        (nh, d), k = a["hidden_weights"].shape, a["output_weights"].shape[0]
        sizes = {"D": d, "H": nh, "K": k, "1": 1}
        for name, dims in _SHAPES.items():
            want = tuple(sizes[c] for c in dims)
            if a[name].shape != want:
                raise HeadRegError(f"ANN array {name} has shape {a[name].shape}, expected {want}")
            if not np.all(np.isfinite(a[name])):
                raise HeadRegError(f"ANN array {name} contains NaN or infinite values")
        model = cls(hidden=nh)
        model.arrays = a
        return model
