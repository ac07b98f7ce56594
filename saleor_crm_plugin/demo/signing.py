"""A throwaway signing key for the demo and benchmarks, playing the part of a Saleor instance.

Signatures are made exactly as Saleor makes them (RS256, detached payload, ``b64: false``,
``crit: ["b64"]``), so the App's real verification path checks them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


@dataclass
class DemoSigner:
    private_key: Any
    kid: str = "demo-saleor-key"

    @classmethod
    def generate(cls) -> DemoSigner:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @property
    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256", "key_ops": ["verify"]})
        return {"keys": [jwk]}

    def sign(self, body: bytes) -> str:
        return jwt.api_jws.PyJWS().encode(
            body,
            self.private_key,
            algorithm="RS256",
            headers={"kid": self.kid, "b64": False, "crit": ["b64"]},
            is_payload_detached=True,
        )
