"""The Bayesian-regularised regression network (ann.py) against least squares and
the behaviour expected of MATLAB's trainbr, on small synthetic problems."""

import numpy as np
import pytest

from HeadRegistrationLib.register import ann
from HeadRegistrationLib.register.ann import BayesianANN
from HeadRegistrationLib.core.errors import HeadRegError


def r2(prediction, truth):
    prediction, truth = np.asarray(prediction).reshape(len(truth), -1), np.asarray(truth).reshape(len(truth), -1)
    return 1.0 - np.sum((prediction - truth) ** 2) / np.sum((truth - truth.mean(0)) ** 2)


def least_squares(x, y, x_new):
    design = np.hstack([x, np.ones((len(x), 1))])
    coefficients = np.linalg.lstsq(design, y, rcond=None)[0]
    return np.hstack([x_new, np.ones((len(x_new), 1))]) @ coefficients


def nonlinear_problem(n, d=2, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.5, 1.5, (n, d))
    truth = np.sin(2 * x[:, 0]) + x[:, 1] ** 2
    return x, truth, truth + noise * rng.normal(size=n)


@pytest.fixture(scope="module")
def linear_fit():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 2)), rng.normal(size=2)
    x = rng.uniform(-2, 2, (400, 5))
    truth = x @ a + b
    y = truth + 0.3 * rng.normal(size=truth.shape)
    model = BayesianANN(epochs=150).fit(x[:300], y[:300])
    return model, x, y, truth


def test_gauss_newton_products_match_finite_difference_jacobian():
    rng = np.random.default_rng(2)
    n, d, nh, k = 7, 3, 4, 2
    x1 = np.hstack([rng.normal(size=(n, d)), np.ones((n, 1))])
    t = rng.normal(size=(n, k))
    w = rng.normal(size=nh * (d + 1) + k * (nh + 1))

    def outputs(w):
        w1, w2 = w[:nh * (d + 1)].reshape(nh, d + 1), w[nh * (d + 1):].reshape(k, nh + 1)
        h = np.tanh(x1 @ w1.T)
        return h, w2, h @ w2[:, :-1].T + w2[:, -1]

    h, w2, y = outputs(w)
    steps = 1e-6 * np.eye(w.size)
    jacobian = np.array([(outputs(w + s)[2] - outputs(w - s)[2]).ravel() / 2e-6 for s in steps]).T
    jtj, jte = ann._gauss_newton(x1, h, w2[:, :-1], y - t)
    np.testing.assert_allclose(jtj, jacobian.T @ jacobian, atol=1e-7)
    np.testing.assert_allclose(jte, jacobian.T @ (y - t).ravel(), atol=1e-7)


def test_linear_problem_matches_least_squares(linear_fit):
    model, x, y, truth = linear_fit
    network, plain = model.predict(x[300:]), least_squares(x[:300], y[:300], x[300:])
    assert network.shape == (100, 2)
    assert r2(network, plain) > 0.98
    assert r2(network, truth[300:]) > r2(plain, truth[300:]) - 0.01


def test_nonlinear_problem_beats_least_squares():
    x, _, y = nonlinear_problem(400)
    model = BayesianANN(epochs=150).fit(x[:300], y[:300])
    network, plain = r2(model.predict(x[300:]), y[300:]), r2(least_squares(x[:300], y[:300], x[300:]), y[300:])
    assert network > 0.95
    assert network > plain + 0.3


