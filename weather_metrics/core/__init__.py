"""Plain building blocks with no Flask and no database: times, the metric vocabulary, errors, strict JSON."""
