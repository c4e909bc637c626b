"""A real local HTTP server answering the few Hugging Face Hub API calls an upload makes.

huggingface_hub reads HF_ENDPOINT, so a subprocess started with HF_ENDPOINT=fake.url talks to this server:

    with HubFake() as fake:
        fake.url          # "http://127.0.0.1:PORT"
        fake.calls        # [(method, path, headers, body)] in arrival order; header names lowercased;
                          # body: parsed JSON, a list of ndjson lines, or bytes
        fake.repos        # repo id -> {"private": bool, "files": {path: bytes}} as committed
        fake.collections  # slug -> [item ids]

Routes (as huggingface_hub 1.x calls them): POST /api/repos/create, POST /api/validate-yaml,
POST /api/{type}s/{ns}/{name}/preupload/{rev}, POST /api/{type}s/{ns}/{name}/commit/{rev} (ndjson: files and
deletedFile),
POST /api/collections/{slug}/items; and the downloads snapshot_download makes: GET /api/{type}s/{repo}/revision|tree/
{rev} and GET/HEAD /{type}s/{repo}/resolve/{rev}/{path} (a private repo needs the token). Preupload answers "regular" for every file, so the commit carries
the files' bytes (base64) and no LFS or Xet transfer is needed. A request whose bearer token is not in
`tokens` gets 401, as the Hub answers a bad token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPO_PATH = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)/(preupload|commit)/([^/?]+)")
INFO_PATH = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)/(revision|tree)/([^/]+)$")
RESOLVE_PATH = re.compile(r"^/(datasets/|spaces/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
COLLECTION_PATH = re.compile(r"^/api/collections/([^/]+/[^/]+)/items$")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "HubServer"

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        self._record(b"")
        self._read(send_body=True)

    def do_HEAD(self):
        self._record(b"")
        self._read(send_body=False)

    def _read(self, send_body: bool):
        """Downloads: repo info and file list (GET /api/{type}s/{repo}/revision|tree/{rev}), files (/resolve/)."""
        path = self.path.split("?")[0]
        info, resolve = INFO_PATH.match(path), RESOLVE_PATH.match(path)
        repo_id = (info or resolve).group(2) if (info or resolve) else None
        repo = self.server.repos.get(repo_id)
        if repo is None or (repo["private"] and not self._authorized()):
            return self._json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        commit = "1" * 40
        if info and info.group(3) == "tree":
            return self._json(200, [{"type": "file", "path": name, "size": len(data),
                                     "oid": hashlib.sha1(data).hexdigest()} for name, data in sorted(repo["files"].items())])
        if info:
            siblings = [{"rfilename": name, "size": len(data)} for name, data in sorted(repo["files"].items())]
            return self._json(200, {"id": repo_id, "sha": commit, "private": repo["private"], "siblings": siblings})
        data = repo["files"].get(resolve.group(4))
        if data is None:
            return self._json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("X-Repo-Commit", commit)
        self.end_headers()
        if send_body:
            self.wfile.write(data)

    def _authorized(self) -> bool:
        return self.headers.get("Authorization") in {f"Bearer {t}" for t in self.server.tokens}

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = self._record(raw)
        if not self._authorized():
            return self._json(401, {"error": "Invalid credentials in Authorization header"})
        path = self.path.split("?")[0]
        if path == "/api/repos/create":
            return self._create(body)
        if path == "/api/validate-yaml":
            return self._json(200, {"errors": [], "warnings": []})
        match = REPO_PATH.match(path)
        if match:
            kind, repo_id, action, revision = match.groups()
            if repo_id not in self.server.repos:
                return self._json(404, {"error": f"Repository Not Found for url: {self.path}"},
                                  {"X-Error-Code": "RepoNotFound"})
            if action == "preupload":
                files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                         for f in body["files"]]
                return self._json(200, {"files": files, "commitOid": "0" * 40})
            return self._commit(kind, repo_id, body)
        match = COLLECTION_PATH.match(path)
        if match:
            return self._collection(match.group(1), body)
        self._json(404, {"error": f"the fake Hub has no route POST {self.path}"})

    def _create(self, body):
        repo_id = f"{body.get('organization')}/{body['name']}" if body.get("organization") else body["name"]
        kind = body.get("type") or "model"
        prefix = "" if kind == "model" else f"{kind}s/"
        url = f"{self.server.url}/{prefix}{repo_id}"
        if repo_id in self.server.repos:  # the Hub names the existing repository, which create_repo(exist_ok) returns
            return self._json(409, {"error": "You already created this dataset repo", "url": url})
        self.server.repos[repo_id] = {"type": kind, "private": body.get("visibility") == "private"
                                      or body.get("private") is True, "files": {}}
        self._json(200, {"url": url, "name": repo_id})

    def _commit(self, kind, repo_id, lines):
        header, files = None, {}
        for line in lines:
            if line["key"] == "header":
                header = line["value"]
            elif line["key"] == "file":
                value = line["value"]
                files[value["path"]] = base64.b64decode(value["content"])
            elif line["key"] == "deletedFile":
                self.server.repos[repo_id]["files"].pop(line["value"]["path"], None)
        self.server.repos[repo_id]["files"].update(files)
        self.server.repos[repo_id].setdefault("commits", []).append(header)
        prefix = "" if kind == "models" else f"{kind}/"
        self._json(200, {"commitUrl": f"{self.server.url}/{prefix}{repo_id}/commit/{'1' * 40}",
                         "commitOid": "1" * 40})

    def _collection(self, slug, body):
        items = self.server.collections.setdefault(slug, [])
        items.append(body["item"]["id"])
        owner, title = slug.split("/")
        self._json(200, {
            "slug": slug, "title": title, "owner": {"name": owner}, "lastUpdated": "2025-01-01T00:00:00.000Z",
            "position": 0, "private": False, "theme": "default", "upvotes": 0, "description": None,
            "items": [{"_id": f"item{i}", "id": item, "type": "dataset", "position": i}
                      for i, item in enumerate(items)],
        })

    def _record(self, raw: bytes):
        content_type = self.headers.get("Content-Type", "")
        if "ndjson" in content_type:
            body = [json.loads(line) for line in raw.splitlines() if line.strip()]
        elif raw and "json" in content_type:
            body = json.loads(raw)
        else:
            body = raw
        with self.server.lock:
            headers = {k.lower(): v for k, v in self.headers.items()}
            self.server.calls.append((self.command, self.path, headers, body))
        return body

    def _json(self, status: int, data, headers: dict | None = None):
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)


class HubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tokens: set[str]):
        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.tokens = tokens
        self.lock = threading.Lock()
        self.calls: list[tuple] = []
        self.repos: dict[str, dict] = {}
        self.collections: dict[str, list[str]] = {}


class HubFake:
    def __init__(self, tokens=("hf_fake_token",)):
        self.server = HubServer(set(tokens))
        self.url = self.server.url
        self.calls, self.repos, self.collections = self.server.calls, self.server.repos, self.server.collections

    def __enter__(self) -> "HubFake":
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def paths(self) -> list[str]:
        return [f"{method} {path.split('?')[0]}" for method, path, _, _ in self.calls]
