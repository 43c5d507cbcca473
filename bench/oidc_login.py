#!/usr/bin/env python3
"""Logs a benchmark client in to an OIDC relying party (Apache mod_auth_openidc) through the
test OIDC provider's development login and consent pages, as a browser would, and prints the
relying party's session cookies as one `Cookie:` header value.

    python3 bench/oidc_login.py https://localhost:PORT/ LOGIN

Redirects are followed by hand, up to 20, so that a page that never redirects back is an error
with a message rather than a loop. TLS is not verified (per request: a REQUESTS_CA_BUNDLE in the environment would override a
session-wide setting): the relying party's certificate is the benchmark's own self-signed one.
"""
import re
import sys
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

urllib3.disable_warnings()


def main(start, login):
    s = requests.Session()
    url, form = start, None
    for _ in range(20):
        if form is None:
            r = s.get(url, allow_redirects=False, verify=False,
                      headers={"Accept": "text/html"})
        else:
            r = s.post(url, data=form, allow_redirects=False, verify=False)
        form = None
        if r.is_redirect:
            url = urljoin(url, r.headers["location"])
            continue
        if r.status_code != 200:
            sys.exit(f"oidc_login: {url} answered {r.status_code}: {r.text[:300]}")
        if urlsplit(url).netloc == urlsplit(start).netloc:
            # Back at the relying party with its session: the app's page.
            rp = urlsplit(start).hostname
            jar = [f"{c.name}={c.value}" for c in s.cookies if rp in c.domain]
            print("; ".join(jar))
            return
        action = re.search(r'action="([^"]+)"', r.text)
        if not action:
            sys.exit(f"oidc_login: no form at {url}")
        url = urljoin(url, action.group(1))
        if 'name="login"' in r.text:
            form = {"prompt": "login", "login": login, "password": "any"}
        else:
            form = {"prompt": "consent"}
    sys.exit("oidc_login: no way back to the relying party after 20 steps")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
