// Mints a token with npm `jose` (panva/jose): node mint-jose.mjs ALG ISSUER AUDIENCE
// Prints {"jwk": <public JWK with kid>, "token": "..."}.
import { generateKeyPair, exportJWK, SignJWT } from 'jose';

const [alg, issuer, audience] = process.argv.slice(2);
const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
const jwk = { ...(await exportJWK(publicKey)), kid: `jose-${alg}`, alg, use: 'sig' };
const token = await new SignJWT({ scope: 'orders:read' })
  .setProtectedHeader({ alg, kid: jwk.kid, typ: 'at+jwt' })
  .setIssuer(issuer)
  .setAudience(audience)
  .setSubject('jose-user')
  .setIssuedAt()
  .setExpirationTime('5m')
  .setJti(crypto.randomUUID())
  .sign(privateKey);
console.log(JSON.stringify({ jwk, token }));
