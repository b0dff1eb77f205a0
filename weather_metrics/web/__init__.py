"""Everything Flask: each surface's error body, auth, limits, bodies, docs; /v1, /api, /mcp, /ws and the pages."""
