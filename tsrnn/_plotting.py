"""Drawing a forecast: recent history, forecast and quantile band (matplotlib)."""


def plot_forecast(forecaster, history, forecast, ax=None, series=None, n_history=None):
    """Draw ``forecast`` after the last ``n_history`` rows of ``history``.

    ``history`` is {series key: frame}; ``forecast`` is what
    ``forecaster.predict`` returned for it. See ``RNNForecaster.plot``.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "RNNForecaster.plot needs matplotlib, which is not installed. "
            "Install it with `pip install matplotlib` (or `pip install "
            "tsrnn[plot]`)."
        ) from exc
    layout = forecaster._frame_layout
    key = next(iter(history)) if series is None else series
    if key not in history:
        raise ValueError(f"Unknown series {series!r}; known: {list(history)}.")
    if layout.multi:
        forecast = forecast.xs(key, level=0)
    if n_history is None:
        n_history = max(forecaster.window_, 2 * forecaster.horizon)
    past = history[key].iloc[-n_history:]
    if ax is None:
        _, ax = plt.subplots()
    quantiles = forecaster.quantiles_
    for target in layout.targets:
        line = ax.plot(past.index, past[target], label=f"{target} (observed)")[0]
        color = line.get_color()
        if quantiles is None:
            point = forecast[target]
        else:
            cols = [f"{target}_q{q:g}" for q in quantiles]
            point = forecast[cols[forecaster._point_index()]]
            if len(cols) > 1:
                ax.fill_between(
                    forecast.index, forecast[cols[0]], forecast[cols[-1]],
                    color=color, alpha=0.25,
                    label=f"{target} {quantiles[0]:g}-{quantiles[-1]:g} quantiles",
                )
        ax.plot(forecast.index, point, color=color, linestyle="--",
                label=f"{target} (forecast)")
    ax.axvline(past.index[-1], color="grey", linewidth=0.8)
    # Name what is drawn: a saved PNG is often seen without the code that made it.
    title = f"Forecast of {', '.join(map(str, layout.targets))}"
    ax.set_title(title if not layout.multi else f"{title}, {layout.id_name}={key}")
    ax.set_xlabel(past.index.name or "time")
    ax.legend(loc="best")
    return ax
