-- Version 9: the pages' OpenID Connect sign-in refuses a state or an authorization code used twice.

CREATE TABLE IF NOT EXISTS oidc_redemptions (
    digest TEXT NOT NULL PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS oidc_redemptions_expires_at ON oidc_redemptions (expires_at);
