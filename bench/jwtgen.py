"""Makes the JWT material for bench/run: ES256 and RS256 key pairs, their public keys as PEM
(HAProxy), a self-signed certificate per key (HAProxy 2.6 may want one), a JWKS with both keys and
one JWKS per algorithm (Rampart and Envoy), one long-lived token per algorithm, and a file of distinct ES256 tokens (one per
line) for the run that defeats verified-token caches; plus an expired and a badly signed ES256 token
for the pre-flight checks.

Usage: jwtgen.py OUT_DIR ISSUER AUDIENCE UNIQUE_COUNT
"""

import base64
import datetime
import json
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_b64u(n: int, length: int | None = None) -> str:
    length = length or (n.bit_length() + 7) // 8
    return b64u(n.to_bytes(length, "big"))


def jose(obj) -> str:
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


def sign_es256(key, signing_input: bytes) -> bytes:
    der = key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def sign_rs256(key, signing_input: bytes) -> bytes:
    return key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())


def token(alg, kid, key, claims) -> str:
    header = {"alg": alg, "typ": "JWT", "kid": kid}
    signing_input = f"{jose(header)}.{jose(claims)}".encode()
    sign = sign_es256 if alg == "ES256" else sign_rs256
    return f"{signing_input.decode()}.{b64u(sign(key, signing_input))}"


def self_signed(key, path: Path):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rampart-bench-jwt")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def main():
    out, issuer, audience, unique = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    out.mkdir(parents=True, exist_ok=True)
    es = ec.generate_private_key(ec.SECP256R1())
    rs = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = {"keys": []}
    for name, key in (("es256", es), ("rs256", rs)):
        pub = key.public_key()
        (out / f"{name}.pub.pem").write_bytes(
            pub.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        self_signed(key, out / f"{name}.crt.pem")
    n = es.public_key().public_numbers()
    jwks["keys"].append(
        {"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "bench-es256",
         "x": int_b64u(n.x, 32), "y": int_b64u(n.y, 32)}
    )
    n = rs.public_key().public_numbers()
    jwks["keys"].append(
        {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "bench-rs256",
         "n": int_b64u(n.n), "e": int_b64u(n.e)}
    )
    (out / "jwks.json").write_text(json.dumps(jwks))
    for k in jwks["keys"]:
        (out / f"jwks-{k['alg'].lower()}.json").write_text(json.dumps({"keys": [k]}))
    now = int(time.time())
    base = {"iss": issuer, "aud": audience, "sub": "bench-user", "iat": now - 60,
            "exp": now + 10 * 365 * 86400, "scope": "bench.read"}
    (out / "es256.jwt").write_text(token("ES256", "bench-es256", es, base) + "\n")
    (out / "rs256.jwt").write_text(token("RS256", "bench-rs256", rs, base) + "\n")
    expired = dict(base, iat=now - 7200, exp=now - 3600)
    (out / "es256-expired.jwt").write_text(token("ES256", "bench-es256", es, expired) + "\n")
    good = token("ES256", "bench-es256", es, base)
    forged = good[: -4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    (out / "es256-badsig.jwt").write_text(forged + "\n")
    with open(out / "es256-unique.txt", "w") as f:
        for i in range(unique):
            f.write(token("ES256", "bench-es256", es, dict(base, jti=f"bench-{i}")) + "\n")


if __name__ == "__main__":
    main()
