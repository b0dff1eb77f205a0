"""Answers of /api/auth, /api/users, /api/teams, /api/keys and /api/organization, for /openapi.json.

They describe what accounts/organizations.py's views (user_view, team_view, ...) return.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from weather_metrics.accounts.organizations import ROLES, TEAM_ROLES
from weather_metrics.web.api.schemas import PageSchema


def moment(description: str, nullable: bool = False) -> fields.DateTime:
    """A moment as every answer of the API gives it: an ISO 8601 string in UTC."""
    return fields.DateTime(required=True, allow_none=nullable, metadata={"description": description})


class TeamRefSchema(Schema):
    """A team a user belongs to, and their role in it."""

    id = fields.String(required=True)
    name = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(TEAM_ROLES))


class UserSchema(Schema):
    id = fields.String(required=True)
    organization_id = fields.String(required=True)
    email = fields.String(required=True)
    name = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    active = fields.Boolean(required=True)
    teams = fields.List(fields.Nested(TeamRefSchema), required=True)
    created_at = moment("When the user was added")
    updated_at = moment("When the profile last changed")


class NewUserSchema(UserSchema):
    one_time_password = fields.String(
        metadata={"description": "Only when no password was given: shown this once, never again"}
    )


class UsersSchema(Schema):
    users = fields.List(fields.Nested(UserSchema), required=True)
    pagination = fields.Nested(PageSchema, required=True)


class MembershipSchema(Schema):
    team_id = fields.String(required=True)
    user_id = fields.String(required=True)
    email = fields.String(metadata={"description": "Not shown to developers"})
    name = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(TEAM_ROLES))
    created_at = moment("When the user joined the team")


class TeamSchema(Schema):
    id = fields.String(required=True)
    organization_id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    member_count = fields.Integer(required=True)
    members = fields.List(
        fields.Nested(MembershipSchema), metadata={"description": "With include_members=true, and on creation"}
    )
    created_at = moment("When the team was created")


class TeamsSchema(Schema):
    teams = fields.List(fields.Nested(TeamSchema), required=True)
    pagination = fields.Nested(PageSchema, required=True)


class ApiKeySchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    prefix = fields.String(required=True, metadata={"description": "The secret's first characters, to tell keys apart"})
    scope = fields.String(
        required=True,
        validate=validate.OneOf(("ingest", "read")),
        metadata={"description": "ingest: send metrics; read: read them"},
    )
    created_by = fields.String(required=True, allow_none=True, metadata={"description": "The admin who created it"})
    created_at = moment("When the key was created")
    last_used_at = moment("When the key was last used", nullable=True)
    revoked = fields.Boolean(required=True)


class NewApiKeySchema(ApiKeySchema):
    secret = fields.String(required=True, metadata={"description": "The key itself: shown this once, never again"})


class ApiKeysSchema(Schema):
    keys = fields.List(fields.Nested(ApiKeySchema), required=True)


class OrganizationSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    time_zone = fields.String(required=True, metadata={"description": "IANA zone of its days, weeks and months"})
    created_at = moment("When the organization was created")


class TokensSchema(Schema):
    access_token = fields.String(required=True, metadata={"description": "Authorization: Bearer <access_token>"})
    refresh_token = fields.String(required=True, metadata={"description": "For POST /api/auth/refresh; single use"})
    token_type = fields.String(required=True, validate=validate.OneOf(("Bearer",)))
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds the access token is valid"})


class SessionSchema(TokensSchema):
    user = fields.Nested(UserSchema, required=True)


COMPONENTS: dict[str, Any] = {  # nested schemas first, so the others refer to them by name
    "TeamRef": TeamRefSchema,
    "User": UserSchema,
    "NewUser": NewUserSchema,
    "Users": UsersSchema,
    "Membership": MembershipSchema,
    "Team": TeamSchema,
    "Teams": TeamsSchema,
    "ApiKey": ApiKeySchema,
    "NewApiKey": NewApiKeySchema,
    "ApiKeys": ApiKeysSchema,
    "Organization": OrganizationSchema,
    "Tokens": TokensSchema,
    "Session": SessionSchema,
}
