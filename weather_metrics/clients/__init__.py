"""Programs that run on clients' machines, beside the service: standard library only, importing nothing of it."""