def test_regularisation_keeps_an_oversized_network_from_overfitting():
    # hidden=20 on 2 inputs: W = 20*3 + 20 + 1 = 81 weights for 100 samples.
    x, _, y = nonlinear_problem(600, seed=3)
    model = BayesianANN(hidden=20, epochs=200).fit(x[:100], y[:100])
    n_weights = sum(a.size for name, a in model.to_arrays().items() if "weights" in name or "bias" in name)
    assert n_weights == 81
    assert 3 < model.effective_parameters < 0.4 * n_weights
    train_mse = np.mean((model.predict(x[:100])[:, 0] - y[:100]) ** 2)
    test_mse = np.mean((model.predict(x[100:])[:, 0] - y[100:]) ** 2)
    assert test_mse < 2.5 * train_mse
    assert test_mse < 2.0 * 0.1 ** 2
    history = model.history
    assert len(history) > 10 and set(history[0]) >= {"sse", "ssw", "gamma", "alpha", "beta", "mu"}
    for key in ("gamma", "alpha", "beta"):
        assert len({round(h[key], 9) for h in history}) > 5, key
    assert all(0 < h["gamma"] < min(n_weights, 100) and h["alpha"] > 0 and h["beta"] > 0 for h in history)
    assert model.effective_parameters == history[-1]["gamma"] and model.alpha == history[-1]["alpha"]
    assert history[-1]["sse"] < history[0]["sse"]


def test_same_seed_same_predictions_and_round_trip(linear_fit):
    model, x, y, _ = linear_fit
    again = BayesianANN(epochs=150).fit(x[:300], y[:300])
    np.testing.assert_array_equal(again.predict(x[300:]), model.predict(x[300:]))
    other_seed = BayesianANN(epochs=150, seed=1).fit(x[:300], y[:300])
    assert not np.array_equal(other_seed.predict(x[300:]), model.predict(x[300:]))

    arrays = model.to_arrays()
    assert all(isinstance(a, np.ndarray) for a in arrays.values())
    rebuilt = BayesianANN.from_arrays(arrays)
    np.testing.assert_array_equal(rebuilt.predict(x[300:]), model.predict(x[300:]))
    assert (rebuilt.alpha, rebuilt.beta, rebuilt.effective_parameters) == (
        model.alpha, model.beta, model.effective_parameters)


def test_one_dimensional_targets_and_constant_columns():
    x, _, y = nonlinear_problem(60)
    x = np.hstack([x, np.full((60, 1), 4.0)])
    model = BayesianANN(epochs=30).fit(x, y)
    assert model.predict(x).shape == (60, 1)
    assert np.all(np.isfinite(model.predict(x + 1.0)))
    constant = BayesianANN(epochs=5).fit(x, np.column_stack([y, np.full(60, 7.0)]))
    np.testing.assert_allclose(constant.predict(x)[:, 1], 7.0)


def test_mismatched_arrays_raise(linear_fit):
    model = linear_fit[0]
    arrays = model.to_arrays()
    for name, value in [("hidden_bias", np.zeros(9)), ("x_min", np.zeros(4)), ("output_weights", np.zeros((2, 9))),
                        ("alpha", np.zeros(2)), ("y_max", np.array([1.0, np.nan]))]:
        with pytest.raises(HeadRegError, match=name):
            BayesianANN.from_arrays({**arrays, name: value})
    with pytest.raises(HeadRegError, match="beta"):
        BayesianANN.from_arrays({k: v for k, v in arrays.items() if k != "beta"})


def test_bad_input_raises(linear_fit):
    model = linear_fit[0]
    x, y = np.zeros((10, 5)), np.zeros((10, 2))
    bad_fits = [
        (np.zeros(10), y),              # x not 2-D
        (x, np.zeros((9, 2))),          # sample counts differ
        (x[:1], y[:1]),                 # fewer than 2 samples
        (np.where(np.eye(10, 5) > 0, np.nan, x), y),
        (x, np.full((10, 2), np.inf)),
        (x, np.zeros((10, 2, 1))),
    ]
    for bad_x, bad_y in bad_fits:
        with pytest.raises(HeadRegError):
            BayesianANN(epochs=2).fit(bad_x, bad_y)
    for bad_x in (np.zeros((3, 4)), np.zeros(5), np.full((2, 5), np.nan)):
        with pytest.raises(HeadRegError):
            model.predict(bad_x)
    with pytest.raises(HeadRegError, match="not been trained"):
        BayesianANN().predict(x)
