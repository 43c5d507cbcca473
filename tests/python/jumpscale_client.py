"""Does what the published Jumpscale oauth_proxy client does in its callback().

usage: jumpscale_client.py VERIFY_KEY_HEX SESSION_STATE QUERY_STRING
The client keeps the state it sent in its own session. In callback() it takes the query as a
dict, pops `signature`, rebuilds the payload as `dict(state=<session state>, **query)`, and
checks the Ed25519 signature over `urlencode(payload)`. A query that carries `state` itself
makes that dict() call raise TypeError (a 500 in the client). Prints the user info as JSON;
exits non-zero when the signature does not verify or the client would have crashed.
"""
import binascii
import json
import sys
from urllib.parse import parse_qsl, urlencode

from nacl.signing import VerifyKey

verify_key_hex, session_state, query = sys.argv[1:4]
# The client's `dict(request.query)`, read as UTF-8.
data = dict(parse_qsl(query, keep_blank_values=True))
signature = binascii.unhexlify(data.pop("signature").encode())
payload = dict(state=session_state, **data)
VerifyKey(bytes.fromhex(verify_key_hex)).verify(urlencode(payload).encode(), signature)
print(json.dumps(data))
