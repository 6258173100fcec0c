"""Makes the SSO identify tests' keys and tokens with PyJWT (and the
`cryptography` package), independently of the Rust verifier. Prints JSON:
{"keys": {...}, "tokens": {case: token}}. Usage: jwt_tokens.py AUDIENCE ISSUER"""
import json
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

audience, issuer = sys.argv[1], sys.argv[2]
now = int(time.time())
hs_secret = "an-hs256-secret-of-more-than-32-bytes-0123456789"
rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ec_key = ec.generate_private_key(ec.SECP256R1())


def public_pem(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def claims(**over):
    base = {"sub": "user-42", "email": "Sso.User@Example.com", "first_name": "Sam", "last_name": "Sso",
            "iss": issuer, "aud": audience, "iat": now, "exp": now + 300}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


rsa_pem = public_pem(rsa_key)
tokens = {
    "hs256": jwt.encode(claims(), hs_secret, algorithm="HS256"),
    "rs256": jwt.encode(claims(), rsa_key, algorithm="RS256"),
    "es256": jwt.encode(claims(), ec_key, algorithm="ES256"),
    # Refused, each for one named reason.
    "expired": jwt.encode(claims(exp=now - 3600), rsa_key, algorithm="RS256"),
    "within_leeway": jwt.encode(claims(exp=now - 30), rsa_key, algorithm="RS256"),
    "not_yet_valid": jwt.encode(claims(nbf=now + 3600), rsa_key, algorithm="RS256"),
    "wrong_key": jwt.encode(claims(), rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256"),
    "alg_none": jwt.encode(claims(), None, algorithm="none"),
    "wrong_audience": jwt.encode(claims(aud="someone-else"), rsa_key, algorithm="RS256"),
    "wrong_issuer": jwt.encode(claims(iss="https://evil.example"), rsa_key, algorithm="RS256"),
    "no_exp": jwt.encode(claims(exp=None), rsa_key, algorithm="RS256"),
    "no_aud": jwt.encode(claims(aud=None), rsa_key, algorithm="RS256"),
    "no_iss": jwt.encode(claims(iss=None), rsa_key, algorithm="RS256"),
    "aud_number": jwt.encode(claims(aud=5), rsa_key, algorithm="RS256"),
    "long_lived": jwt.encode(claims(exp=now + 3 * 86400), rsa_key, algorithm="RS256"),
    # Another person claiming the first one's email: never linked to them.
    "other_sub_same_email": jwt.encode(claims(sub="intruder-1"), rsa_key, algorithm="RS256"),
    "unverified_email": jwt.encode(claims(sub="user-77", email="unchecked@example.com", email_verified=False),
                                   rsa_key, algorithm="RS256"),
}
# The classic confusion attack: HS256 "signed" with the RS256 site's public
# key as the secret. PyJWT refuses to use a PEM as an HMAC secret, so the
# token is made by hand, exactly as an attacker would.
import base64, hashlib, hmac

def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
payload = b64(json.dumps(claims()).encode())
signature = hmac.new(rsa_pem.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
tokens["hs256_with_public_key"] = f"{header}.{payload}.{b64(signature)}"

json.dump({"keys": {"hs256_secret": hs_secret, "rs256_public": rsa_pem, "es256_public": public_pem(ec_key)},
           "tokens": tokens}, sys.stdout)
