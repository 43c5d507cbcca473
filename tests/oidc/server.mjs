// A small, real OpenID Connect provider (panva/oidc-provider) for the Rust
// integration tests. Everything is in memory and goes away with the process.
//
// Protocol with the test harness (stdout lines are the only thing it parses):
//   1. we listen on 127.0.0.1, port 0          -> stdout: "PORT <port>"
//   2. harness writes ONE line of JSON on stdin:
//        {"client_id": "...", "client_secret": "...",
//         "redirect_uris": ["https://localhost:12345/oauth/callback", ...]}
//   3. we build the provider (issuer http://127.0.0.1:<port>) -> stdout: "READY"
//   4. we exit when stdin closes (harness died / dropped the pipe) or on SIGTERM.
//
// Logins use the built-in devInteractions pages: any login name X is accepted
// (the password is ignored) and becomes an account with
//   sub = X, email = X@example.com, email_verified = !X.startsWith("unverified"),
//   name = "User X",
// and, with the scope "groups", groups = ["staff", "team-X"] and a nested
//   realm_access = {roles: ["reader", "X-role"]} (for JSON-pointer group claims).

import * as http from 'node:http';
import * as readline from 'node:readline';

import { Provider } from 'oidc-provider';

// oidc-provider prints its "NOTICE" messages with console.info, i.e. on
// stdout, at arbitrary times (e.g. the first time its default error page is
// rendered). Keep stdout for the protocol lines only; everything else goes to
// stderr.
const protocolLine = (line) => process.stdout.write(`${line}\n`);
console.log = console.error;
console.info = console.error;

const exit = (code) => () => process.exit(code);
process.on('SIGTERM', exit(0));
process.on('SIGINT', exit(0));

// Until the provider exists, answer every request with 503.
let handler = (_req, res) => {
  res.statusCode = 503;
  res.end('provider not configured yet\n');
};
const server = http.createServer((req, res) => handler(req, res));

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  protocolLine(`PORT ${port}`);

  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  // stdin closed -> the test process is gone: stop. (Also covers EOF before
  // the config line arrived.)
  rl.on('close', exit(0));
  rl.once('line', (line) => {
    try {
      start(port, JSON.parse(line));
    } catch (err) {
      console.error('oidc test provider: bad config line:', err);
      process.exit(2);
    }
  });
});

function start(port, { client_id, client_secret, redirect_uris }) {
  const issuer = `http://127.0.0.1:${port}`;

  const configuration = {
    clients: [{
      client_id,
      client_secret,
      redirect_uris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],

    // oidc-provider 9 only implements S256; require PKCE for every client.
    pkce: { required: () => true },

    features: {
      // Built-in (development-only) login + consent pages under /interaction/<uid>.
      devInteractions: { enabled: true },
    },

    // scope -> claims it releases. "email" and "profile" become supported scopes.
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups', 'realm_access'],
    },

    // Put the scope-granted claims (email, email_verified, name) into the
    // id_token as well, not only into the userinfo response.
    conformIdTokenClaims: false,

    async findAccount(_ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          return {
            sub,
            email: `${sub}@example.com`,
            email_verified: !sub.startsWith('unverified'),
            name: `User ${sub}`,
            groups: ['staff', `team-${sub}`],
            realm_access: { roles: ['reader', `${sub}-role`] },
          };
        },
      };
    },

    // Fixed keys so cookie signatures are stable; these are test-only values.
    cookies: { keys: ['oauthgate-test-cookie-key-1', 'oauthgate-test-cookie-key-2'] },

    // No `jwks`: oidc-provider then signs with its built-in development
    // keystore (RS256 etc.) and prints a warning on stderr. Fine for tests.
  };

  const provider = new Provider(issuer, configuration);
  // Plain HTTP on 127.0.0.1, no reverse proxy: don't trust X-Forwarded-*.
  // Cookies are only marked Secure when the request itself is https, so they
  // work over http here.
  provider.proxy = false;

  handler = provider.callback();
  protocolLine('READY');
}
