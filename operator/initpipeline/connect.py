"""From a kubeconfig (or the Pod's ServiceAccount) to HTTP clients for the API server.

Only lightkube's public configuration loading (`KubeConfig`, `SingleConfig`) is used: the TLS
context and the credentials are built here, from the documented kubeconfig fields, so that no
private part of lightkube (its `client_adapter`) can change under us. Two clients share the
credentials: one for requests, with a bounded pool, and one for streaming watches, whose
connections are held open for minutes and must never take the requests' connections.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import tempfile
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx2 as httpx
from lightkube import ConfigError, KubeConfig, SingleConfig

# Requests (creates, patches, reads of logs ...) share this many connections.
REQUEST_CONNECTIONS = 50
REQUEST_TIMEOUT = httpx.Timeout(30.0)
# The files holding certificate and key data from the kubeconfig, kept for the process' life.
_KEPT: list[IO[bytes]] = []


@dataclass(frozen=True)
class Clients:
    requests: httpx.AsyncClient
    watches: httpx.AsyncClient

    async def aclose(self) -> None:
        await self.requests.aclose()
        if self.watches is not self.requests:
            await self.watches.aclose()


def load() -> SingleConfig:
    """In-cluster service account, else KUBECONFIG, else ~/.kube/config."""
    try:
        config = KubeConfig.from_env().get()
    except ConfigError as error:
        raise ConfigurationError(str(error)) from None
    if config is None:
        raise ConfigurationError("no current context in the kubeconfig")
    return config


class ConfigurationError(Exception):
    """The kubeconfig cannot be used."""


def clients(config: SingleConfig) -> Clients:
    verify = ssl_context(config)
    auth = credentials(config)
    base = config.cluster.server

    def client(limits: httpx.Limits) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=base, verify=verify, auth=auth, timeout=REQUEST_TIMEOUT, limits=limits
        )

    return Clients(
        requests=client(httpx.Limits(max_connections=REQUEST_CONNECTIONS)),
        # One connection per watch, as many as there are watches (a few per kind).
        watches=client(httpx.Limits(max_connections=None, max_keepalive_connections=0)),
    )


def _data_file(data: str) -> str:
    """A private file holding base64 `data` (ssl reads certificates and keys from files)."""
    handle = tempfile.NamedTemporaryFile(prefix="initpipeline-")  # noqa: SIM115  (kept open)
    os.chmod(handle.name, 0o600)
    handle.write(base64.b64decode(data))
    handle.flush()
    _KEPT.append(handle)
    return handle.name


def ssl_context(config: SingleConfig) -> ssl.SSLContext:
    cluster, user = config.cluster, config.user
    if cluster.certificate_auth_data:
        context = ssl.create_default_context(
            cadata=base64.b64decode(cluster.certificate_auth_data).decode()
        )
    elif cluster.certificate_auth:
        context = ssl.create_default_context(cafile=str(config.abs_file(cluster.certificate_auth)))
    else:
        context = ssl.create_default_context()
        if cluster.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    if user is not None and (user.client_cert or user.client_cert_data):
        cert = (
            _data_file(user.client_cert_data)
            if user.client_cert_data
            else str(config.abs_file(user.client_cert or ""))
        )
        key = (
            _data_file(user.client_key_data)
            if user.client_key_data
            else str(config.abs_file(user.client_key or ""))
        )
        context.load_cert_chain(cert, key)
    return context


def credentials(config: SingleConfig) -> httpx.Auth | None:
    user = config.user
    if user is None:
        return None
    if user.token_file:
        return TokenFileAuth(str(config.abs_file(user.token_file)))
    if user.token:
        return TokenAuth(user.token)
    if user.exec:
        command = [user.exec.command, *(user.exec.args or [])]
        env = {**os.environ, **{var.name: var.value for var in user.exec.env or []}}
        return ExecAuth(command, env)
    if user.username and user.password:
        return httpx.BasicAuth(user.username, user.password)
    if user.auth_provider:
        raise ConfigurationError("kubeconfig auth-provider is not supported: use exec")
    return None


class TokenAuth(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token.strip()}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


class TokenFileAuth(httpx.Auth):
    """A ServiceAccount token the kubelet rotates: read again after a 401."""

    def __init__(self, path: str) -> None:
        self._path = Path(path)
        self._header: str | None = None

    def _read(self) -> str:
        return f"Bearer {self._path.read_text().strip()}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._header is None:
            self._header = self._read()
        request.headers["Authorization"] = self._header
        response = yield request
        if response.status_code == 401:
            self._header = self._read()
            request.headers["Authorization"] = self._header
            yield request


class ExecAuth(httpx.Auth):
    """A credential plugin (client.authentication.k8s.io): run it, again after a 401."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self._command, self._env = command, env
        self._header: str | None = None

    async def _run(self) -> str:
        process = await asyncio.create_subprocess_exec(
            *self._command,
            env=self._env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        if process.returncode:
            raise ConfigurationError(f"{self._command[0]} exited {process.returncode}: {err!r}")
        answer: dict[str, Any] = json.loads(out)
        return f"Bearer {answer['status']['token']}"

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self._header is None:
            self._header = await self._run()
        request.headers["Authorization"] = self._header
        response = yield request
        if response.status_code == 401:
            self._header = await self._run()
            request.headers["Authorization"] = self._header
            yield request
