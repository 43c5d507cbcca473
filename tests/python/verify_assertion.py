"""Verifies an oauthgate assertion with PyJWT, as any third-party JWT library would.

usage: verify_assertion.py JWKS_JSON TOKEN ISSUER AUDIENCE
Prints the verified claims as JSON; exits non-zero with the reason on any failure.
"""
import json
import sys

import jwt

jwks, token, issuer, audience = sys.argv[1:5]
header = jwt.get_unverified_header(token)
keys = {k.key_id: k for k in jwt.PyJWKSet.from_dict(json.loads(jwks)).keys}
key = keys[header["kid"]]
claims = jwt.decode(
    token,
    key=key,
    algorithms=["EdDSA"],
    audience=audience,
    issuer=issuer,
    options={"require": ["exp", "iat", "iss", "aud", "sub"]},
)
print(json.dumps({"header": header, "claims": claims}))
