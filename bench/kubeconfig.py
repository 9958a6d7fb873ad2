"""The admin kubeconfig's server and TLS context (client certificate), with nothing but the
standard library and yaml: scenario (g)'s bare request loops load it without any client."""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from pathlib import Path

import yaml

DEFAULT_KUBECONFIG = "/tmp/initpipeline-cluster/kubeconfig"


def kubeconfig_path() -> str:
    return os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG


def server_and_tls(path: str | None = None) -> tuple[str, ssl.SSLContext]:
    """The current context's server URL and a TLS context with its CA and client certificate."""
    config = yaml.safe_load(Path(path or kubeconfig_path()).read_text())
    current = config["current-context"]
    context = next(c["context"] for c in config["contexts"] if c["name"] == current)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    ctx = ssl.create_default_context(
        cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
    )
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp) / "c.pem", Path(tmp) / "k.pem"
        cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
        key.write_bytes(base64.b64decode(user["client-key-data"]))
        ctx.load_cert_chain(cert, key)
    return cluster["server"], ctx
