"""Everything Flask: each surface's error body, auth, limits, bodies, docs; the surfaces /v1, /api, /mcp, /ws."""
