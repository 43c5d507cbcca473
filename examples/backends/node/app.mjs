// A Node app behind oauthgate: who is logged in, from X-User-Info, checked against the
// signed X-User-Assertion (verified with `jose` through the gateway's /_auth/jwks).
//
// Environment:
//   PORT      where to listen (on 127.0.0.1 only: only the gateway may reach the app)
//   GATEWAY   the gateway's public_url, e.g. https://app.example.com (the assertion's issuer)
//   AUDIENCE  this app's origin as the gateway's route names it, e.g. http://127.0.0.1:8080
//   NODE_EXTRA_CA_CERTS (Node's own) to trust a private CA for the gateway's certificate

import * as http from 'node:http';

import { createRemoteJWKSet, jwtVerify } from 'jose';

const gateway = process.env.GATEWAY.replace(/\/$/, '');
const audience = process.env.AUDIENCE;
// Fetched once, cached, re-fetched when a token names a key it does not know.
const jwks = createRemoteJWKSet(new URL(`${gateway}/_auth/jwks`));

async function verifiedIdentity(req) {
  const token = req.headers['x-user-assertion'];
  if (!token) throw new Error('no X-User-Assertion');
  const { payload } = await jwtVerify(token, jwks, {
    algorithms: ['EdDSA'],
    issuer: gateway,
    audience,
    requiredClaims: ['exp', 'iat', 'sub'],
  });
  return payload;
}

const server = http.createServer(async (req, res) => {
  let info = null;
  try {
    info = JSON.parse(req.headers['x-user-info'] ?? 'null');
  } catch {
    info = null;
  }
  let claims = null;
  let error = null;
  try {
    claims = await verifiedIdentity(req);
  } catch (e) {
    error = `${e.code ?? e.name}: ${e.message}`;
  }
  const verified = claims !== null && info !== null && claims.sub === info.sub;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ app: 'node', user: info, verified, claims, error }));
});

server.listen(Number(process.env.PORT), '127.0.0.1');
