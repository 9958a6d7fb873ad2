#!/usr/bin/env python3
"""Build a single-platform OCI image archive from directories (stdlib only).

There is no Docker engine or registry here, so the local cluster's images are
assembled directly in the OCI image-layout format and imported into containerd
with ``ctr -n k8s.io images import``. Output is byte-for-byte reproducible
(sorted entries, fixed timestamps, root ownership unless told otherwise), so
importing the same image again is a no-op.

Example::

    oci.py --name localhost/initpipeline/httpd:1 --out httpd.tar \\
        --layer rootfs/ --entrypoint '["httpd","-f","-p","8080","-h","/www"]' \\
        --user 65532:65532 --expose 8080/tcp
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile
from pathlib import Path
from typing import Any

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
# Fixed timestamp (2024-01-01T00:00:00Z) keeps every build identical.
EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "1704067200"))
CREATED = "2024-01-01T00:00:00Z"


def _normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def layer_from_dir(root: Path, owners: dict[str, tuple[int, int]]) -> bytes:
    """An uncompressed layer tar of ``root``'s contents, deterministic."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = sorted(p for p in root.rglob("*"))
        for path in paths:
            rel = path.relative_to(root).as_posix()
            info = _normalize(tar.gettarinfo(str(path), arcname=rel))
            if rel in owners:
                info.uid, info.gid = owners[rel]
            if info.isreg():
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    return buf.getvalue()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def build(args: argparse.Namespace) -> None:
    owners: dict[str, tuple[int, int]] = {}
    for spec in args.chown:
        path, _, ids = spec.partition("=")
        uid, _, gid = ids.partition(":")
        owners[path.strip("/")] = (int(uid), int(gid or uid))

    blobs: dict[str, bytes] = {}
    layers = [layer_from_dir(Path(d), owners) for d in args.layer]
    for data in layers:
        blobs[_digest(data)] = data

    config: dict[str, Any] = {
        "created": CREATED,
        "architecture": args.arch,
        "os": "linux",
        "config": {
            "Env": args.env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        },
        "rootfs": {"type": "layers", "diff_ids": [_digest(d) for d in layers]},
        "history": [{"created": CREATED, "created_by": "hack/images/oci.py"} for _ in layers],
    }
    cfg = config["config"]
    if args.entrypoint:
        cfg["Entrypoint"] = json.loads(args.entrypoint)
    if args.cmd:
        cfg["Cmd"] = json.loads(args.cmd)
    if args.user:
        cfg["User"] = args.user
    if args.workdir:
        cfg["WorkingDir"] = args.workdir
    if args.expose:
        cfg["ExposedPorts"] = {p: {} for p in args.expose}
    config_bytes = _json(config)
    blobs[_digest(config_bytes)] = config_bytes

    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": _digest(config_bytes),
                   "size": len(config_bytes)},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": _digest(d), "size": len(d)}
                   for d in layers],
    }
    manifest_bytes = _json(manifest)
    blobs[_digest(manifest_bytes)] = manifest_bytes

    def entry(name: str) -> dict[str, Any]:
        tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
        return {
            "mediaType": MEDIA_MANIFEST,
            "digest": _digest(manifest_bytes),
            "size": len(manifest_bytes),
            "platform": {"architecture": args.arch, "os": "linux"},
            # containerd names the imported image after io.containerd.image.name.
            "annotations": {"io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": tag},
        }

    # One index entry per name: the same manifest imported under every name.
    index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX,
             "manifests": [entry(name) for name in args.name]}

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data: bytes, mode: int = 0o644) -> None:
            info = _normalize(tarfile.TarInfo(name))
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))

        for d in ("blobs", "blobs/sha256"):
            info = _normalize(tarfile.TarInfo(d))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for digest in sorted(blobs):
            add("blobs/sha256/" + digest.split(":", 1)[1], blobs[digest])
        add("oci-layout", _json({"imageLayoutVersion": "1.0.0"}))
        add("index.json", _json(index))
    tmp.replace(out)
    print(f"{' '.join(args.name)} {_digest(manifest_bytes)} -> {out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", action="append", required=True,
                    help="full image reference, e.g. docker.io/library/x:1 (repeatable)")
    ap.add_argument("--out", required=True, help="archive to write (.tar)")
    ap.add_argument("--layer", action="append", default=[], required=True,
                    help="directory whose contents become one layer (repeatable, bottom first)")
    ap.add_argument("--entrypoint", help="JSON list")
    ap.add_argument("--cmd", help="JSON list")
    ap.add_argument("--user", help="numeric uid[:gid]")
    ap.add_argument("--workdir")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE (repeatable)")
    ap.add_argument("--expose", action="append", default=[], help="e.g. 8080/tcp")
    ap.add_argument("--chown", action="append", default=[], help="PATH=UID[:GID] inside the layer")
    ap.add_argument("--arch", default={"x86_64": "amd64", "aarch64": "arm64"}.get(
        os.uname().machine, os.uname().machine))
    build(ap.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
