"""The /ws blueprint and the flask-sock extension, unbound."""

from __future__ import annotations

from flask import Blueprint
from flask_sock import Sock

bp = Blueprint("ws", __name__)


sock = Sock()
