"""Signed webhook deliveries, and the HTTP client that never reaches private addresses."""
