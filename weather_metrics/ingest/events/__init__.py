"""/v1 events in: the contract's schema, the hot-path validator, and the intake."""
