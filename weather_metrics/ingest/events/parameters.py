"""The privacy filter on an event's `parameters`: what parameters are for decides what they may hold.

Parameters give categorical breakdowns of tool calls ("units": "metric", "days": 7). So a
value is a boolean, null, a small integer or a lowercase word token, and nothing else:
measurements (floats), long numbers and text with digits, capitals or punctuation are refused
whatever they encode, so a coordinate, a street address, a phone number or an IP address is
refused however it is spelt, as long as it has a digit in it. Keys are lowercase snake_case
names, and a key with a word naming location, contact or identity data is refused.

This guards against careless clients. It cannot stop a determined one from spelling data out
in letters ("john_smith", "paris"): no filter that accepts words can.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from weather_metrics.core.fields import NOT_OBJECT

MAX_PARAMETERS = 20
# Room for counts, days (7), hours (48, or 384 for 16 days), percentages and limits; too
# small for a scaled coordinate (40712800), an IPv4 address as a number, a phone number,
# most ZIP codes or a year. Whole degrees (40, -74) pass: a 100 km square names no one.
MIN_INTEGER = -1000
MAX_INTEGER = 1000
MAX_TOKEN_LENGTH = 32  # the longest categorical value, with room to spare
MAX_KEY_LENGTH = 64  # keys are names picked by the client's developer, often compound

WORD_TOKEN = re.compile(rf"[a-z][a-z_]{{0,{MAX_TOKEN_LENGTH - 1}}}")
KEY = re.compile(rf"[a-z][a-z_]{{0,{MAX_KEY_LENGTH - 1}}}")

TOO_MANY = f"Must have at most {MAX_PARAMETERS} keys"
BAD_KEY = (
    f"Key must be a lowercase snake_case name (a-z and '_', starting with a letter, 1-{MAX_KEY_LENGTH} characters)"
)
PII_KEY = "Looks like personal data (the key names location, contact or identity data); never send PII"
BAD_INTEGER = (
    f"Must be a small integer ({MIN_INTEGER} to {MAX_INTEGER}, no decimal point); "
    "measurements and long numbers may hold personal data"
)
BAD_TOKEN = (
    f"Must be a lowercase word token (a-z and '_', 1-{MAX_TOKEN_LENGTH} characters, starting with a letter); "
    "values with digits or punctuation may hold personal data"
)
NOT_FLAT = "Must be a boolean, null, small integer or word token (no objects or arrays)"

# A key with one of these words names personal data ("client_ip", "home_city", "gps").
PII_KEY_WORDS = frozenset(
    """lat latitude lon lng longitude latlong latlng lonlat coord coords coordinate coordinates
    geo geohash geocode geolocation geoip gps loc location locations place position
    address addr street zip zipcode postcode postal city town
    email mail phone mobile tel telephone fax contact
    ip ipaddr ipaddress mac hostname
    name names firstname lastname fullname username surname ssn dob birthday birthdate passport""".split()
)

# Long words that give a key away even inside a compound written without '_': "useremail".
PII_KEY_STEMS = (
    "latitude longitude latlong latlng coordinate geolocation geohash location address street "
    "zipcode postcode postal email phone username firstname lastname fullname surname ipaddr birth passport".split()
)

# A key whose last word is one of these names a kind of data, not the data: "location_type".
CATEGORY_WORDS = ("type", "kind", "format", "source", "mode")


def parameter_problem(key: Any, value: Any) -> str | None:
    """Why one parameter may not be stored, or None when it is fine."""
    if isinstance(value, (dict, list)):
        return NOT_FLAT
    if not (_cacheable(key) and _cacheable(value)):
        return _scalar_problem.__wrapped__(key, value)
    return _scalar_problem(key, value)


def parameters_problems(value: Any) -> dict[str, str] | str | None:
    """Problems of a `parameters` object: a message, a message per key, or None."""
    if not isinstance(value, dict):
        return NOT_OBJECT
    if len(value) > MAX_PARAMETERS:
        return TOO_MANY
    problems = {}
    for key, item in value.items():
        problem = parameter_problem(key, item)
        if problem:
            problems[str(key)] = problem
    return problems or None


# The cache keeps only what is small: a client sending long keys or values must not grow it.
MAX_CACHED_LENGTH = 64


def _cacheable(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_CACHED_LENGTH
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() <= MAX_CACHED_LENGTH
    return value is None or isinstance(value, (bool, float))


# Clients send the same few parameters over and over; the verdict depends on nothing else.
# Typed, because 7 and 7.0 (and 1 and True) are equal keys with different verdicts.
@lru_cache(maxsize=8192, typed=True)
def _scalar_problem(key: Any, value: Any) -> str | None:
    if not isinstance(key, str) or not KEY.fullmatch(key):
        return BAD_KEY
    if _names_personal_data(key):
        return PII_KEY
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if MIN_INTEGER <= value <= MAX_INTEGER else BAD_INTEGER
    if isinstance(value, float):
        return BAD_INTEGER
    if isinstance(value, str):
        return None if WORD_TOKEN.fullmatch(value) else BAD_TOKEN
    return NOT_FLAT


def _names_personal_data(key: str) -> bool:
    words = key.split("_")
    if words[-1] in CATEGORY_WORDS:
        return False
    return any(word in PII_KEY_WORDS for word in words) or any(stem in key for stem in PII_KEY_STEMS)
