"""Alert rules, their evaluation, and alert history."""
