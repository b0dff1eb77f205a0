"""Organization metrics in: agent executions and productivity metrics."""
