"""Organizations, users, teams and API keys; passwords, JWT sessions and OIDC ID tokens."""
