"""OIDC bearer JWTs against a JWKS served by a real local HTTP server (keys made at test time).

The app has no Temporal connection: a token the guard accepts reaches the handler, which
answers 503 (not connected yet); a refused one is 401/403 before that.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from radflow.api.app import create_app
from radflow.infra.settings import Settings

ISSUER = "https://idp.radflow.test/realms/hospital"
AUDIENCE = "radflow-api"


class Jwks:
    """An issuer's key set on a loopback HTTP server; `rotate()` publishes a new key."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.fetches = 0
        self.add("k1")
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                jwks.fetches += 1
                body = json.dumps({"keys": [
                    {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(k.public_key())), "kid": kid, "use": "sig", "alg": "RS256"}
                    for kid, k in jwks.keys.items()
                ]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/certs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def token(self, kid: str = "k1", *, key: rsa.RSAPrivateKey | None = None, **claims: object) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u-123", "preferred_username": "dr.jones",
                "iat": now, "exp": now + 300, "realm_access": {"roles": ["reader"]}, **claims}
        return jwt.encode(body, key or self.keys[kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    server = Jwks()
    yield server
    server.server.shutdown()


def _app_client(jwks: Jwks, tmp_path, **overrides: object) -> httpx.AsyncClient:  # noqa: ANN001
    settings = Settings(data_dir=tmp_path, oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks_url=jwks.url,
                        oidc_roles_claim="realm_access.roles", temporal_address="127.0.0.1:1", **overrides)
    app = create_app(settings, audit=False)
    app.state.service = None  # no lifespan here: never connected, so a handler answers 503
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://radflow.test")


@pytest.fixture
def http(jwks: Jwks, tmp_path) -> httpx.AsyncClient:  # noqa: ANN001
    return _app_client(jwks, tmp_path)


async def _get(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.get("/orders/ACC1", headers={"Authorization": f"Bearer {token}"})


async def test_a_valid_token_reaches_the_handler(http: httpx.AsyncClient, jwks: Jwks) -> None:
    assert (await _get(http, jwks.token())).status_code == 503


@pytest.mark.parametrize("case", ["expired", "forged", "wrong-audience", "wrong-issuer", "no-exp", "alg-none"])
async def test_bad_tokens_are_401(http: httpx.AsyncClient, jwks: Jwks, case: str) -> None:
    token = {
        "expired": lambda: jwks.token(exp=int(time.time()) - 120, iat=int(time.time()) - 600),
        # Right kid, wrong key: the signature does not verify.
        "forged": lambda: jwks.token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "wrong-audience": lambda: jwks.token(aud="another-api"),
        "wrong-issuer": lambda: jwks.token(iss="https://evil.example/realms/hospital"),
        "no-exp": lambda: jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "u"}, jwks.keys["k1"], algorithm="RS256",
                                     headers={"kid": "k1"}),
        "alg-none": lambda: jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "u", "exp": int(time.time()) + 60},
                                       None, algorithm="none", headers={"kid": "k1"}),
    }[case]()
    resp = await _get(http, token)
    assert resp.status_code == 401, resp.text
    assert resp.headers["www-authenticate"].startswith("Bearer")


async def test_roles_come_from_the_configured_claim(http: httpx.AsyncClient, jwks: Jwks) -> None:
    no_roles = jwks.token(realm_access={"roles": ["unrelated"]})
    reader = jwks.token()
    assert (await _get(http, no_roles)).status_code == 403
    cancel = await http.post("/orders/ACC1/cancel", json={}, headers={"Authorization": f"Bearer {reader}"})
    assert cancel.status_code == 403 and "operator" in cancel.json()["detail"]


async def test_keys_are_cached_and_refetched_on_an_unknown_kid(jwks: Jwks, tmp_path) -> None:  # noqa: ANN001
    http = _app_client(jwks, tmp_path, oidc_jwks_refresh_cooldown_s=0)
    for _ in range(3):
        assert (await _get(http, jwks.token())).status_code == 503
    assert jwks.fetches == 1  # cached
    jwks.add("k2")  # the issuer rotates its signing key
    assert (await _get(http, jwks.token("k2"))).status_code == 503
    assert jwks.fetches == 2
    assert (await _get(http, jwks.token("k-unknown", key=jwks.keys["k1"]))).status_code == 401


async def test_unknown_kids_do_not_flood_the_issuer(http: httpx.AsyncClient, jwks: Jwks) -> None:
    assert (await _get(http, jwks.token())).status_code == 503
    for n in range(5):  # within the default 30 s cooldown after the first fetch
        assert (await _get(http, jwks.token(f"made-up-{n}", key=jwks.keys["k1"]))).status_code == 401
    assert jwks.fetches == 1
