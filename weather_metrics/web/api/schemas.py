"""Request bodies and query strings of /api, as marshmallow schemas, and the page block of paged answers."""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from weather_metrics.accounts.organizations import INGEST, KEY_SCOPES, ROLES, TEAM_ROLES
from weather_metrics.accounts.passwords import MAX_LENGTH, MIN_LENGTH

EMAIL = fields.Email(validate=validate.Length(max=254))
PASSWORD = validate.Length(MIN_LENGTH, MAX_LENGTH)
NAME = validate.Length(1, 200)
MAX_PAGE = 1_000_000


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class LoginSchema(StrictSchema):
    email = fields.Email(validate=validate.Length(max=254))
    password = fields.String(validate=validate.Length(1, MAX_LENGTH))
    sso_token = fields.String(validate=validate.Length(1, 16_384))

    @validates_schema
    def one_way_in(self, data: dict, **_: object) -> None:
        if "sso_token" in data and ("email" in data or "password" in data):
            raise ValidationError("Send either sso_token, or email and password", "sso_token")
        if "sso_token" not in data:
            for name in ("email", "password"):
                if name not in data:
                    raise ValidationError("Required (or send sso_token)", name)


class RefreshSchema(StrictSchema):
    refresh_token = fields.String(required=True, validate=validate.Length(1, 4096))


class UserCreateSchema(StrictSchema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    name = fields.String(required=True, validate=NAME)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    password = fields.String(validate=PASSWORD, metadata={"description": "Omit to get a one-time password"})


class UserUpdateSchema(StrictSchema):
    email = fields.Email(validate=validate.Length(max=254))
    name = fields.String(validate=NAME)
    role = fields.String(validate=validate.OneOf(ROLES), metadata={"description": "Admins only"})
    active = fields.Boolean(metadata={"description": "Admins only"})
    password = fields.String(validate=PASSWORD)
    current_password = fields.String(
        validate=validate.Length(1, MAX_LENGTH), metadata={"description": "Needed to change your own password"}
    )


class UserQuerySchema(StrictSchema):
    role = fields.String(validate=validate.OneOf(ROLES))
    team_id = fields.String(validate=validate.Length(1, 64))
    page = fields.Integer(load_default=1, validate=validate.Range(1, MAX_PAGE))
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))


class TeamCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=NAME)
    description = fields.String(load_default="", validate=validate.Length(max=2000))


class TeamQuerySchema(StrictSchema):
    include_members = fields.Boolean(load_default=False)
    page = fields.Integer(load_default=1, validate=validate.Range(1, MAX_PAGE))
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))


class MemberSchema(StrictSchema):
    user_id = fields.String(required=True, validate=validate.Length(1, 64))
    role = fields.String(load_default="member", validate=validate.OneOf(TEAM_ROLES))


class ApiKeyCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=NAME)
    scope = fields.String(
        load_default=INGEST,
        validate=validate.OneOf(KEY_SCOPES),
        metadata={"description": "ingest (default): /mcp; read: the GETs of /api/metrics and /api/analytics"},
    )


def _known_zone(name: str) -> None:
    from weather_metrics.core.times import zone

    try:
        zone(name)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class OrganizationUpdateSchema(StrictSchema):
    name = fields.String(validate=NAME)
    time_zone = fields.String(validate=[validate.Length(1, 64), _known_zone])


class PageSchema(Schema):
    """Where a page of a paged answer is (query.org_metrics.pagination)."""

    page = fields.Integer(required=True)
    limit = fields.Integer(required=True)
    total = fields.Integer(required=True, metadata={"description": "Items across all pages"})
    pages = fields.Integer(required=True)


COMPONENTS = {  # for /openapi.json
    "Login": LoginSchema,
    "Refresh": RefreshSchema,
    "UserCreate": UserCreateSchema,
    "UserUpdate": UserUpdateSchema,
    "TeamCreate": TeamCreateSchema,
    "Member": MemberSchema,
    "ApiKeyCreate": ApiKeyCreateSchema,
    "OrganizationUpdate": OrganizationUpdateSchema,
    "Page": PageSchema,
}
