// A real OAuth 2.0 / OIDC server from the npm registry (oauth2-mock-server) for Rampart's
// interoperability tests. It issues RS256 access tokens (client_credentials), publishes discovery
// and JWKS, and answers RFC 7662 introspection like a real authorization server: a token is active
// only if this server issued it, it has not been revoked (RFC 7009) and has not expired; the caller
// must authenticate as rampart:s3cret-client (client_secret_basic).
// Prints {"issuer": "..."} on the first line, then serves until killed.
import { OAuth2Server, Events } from 'oauth2-mock-server';

const AUDIENCE = process.argv[2] ?? 'orders-api';
// The built-in introspection and revocation routes do not parse request bodies, so they are moved
// aside and replaced below by routes that do (addRoute parses the body).
const server = new OAuth2Server(undefined, undefined, {
  endpoints: { introspect: '/builtin-introspect', revoke: '/builtin-revoke' },
});
await server.issuer.keys.generate('RS256');
await server.start(0, '127.0.0.1');

const issued = new Map();
const revoked = new Set();
const expectedAuth = 'Basic ' + Buffer.from('rampart:s3cret-client').toString('base64');

server.service.on(Events.BeforeTokenSigning, (token) => {
  token.payload.aud = AUDIENCE;
  token.payload.sub = token.payload.sub ?? 'service-account-1';
});
server.service.on(Events.BeforeResponse, (response) => {
  const token = response.body?.access_token;
  if (token) {
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
    issued.set(token, claims);
  }
});
server.service.addRoute('POST', '/revoke', (req, res) => {
  if (req.body?.token) revoked.add(req.body.token);
  res.writeHead(200).end();
});
server.service.addRoute('POST', '/introspect', (req, res) => {
  const reply = (status, body) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  if (req.headers.authorization !== expectedAuth) return reply(401, { error: 'invalid_client' });
  const token = req.body?.token;
  const claims = issued.get(token);
  const now = Math.floor(Date.now() / 1000);
  if (!claims || revoked.has(token) || claims.exp <= now) return reply(200, { active: false });
  return reply(200, { active: true, ...claims, token_type: 'Bearer' });
});

console.log(JSON.stringify({ issuer: server.issuer.url }));
