"""Mints a token with PyJWT: python mint_pyjwt.py ALG ISSUER AUDIENCE
Prints {"jwk": <public JWK with kid>, "token": "..."}."""
import json
import sys
import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

alg, issuer, audience = sys.argv[1:4]
if alg.startswith(("RS", "PS")):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
elif alg == "ES256":
    key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
elif alg == "EdDSA":
    key = ed25519.Ed25519PrivateKey.generate()
    public = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
else:
    raise SystemExit(f"unsupported {alg}")
kid = f"pyjwt-{alg}"
public.update({"kid": kid, "alg": alg, "use": "sig"})
now = int(time.time())
claims = {"iss": issuer, "aud": audience, "sub": "pyjwt-user", "iat": now, "nbf": now, "exp": now + 300,
          "jti": str(uuid.uuid4()), "scope": "orders:read"}
token = jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})
print(json.dumps({"jwk": public, "token": token}))
