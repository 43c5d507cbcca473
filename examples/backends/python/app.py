"""A Bottle app behind oauthgate: who is logged in, from X-User-Info, checked against the
signed X-User-Assertion (verified with PyJWT through the gateway's /_auth/jwks).

Environment:
  PORT      where to listen (on 127.0.0.1 only: only the gateway may reach the app)
  GATEWAY   the gateway's public_url, e.g. https://app.example.com (the assertion's issuer)
  AUDIENCE  this app's origin as the gateway's route names it, e.g. http://127.0.0.1:8080
  CA_FILE   optional: a CA file to trust for the gateway's certificate
"""
import json
import os
import ssl

import bottle
import jwt

GATEWAY = os.environ["GATEWAY"].rstrip("/")
AUDIENCE = os.environ["AUDIENCE"]
context = ssl.create_default_context(cafile=os.environ.get("CA_FILE") or None)
# Fetched once, then cached; re-fetched when a token names a key it does not know.
jwks = jwt.PyJWKClient(f"{GATEWAY}/_auth/jwks", ssl_context=context)


def verified_identity():
    """The assertion's claims, or raises: never trust X-User-Info without it if the app can
    be reached any other way than through the gateway."""
    token = bottle.request.get_header("X-User-Assertion")
    if not token:
        raise ValueError("no X-User-Assertion")
    key = jwks.get_signing_key_from_jwt(token)
    return jwt.decode(token, key, algorithms=["EdDSA"], audience=AUDIENCE, issuer=GATEWAY,
                      options={"require": ["exp", "iat", "iss", "aud", "sub"]})


@bottle.route("/<path:path>")
@bottle.route("/")
def whoami(path=""):
    info = json.loads(bottle.request.get_header("X-User-Info") or "null")
    try:
        claims, error = verified_identity(), None
    except Exception as e:  # any failure means: not verified
        claims, error = None, f"{type(e).__name__}: {e}"
    verified = claims is not None and info is not None and claims["sub"] == info.get("sub")
    bottle.response.content_type = "application/json"
    return json.dumps({"app": "bottle", "user": info, "verified": verified,
                       "claims": claims, "error": error})


if __name__ == "__main__":
    bottle.run(host="127.0.0.1", port=int(os.environ["PORT"]), quiet=True)
