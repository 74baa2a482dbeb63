"""A stand-in for a registry with the OCI 1.1 referrers API: distribution 2.8 behind a small HTTP front.

No registry that has the referrers API installs here from the package registries (Debian's docker-registry is
distribution 2.8; zot, distribution 3 and Harbor are in none of them), so this front adds the two behaviours
of the spec a client can see, and passes every other request to the real registry unchanged:

- a manifest PUT whose body has a ``subject`` is answered with ``OCI-Subject: <subject digest>`` and the
  manifest is listed as a referrer of that digest ("Pushing Manifests with Subject":
  https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pushing-manifests-with-subject);
- ``GET /v2/<name>/referrers/<digest>`` answers 200 with an OCI index of those descriptors (``artifactType``
  from the manifest, else its config media type; its annotations), an empty index for an unknown digest, and
  honours ``?artifactType=`` with ``OCI-Filters-Applied: artifactType`` ("Listing Referrers":
  https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-referrers).

Only for an anonymous plain-HTTP registry (the ``registry`` / ``source`` fixtures). ``listings`` counts the
referrers requests answered.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from tests.harness.registry import RegistryServer

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_REFERRERS = re.compile(r"/v2/(?P<name>.+)/referrers/(?P<digest>[a-z0-9]+:[a-f0-9]+)")
_MANIFEST = re.compile(r"/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)")
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "server", "date"}


class ReferrersApi:
    def __init__(self, upstream: RegistryServer) -> None:
        assert upstream.auth is None and not upstream.tls, "the stand-in fronts an anonymous plain-HTTP registry"
        self.upstream = upstream
        self.listings = 0
        self._lock = threading.Lock()
        self._referrers: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self._session = requests.Session()
        self._session.trust_env = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def registry(self) -> RegistryServer:
        """The registry as seen through the stand-in."""
        return dataclasses.replace(
            self.upstream, host=self.host, url=f"http://{self.host}", process=None, proxy_of=self.upstream
        )

    def __enter__(self) -> ReferrersApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._session.close()

    def _record(self, name: str, body: bytes, digest: str, media_type: str) -> str | None:
        try:
            data = json.loads(body)
        except ValueError:
            return None
        subject = data.get("subject") if isinstance(data, dict) else None
        if not isinstance(subject, dict) or not isinstance(subject.get("digest"), str):
            return None
        config = data.get("config") if isinstance(data.get("config"), dict) else {}
        descriptor: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(body)}
        artifact_type = data.get("artifactType") or config.get("mediaType")
        if artifact_type:
            descriptor["artifactType"] = artifact_type
        if isinstance(data.get("annotations"), dict):
            descriptor["annotations"] = data["annotations"]
        with self._lock:
            self._referrers.setdefault((name, subject["digest"]), {})[digest] = descriptor
        return str(subject["digest"])

    def _listing(self, name: str, digest: str, query: str) -> tuple[bytes, dict[str, str]]:
        with self._lock:
            self.listings += 1
            entries = list(self._referrers.get((name, digest), {}).values())
        headers = {"Content-Type": OCI_INDEX}
        wanted = parse_qs(query).get("artifactType")
        if wanted:
            entries = [entry for entry in entries if entry.get("artifactType") in wanted]
            headers["OCI-Filters-Applied"] = "artifactType"
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
        return body, headers

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _forward(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                listing = _REFERRERS.fullmatch(parts.path)
                if listing and self.command == "GET":
                    data, headers = stand_in._listing(listing["name"], listing["digest"], parts.query)
                    self._answer(200, headers, data)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP | {"host"}}
                headers["Host"] = stand_in.host  # the registry's Location URLs then point back here
                response = stand_in._session.request(
                    self.command,
                    stand_in.upstream.url + self.path,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    stream=False,
                )
                out = {k: v for k, v in response.headers.items() if k.lower() not in _HOP}
                manifest = _MANIFEST.fullmatch(parts.path)
                if manifest and self.command == "PUT" and response.status_code == 201:
                    digest = "sha256:" + hashlib.sha256(body).hexdigest()
                    media_type = (self.headers.get("Content-Type") or "").split(";")[0]
                    subject = stand_in._record(manifest["name"], body, digest, media_type)
                    if subject is not None:
                        out["OCI-Subject"] = subject
                self._answer(response.status_code, out, response.content)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

        return Handler
