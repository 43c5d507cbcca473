// A real Express 5 app for tests/confusion.rs (started by tests/common/realbackends.rs).
//
// Express routes case-insensitively by default (its router's `caseSensitive: false`), so
// `/node/ADMIN/secret` is served by the `/node/admin/secret` route: the secret a gateway
// route on `/node/admin` should guard. Every other request is echoed as JSON: the URL and the
// request headers exactly as they arrived (names as sent, from `rawHeaders`).
//
// Prints `PORT <n>` once listening on 127.0.0.1:0; exits when its standard input closes, so a
// test binary that dies leaves no server behind.
'use strict';

const express = require('express');

const app = express();

app.get('/node/admin/secret', (req, res) => {
  res.type('text/plain').send('EXPRESS-ADMIN-SECRET');
});

app.use((req, res) => {
  const raw = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    raw.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
  }
  res.json({ url: req.originalUrl, httpVersion: req.httpVersion, headers: raw });
});

const server = app.listen(0, '127.0.0.1', () => {
  process.stdout.write(`PORT ${server.address().port}\n`);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
