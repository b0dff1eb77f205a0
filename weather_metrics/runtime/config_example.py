"""config.example.toml, made from the settings table (see `make config-example`)."""

from __future__ import annotations

import json

from weather_metrics.settings import SETTINGS


def example_config() -> str:
    """The text of config.example.toml: every setting with its help, allowed values and default."""
    lines = [
        "# weather_metrics settings, each shown with its default.",
        "# Copy to config.toml (read from the working directory) or point WEATHER_METRICS_CONFIG at a file.",
        "# Every setting can also be set by an environment variable WEATHER_METRICS_<NAME IN CAPITALS>,",
        "# for example WEATHER_METRICS_DATABASE=/var/lib/weather_metrics/metrics.db; PORT sets the port too.",
        "# A bad value stops start-up with a message naming the setting.",
        "",
    ]

    def number(value: float) -> str:
        return f"{value:g}" if isinstance(value, float) else str(value)

    for setting in SETTINGS:
        lines.append(f"# {setting.help}")
        if setting.choices:
            lines.append(f"# One of: {', '.join(setting.choices)}.")
        if setting.minimum is not None or setting.maximum is not None:
            low = "…" if setting.minimum is None else number(setting.minimum)
            high = "…" if setting.maximum is None else number(setting.maximum)
            lines.append(f"# Allowed: {low} to {high}.")
        value = json.dumps(setting.default) if isinstance(setting.default, (str, bool)) else repr(setting.default)
        lines.append(f"{setting.name} = {value}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
