"""/sign-in, /sign-out and /account: a browser session on the same login sessions as the API."""

from __future__ import annotations

from typing import Any

from flask import Response, g, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError, validate
from werkzeug.exceptions import ServiceUnavailable

from weather_metrics.accounts.logins import LoginRefused, password_login
from weather_metrics.accounts.passwords import MAX_LENGTH, PasswordsBusy
from weather_metrics.web.auth import client_ip
from weather_metrics.web.limits import account_key, account_limit, address_limit
from weather_metrics.web.pages.blueprint import bp
from weather_metrics.web.pages.csrf import clear_sign_in_cookie
from weather_metrics.web.pages.sessions import (
    browser_sessions,
    clear_session_cookie,
    current_viewer,
    local_path,
    session_secret,
    set_session_cookie,
    signed_in,
    viewer,
)
from weather_metrics.web.services import services

TOO_MANY = "Too many sign-in attempts from this address or for this email. Wait a few minutes and try again."
EMAIL = validate.Email()


def _form_email() -> str:
    """Rate-limit key per account, shared with POST /api/auth/login: the email asked for."""
    email = request.form.get("email", "").strip()
    return account_key(email) if email else "login-ip:" + client_ip()


def _problems(email: str, password: str) -> dict[str, str]:
    """What is wrong with the fields before any password is checked, as the API's login schema would refuse them."""
    problems = {}
    if not email:
        problems["email"] = "Enter your email address."
    else:
        try:
            EMAIL(email)
            if len(email) > 254:
                raise ValidationError("too long")
        except ValidationError:
            problems["email"] = "Enter an email address such as name@example.com."
    if not password:
        problems["password"] = "Enter your password."
    elif len(password) > MAX_LENGTH:
        problems["password"] = f"Passwords here are at most {MAX_LENGTH} characters."
    return problems


def _form(status: int = 200, **values: Any) -> ResponseReturnValue:
    next_path = local_path(request.values.get("next"), "")
    context = {"email": "", "problems": {}, "refused": None, "next_path": next_path, **values}
    context["session_days"] = services().settings["browser_session_days"]
    context["single_sign_on"] = services().sign_in_provider is not None
    return render_template("pages/sign_in.html", signed_out="signed_out" in request.args, **context), status


@bp.get("/sign-in")
def sign_in_form() -> ResponseReturnValue:
    """The sign-in form; someone already signed in goes on to where they were going."""
    if viewer() is not None:
        return redirect(local_path(request.args.get("next")), 303)
    return _form()


@bp.post("/sign-in")
@address_limit(error_message=TOO_MANY)
@account_limit(_form_email, error_message=TOO_MANY)
def sign_in() -> ResponseReturnValue:
    """Check an email and password as POST /api/auth/login does; on success a session cookie, then `next`."""
    email, password = request.form.get("email", "").strip(), request.form.get("password", "")
    problems = _problems(email, password)
    if problems:
        return _form(400, email=email, problems=problems)
    try:
        user = password_login(services().passwords, email, password)
    except LoginRefused as exc:
        return _form(401, email=email, refused=f"{exc}.")
    except PasswordsBusy as exc:
        raise ServiceUnavailable(f"{exc}.", retry_after=services().settings["retry_after_seconds"]) from None
    browsers = browser_sessions()
    browsers.end(session_secret())  # a session cookie already here is never carried into the new one
    secret, login = browsers.start(user)
    response = make_response(redirect(local_path(request.form.get("next")), 303))
    set_session_cookie(response, secret, max_age=login.expires_at - login.created_at)
    clear_sign_in_cookie(response)
    g.session_cookie_set = True
    return response


@bp.post("/sign-out")
def sign_out() -> Response:
    """End this browser's session (its cookie stops working everywhere at once) and go to the sign-in page."""
    browser_sessions().end(session_secret())
    response = make_response(redirect(url_for("pages.sign_in_form", signed_out=1), 303))
    clear_session_cookie(response)
    g.session_cookie_set = True  # cleared here already
    return response


@bp.get("/account")
@signed_in()
def account() -> str:
    """Who is signed in: name, email, organization and role, and when this sign-in ends."""
    return render_template("pages/account.html", login=current_viewer())


# OpenAPI, merged into /openapi.json by web/docs.py: pages answer HTML, their errors too.
BROWSER_SESSION: list[dict[str, list[str]]] = [{"browserSession": []}]
HTML = {"text/html": {"schema": {"type": "string"}}}
FORM_REFUSED = {"403": "A form without this browser's token, or sent from another site (a page)"}
NEXT = {
    "name": "next",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "maxLength": 2000},
    "description": "Where to go after signing in: a path of this service (anything else is ignored)",
}


def _html_page(summary: str, security: list[dict[str, list[str]]], answers: dict[str, str]) -> dict[str, Any]:
    responses = {code: {"description": why, "content": HTML} for code, why in answers.items()}
    return {"summary": summary, "tags": ["Pages"], "security": security, "responses": responses}


SIGN_IN_FORM = {
    "type": "object",
    "required": ["email", "password", "csrf_token"],
    "properties": {
        "email": {"type": "string", "maxLength": 254},
        "password": {"type": "string", "maxLength": MAX_LENGTH},
        "csrf_token": {"type": "string", "description": "The token of the sign-in form (a page)"},
        "next": NEXT["schema"],
    },
}
PATHS: dict[str, dict[str, Any]] = {
    "/sign-in": {
        "get": {
            **_html_page("The sign-in form", [], {"200": "The form", "303": "Already signed in: on to `next`"}),
            "parameters": [NEXT],
        },
        "post": {
            **_html_page(
                "Sign in with email and password: a session cookie (HttpOnly, SameSite=Strict)",
                [],
                {
                    "303": "Signed in: a session cookie, and on to `next`",
                    "400": "An empty or malformed field (the form again, saying which)",
                    "401": "Wrong email or password, or a disabled account (the form again)",
                    **FORM_REFUSED,
                    "413": "Form too large (a page)",
                    "429": "Too many sign-in attempts (a page)",
                    "503": "Too many password checks at once; retry after Retry-After (a page)",
                },
            ),
            "requestBody": {
                "required": True,
                "content": {"application/x-www-form-urlencoded": {"schema": SIGN_IN_FORM}},
            },
        },
    },
    "/sign-out": {
        "post": {
            **_html_page(
                "Sign out: this browser's session ends at once",
                BROWSER_SESSION,
                {"303": "Signed out: on to the sign-in page", **FORM_REFUSED, "413": "Form too large (a page)"},
            ),
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "required": ["csrf_token"],
                            "properties": {"csrf_token": {"type": "string"}},
                        }
                    }
                },
            },
        }
    },
    "/account": {
        "get": _html_page(
            "Who is signed in: name, email, organization, role",
            BROWSER_SESSION,
            {"200": "The account page", "303": "Nobody signed in: to the sign-in page, then back"},
        )
    },
}
