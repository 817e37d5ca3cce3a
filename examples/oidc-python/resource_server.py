"""wxauth plugged into a Python resource server with stock libraries, by configuration only.

    WXAUTH_ISSUER=https://auth.example.com CALLER_NAME=orders CALLER_KEY=... \\
        python resource_server.py <access_token>

From the issuer URL alone it finds the JWK Set and the introspection endpoint (OpenID Connect
discovery), verifies the access token offline with joserfc (RFC 9068: `typ` at+jwt, EdDSA,
`iss`, `exp`), then asks the introspection endpoint (RFC 7662, authlib's client, with a
caller of the `validate` scope) whether the token is still active, which also catches a
revoked token. Prints what it learned as one JSON line.
"""

import json
import os
import sys

import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet


def main() -> int:
    issuer = os.environ["WXAUTH_ISSUER"].rstrip("/")
    token = sys.argv[1]
    metadata = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
    if metadata["issuer"] != issuer:
        raise SystemExit(f"the discovery document names another issuer: {metadata['issuer']}")
    keys = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())

    offline = {"valid": False}
    try:
        decoded = jwt.decode(token, keys, algorithms=["EdDSA"])
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": issuer},
            sub={"essential": True},
            exp={"essential": True},
            client_id={"essential": True},
        ).validate(decoded.claims)
        if decoded.header.get("typ") != "at+jwt":
            raise SystemExit("not an RFC 9068 access token")
        offline = {"valid": True, "sub": decoded.claims["sub"], "scope": decoded.claims.get("scope")}
    except JoseError as err:
        offline = {"valid": False, "why": type(err).__name__}

    session = OAuth2Session(
        client_id=os.environ["CALLER_NAME"],
        client_secret=os.environ["CALLER_KEY"],
        token_endpoint_auth_method="client_secret_basic",
    )
    answer = session.introspect_token(metadata["introspection_endpoint"], token=token)
    answer.raise_for_status()
    print(json.dumps({"offline": offline, "introspection": answer.json()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
