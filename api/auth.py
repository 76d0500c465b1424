"""Who is calling: bearer tokens checked against static API keys and/or an OIDC issuer's JWTs.

API keys are compared as SHA-256 digests with `hmac.compare_digest`, against every
configured key, so neither the answer time nor an early exit says which part matched.
JWTs are verified by PyJWT (signature, exp/nbf, iss, aud) with the issuer's JWKS, fetched
by PyJWKClient: cached, and refetched once when a token names a key id it has not seen
(the issuer rotated its keys).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import logging
from dataclasses import dataclass
from pathlib import Path

import jwt

from radflow.infra.settings import Settings

log = logging.getLogger("radflow.api.auth")


class Role(enum.StrEnum):
    READER = "reader"  # orders, timeline, exceptions, FHIR reads
    OPERATOR = "operator"  # retry, skip, cancel, schedule, link-study, dismiss
    INTAKE = "intake"  # FHIR POST/PUT
    ADMIN = "admin"  # everything


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[Role]
    method: str  # "api-key", "jwt" or "none" (auth explicitly off)

    def may(self, role: Role) -> bool:
        return Role.ADMIN in self.roles or role in self.roles


class AuthConfigError(ValueError):
    """The configured keys or OIDC settings cannot be used (the process must not start)."""


class Unauthenticated(Exception):
    """No usable credentials: 401. The message says why without echoing the token."""


@dataclass(frozen=True)
class _Key:
    name: str
    roles: frozenset[Role]
    digest: bytes


def parse_keys(text: str, where: str) -> list[_Key]:
    """Entries `name:role[+role]:secret`, separated by commas or new lines; `#` starts a comment line."""
    keys: list[_Key] = []
    for n, raw in enumerate(text.replace(",", "\n").splitlines(), 1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        name, sep, rest = entry.partition(":")
        roles_text, sep2, secret = rest.partition(":")
        if not (sep and sep2 and name and roles_text and secret):
            # Never quote the entry: it holds a secret.
            raise AuthConfigError(f"{where}: entry {n} is not name:role[+role]:secret")
        try:
            roles = frozenset(Role(r.strip()) for r in roles_text.split("+"))
        except ValueError:
            raise AuthConfigError(f"{where}: entry {n} ({name}) has an unknown role; known: "
                                  f"{', '.join(r.value for r in Role)}") from None
        if len(secret) < 16:
            raise AuthConfigError(f"{where}: entry {n} ({name}) has a secret shorter than 16 characters")
        keys.append(_Key(name, roles, hashlib.sha256(secret.encode()).digest()))
    return keys


def _claim(claims: dict, path: str) -> object:
    value: object = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class Authenticator:
    """Built once per app from settings; `authenticate(header)` -> Principal or Unauthenticated."""

    def __init__(self, settings: Settings) -> None:
        self.keys: list[_Key] = parse_keys(settings.api_keys.get_secret_value(), "RADFLOW_API_KEYS")
        if settings.api_keys_file:
            try:
                text = Path(settings.api_keys_file).read_text(encoding="utf-8")
            except OSError as err:
                raise AuthConfigError(f"RADFLOW_API_KEYS_FILE: cannot read {settings.api_keys_file}: {err.strerror}") from None
            self.keys += parse_keys(text, str(settings.api_keys_file))
        oidc = [settings.oidc_issuer, settings.oidc_audience, settings.oidc_jwks_url]
        if any(oidc) and not all(oidc):
            raise AuthConfigError("OIDC needs all of RADFLOW_OIDC_ISSUER, RADFLOW_OIDC_AUDIENCE and RADFLOW_OIDC_JWKS_URL")
        self.issuer, self.audience = settings.oidc_issuer, settings.oidc_audience
        self.algorithms = list(settings.oidc_algorithms)
        self.roles_claim = settings.oidc_roles_claim
        self.jwks = jwt.PyJWKClient(settings.oidc_jwks_url, cache_keys=True, lifespan=600, timeout=10,
                                    cooldown_duration=settings.oidc_jwks_refresh_cooldown_s) if all(oidc) else None
        mode = settings.api_auth.strip().lower()
        if mode not in ("", "none"):
            raise AuthConfigError(f"RADFLOW_API_AUTH must be empty or 'none', not {settings.api_auth!r}")
        self.open = mode == "none"
        if self.open and (self.keys or self.jwks):
            raise AuthConfigError("RADFLOW_API_AUTH=none together with API keys or OIDC: choose one")

    @property
    def configured(self) -> bool:
        """A method is configured (or auth was switched off on purpose)."""
        return self.open or bool(self.keys) or self.jwks is not None

    @property
    def enforcing(self) -> bool:
        return bool(self.keys) or self.jwks is not None

    def describe(self) -> str:
        if self.open:
            return "API authentication: OFF (RADFLOW_API_AUTH=none): every caller is admin"
        methods = [f"{len(self.keys)} API key(s)"] if self.keys else []
        if self.jwks is not None:
            methods.append(f"OIDC JWTs from {self.issuer}")
        return "API authentication: " + (" and ".join(methods) if methods else "none configured")

    async def authenticate(self, authorization: str | None) -> Principal:
        if not self.enforcing:
            return Principal("anonymous", frozenset({Role.ADMIN}), "none")
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("a bearer token is required (Authorization: Bearer ...)")
        key = self._match_key(token)
        if key is not None:
            return Principal(key.name, key.roles, "api-key")
        if self.jwks is not None and token.count(".") == 2:
            return await self._verify_jwt(token)
        raise Unauthenticated("unknown token")

    def _match_key(self, token: str) -> _Key | None:
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for key in self.keys:  # no early exit: every key is compared
            if hmac.compare_digest(digest, key.digest):
                found = key
        return found

    async def _verify_jwt(self, token: str) -> Principal:
        assert self.jwks is not None
        try:
            # PyJWKClient fetches with urllib (blocking): off the event loop.
            signing_key = await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)
            claims = jwt.decode(
                token, signing_key, algorithms=self.algorithms, audience=self.audience, issuer=self.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]}, leeway=30,
            )
        except jwt.PyJWKClientConnectionError as err:
            log.warning("JWKS not reachable", extra={"jwks_error": str(err)[:200]})
            raise Unauthenticated("the token's signing keys cannot be fetched") from None
        except jwt.PyJWTError as err:
            raise Unauthenticated(f"invalid token: {type(err).__name__}") from None
        raw = _claim(claims, self.roles_claim)
        names = raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else []
        roles = frozenset(Role(r) for r in names if r in Role._value2member_map_)
        return Principal(str(claims.get("preferred_username") or claims["sub"]), roles, "jwt")
