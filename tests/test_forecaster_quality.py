"""The default RNNForecaster beats persistence and seasonal naive on real weather.

Embedded data: ``load_weather()``, hourly 2017, target ``temp_air``, all other
columns as past covariates; day-ahead forecasts (horizon 24) from every hour of
the held-out period, with the end of the training data as context.

Measured (seed 0, every parameter at its default: learned baseline and
window "auto", LSTM 32, early stopping, calibrated 10-90% band):

=========================  ==========  ==============  ===========
split                      model MAE   seasonal naive  persistence
=========================  ==========  ==============  ===========
train Jan-Apr, test May    2.403 degC  3.277           6.571
train Jan-Oct, test Nov-D  1.755 degC  2.489           4.523
=========================  ==========  ==============  ===========

On the May split GRU gave 2.370 and the peephole cell 2.338. Before
``season_lags="auto"`` became the default (the weekly lag as an input column)
the defaults gave 2.298 and 1.786, GRU 2.374 and the peephole cell 2.353: the
lag costs 4.6% on May and gains 1.7% on November-December. Before early
stopping scored the point forecast alone (commit a122040) the defaults gave
2.335 and 1.853; the old defaults (window 48, corrections to persistence, no
early stopping) gave 2.622 and 2.208. Each MAE is asserted to 5%, so a regression fails here, not only a
loss to a baseline. Print the tables with
``pytest tests/test_forecaster_quality.py -m "slow or not slow" -s``.

Training runs with one OpenMP thread: results are bitwise the same for any
thread count (tests/test_determinism.py), and on a loaded shared 2-core machine
two threads were measured 2.8x slower (OpenMP barriers wait for descheduled
threads), which would break the time budget of this test.
"""
import warnings

import pytest
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from tsrnn import RNNForecaster
from tsrnn.datasets import load_weather


def held_out_metrics(train_end, test_end, **params):
    df = load_weather()
    with threadpool_limits(1, user_api="openmp"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = RNNForecaster(target="temp_air", random_state=0, **params)
        model.fit(df.loc[:train_end])
        test = df.loc[train_end:test_end].iloc[1:]
        metrics = model.backtest(test).metrics
    print(f"\ntrain to {train_end}, test to {test_end}, {params or 'defaults'}")
    print(metrics.round(3).to_string())
    return metrics


def assert_beats_baselines(metrics):
    for column in ("MAE", "MASE"):
        model = metrics.loc["model", column]
        assert model < metrics.loc["seasonal_naive", column], metrics
        assert model < metrics.loc["persistence", column], metrics


def test_defaults_beat_the_baselines_on_may():
    # About 20 s on one thread (train January-April, 2880 rows; test May).
    metrics = held_out_metrics("2017-04-30 23:00", "2017-05-31 23:00")
    assert_beats_baselines(metrics)
    # Training is chaotic across library versions: the held-out curves of
    # numpy 2.4 and of the oldest declared versions (numpy 1.25, scipy 1.11)
    # part at the fifth epoch, and serve 2.403 and 2.281 degC. The guard
    # sits between them, 5% either side.
    assert metrics.loc["model", "MAE"] == pytest.approx(2.34, rel=0.05)


@pytest.mark.slow
def test_defaults_beat_the_baselines_on_november_december():
    # About 60 s on one thread (train January-October, 7296 rows).
    metrics = held_out_metrics("2017-10-31 23:00", "2017-12-31 23:00")
    assert_beats_baselines(metrics)
    assert metrics.loc["model", "MAE"] == pytest.approx(1.755, rel=0.05)


@pytest.mark.slow
@pytest.mark.parametrize(("cell", "mae"), [("gru", 2.370), ("peephole", 2.338)])
def test_other_cells_beat_the_baselines(cell, mae):
    metrics = held_out_metrics("2017-04-30 23:00", "2017-05-31 23:00", cell=cell)
    assert_beats_baselines(metrics)
    assert metrics.loc["model", "MAE"] == pytest.approx(mae, rel=0.05)
