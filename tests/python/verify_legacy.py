"""Does what an unmodified Jumpscale oauth_proxy client does with the legacy callback.

usage: verify_legacy.py VERIFY_KEY_HEX QUERY_STRING
The client takes the query parameters in order, removes `signature`, rebuilds the payload with
urllib's urlencode and checks the Ed25519 signature over it with PyNaCl. Prints the user info
as JSON; exits non-zero when the signature does not verify.
"""
import json
import sys
from urllib.parse import parse_qsl, urlencode

from nacl.signing import VerifyKey

verify_key_hex, query = sys.argv[1:3]
info = dict(parse_qsl(query, keep_blank_values=True))
signature = bytes.fromhex(info.pop("signature"))
VerifyKey(bytes.fromhex(verify_key_hex)).verify(urlencode(info).encode(), signature)
print(json.dumps(info))
