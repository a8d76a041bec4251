"""A minimal Hugging Face Hub on loopback, enough for `HfApi.create_repo` + `upload_folder` (huggingface_hub 2.4).

Routes (everything else answers 404 and is listed in `FakeHub.unhandled`):

    POST /api/repos/create                                  create a repo (409 if it exists)
    POST /api/validate-yaml                                 README.md front matter must parse as a YAML mapping
    GET  /api/{type}s/{ns}/{name}[/revision/{rev}]          repo info (sha, siblings); used for no-op commits
    POST /api/{type}s/{ns}/{name}/preupload/{rev}           upload mode per file: "regular", or "lfs" if asked
    POST /api/{type}s/{ns}/{name}/commit/{rev}              NDJSON commit: file (base64) / lfsFile / deleted*
    POST /{prefix}{ns}/{name}.git/info/lfs/objects/batch    LFS batch, "basic" transfer only
    PUT  /_fake_lfs/{sha256}                                the LFS "basic" upload target

Only the `main` revision exists. Xet is never offered: `fake_hub()` sets `HF_HUB_DISABLE_XET` for its
duration, so `upload_folder` takes the single-commit path (preupload -> [LFS] -> commit). Every request is
recorded (method, path, query, lowercased headers, body) in `FakeHub.requests`.

`fake_hub()` also lifts offline mode for huggingface_hub (the suite runs with HF_HUB_OFFLINE=1; the value is
read into `huggingface_hub.constants` at import) and installs an HTTP client that refuses any host but
127.0.0.1 and ignores proxy variables, so nothing can leave the machine; all of it is restored on exit.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import hashlib
import json
import os
import posixpath
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

HOST = "127.0.0.1"
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lowercased names
    body: bytes


@dataclass
class Commit:
    oid: str
    summary: str
    description: str
    operations: list[dict]  # the NDJSON lines after the header, with file contents dropped


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    lfs: set[str] = field(default_factory=set)  # paths stored through LFS
    commits: list[Commit] = field(default_factory=list)

    @property
    def head(self) -> str:
        return self.commits[-1].oid if self.commits else "0" * 40


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """State of the fake Hub; `endpoint` is set once the server listens."""

    def __init__(self, *, lfs_patterns: tuple[str, ...] = (), token: str | None = None):
        self.lfs_patterns = lfs_patterns  # paths matching one of these go through LFS, the rest are "regular"
        self.token = token  # if set, writes need exactly this bearer token
        self.endpoint = ""
        self.requests: list[RecordedRequest] = []
        self.unhandled: list[str] = []
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ test-facing helpers
    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def files(self, repo_id: str, repo_type: str = "dataset") -> dict[str, bytes]:
        return dict(self.repo(repo_id, repo_type).files)

    def materialize(self, repo_id: str, folder, repo_type: str = "dataset"):
        """Write the repo's files under `folder` (a checkout of `main`); returns the folder."""
        for path, data in self.files(repo_id, repo_type).items():
            target = os.path.join(folder, *path.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(data)
        return folder

    # ------------------------------------------------------------------ request dispatch
    def handle(
        self, method: str, path: str, query: dict, headers: dict, body: bytes
    ) -> tuple[int, dict, bytes]:
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query, headers, body))
        try:
            with self._lock:
                status, payload = self._route(method, unquote(path), query, headers, body)
            return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()
        except HubError as e:
            extra = {"X-Error-Message": e.message}
            if e.code:
                extra["X-Error-Code"] = e.code
            return (
                e.status,
                {"Content-Type": "application/json", **extra},
                json.dumps({"error": e.message, **e.extra}).encode(),
            )

    def _route(self, method, path, query, headers, body):
        if method == "POST" and path == "/api/repos/create":
            return self._create_repo(headers, _json(body))
        if method == "POST" and path == "/api/validate-yaml":
            return self._validate_yaml(_json(body))
        if method == "PUT" and (m := re.fullmatch(r"/_fake_lfs/([0-9a-f]{64})", path)):
            return self._lfs_put(m[1], body)
        if method == "POST" and (
            m := re.fullmatch(r"/(?:(datasets|spaces)/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch", path)
        ):
            repo = self._get_repo(REPO_TYPES[m[1] or "models"], m[2], headers, write=True)
            return self._lfs_batch(repo, _json(body))
        m = re.fullmatch(
            r"/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(preupload|commit|revision)/(.+))?", path
        )
        if m:
            repo_type, repo_id, action, revision = REPO_TYPES[m[1]], m[2], m[3], m[4] or "main"
            if revision != "main":
                raise HubError(404, f"Revision Not Found: {revision}", "RevisionNotFound")
            if method == "GET" and action in (None, "revision"):
                return 200, self._repo_info(self._get_repo(repo_type, repo_id, headers, write=False))
            if method == "POST" and action == "preupload":
                return self._preupload(self._get_repo(repo_type, repo_id, headers, write=True), _json(body))
            if method == "POST" and action == "commit":
                return self._commit(self._get_repo(repo_type, repo_id, headers, write=True), body)
        self.unhandled.append(f"{method} {path}")
        raise HubError(404, f"fake hub: no route for {method} {path}")

    # ------------------------------------------------------------------ auth and repos
    def _bearer(self, headers: dict) -> str | None:
        auth = headers.get("authorization", "")
        return auth[len("Bearer ") :] if auth.startswith("Bearer ") else None

    def _check_write(self, headers: dict) -> None:
        token = self._bearer(headers)
        if token is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        if self.token is not None and token != self.token:
            raise HubError(401, "Invalid credentials in Authorization header")

    def _get_repo(self, repo_type: str, repo_id: str, headers: dict, *, write: bool) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        authed = self._bearer(headers) is not None and (
            self.token is None or self._bearer(headers) == self.token
        )
        if repo is None or (repo.private and not authed):
            raise HubError(404, f"Repository Not Found for url: {repo_type}s/{repo_id}", "RepoNotFound")
        if write:
            self._check_write(headers)
        return repo

    def _url(self, repo: Repo) -> str:
        return f"{self.endpoint}/{URL_PREFIXES[repo.repo_type]}{repo.repo_id}"

    def _create_repo(self, headers, payload):
        self._check_write(headers)
        name, org = payload.get("name"), payload.get("organization")
        repo_type = payload.get("type") or "model"
        if not name or not org or repo_type not in URL_PREFIXES:
            raise HubError(400, f"bad create payload: {payload}")
        key = (repo_type, f"{org}/{name}")
        if key in self.repos:
            # huggingface_hub reads "url" from this answer too when exist_ok=True
            raise HubError(409, f"You already created this {repo_type} repo", url=self._url(self.repos[key]))
        repo = self.repos[key] = Repo(key[1], repo_type, private=payload.get("visibility") == "private")
        return 200, {"url": self._url(repo), "name": key[1], "id": key[1]}

    def _repo_info(self, repo: Repo) -> dict:
        siblings = [
            {"rfilename": p, "size": len(d), "blobId": git_blob_oid(d)} for p, d in sorted(repo.files.items())
        ]
        return {"id": repo.repo_id, "sha": repo.head, "private": repo.private, "siblings": siblings}

    # ------------------------------------------------------------------ upload
    def _validate_yaml(self, payload):
        content = payload.get("content", "")
        errors = []
        if content.startswith("---"):
            end = content.find("\n---", 3)
            if end == -1:
                errors.append({"message": "YAML front matter is not closed by '---'"})
            else:
                try:
                    meta = yaml.safe_load(content[3:end])
                    if meta is not None and not isinstance(meta, dict):
                        errors.append({"message": "YAML front matter is not a mapping"})
                except yaml.YAMLError as e:
                    errors.append({"message": f"YAML front matter does not parse: {e}"})
        if errors:
            raise HubError(400, "; ".join(e["message"] for e in errors))
        return 200, {"errors": [], "warnings": []}

    def _mode(self, path: str) -> str:
        return "lfs" if any(fnmatch.fnmatch(path, pat) for pat in self.lfs_patterns) else "regular"

    def _preupload(self, repo: Repo, payload):
        answers = []
        for item in payload["files"]:
            path = _check_path(item["path"])
            mode = self._mode(path)
            old = repo.files.get(path)
            oid = None
            if old is not None:
                oid = hashlib.sha256(old).hexdigest() if path in repo.lfs else git_blob_oid(old)
            answers.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return 200, {"files": answers, "commitOid": repo.head}

    def _lfs_batch(self, repo: Repo, payload):
        if payload.get("operation") != "upload" or "basic" not in payload.get("transfers", ["basic"]):
            raise HubError(400, f"fake hub: only basic LFS uploads, got {payload}")
        objects = []
        for obj in payload["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.lfs_blobs:
                entry["actions"] = {"upload": {"href": f"{self.endpoint}/_fake_lfs/{obj['oid']}"}}
            objects.append(entry)
        return 200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}

    def _lfs_put(self, oid: str, body: bytes):
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, "LFS object does not match its sha256")
        self.lfs_blobs[oid] = body
        return 200, {}

    def _commit(self, repo: Repo, body: bytes):
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "commit payload must start with a header line")
        header = lines[0]["value"]
        if header.get("parentCommit") not in (None, repo.head):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files, lfs = dict(repo.files), set(repo.lfs)
        recorded = []
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            path = _check_path(value["path"].rstrip("/"))
            if key == "file":
                if value.get("encoding") == "base64":
                    data = base64.b64decode(value["content"], validate=True)
                else:
                    data = value["content"].encode()
                files[path] = data
                lfs.discard(path)
                recorded.append({"key": key, "path": path, "size": len(data)})
            elif key == "lfsFile":
                blob = self.lfs_blobs.get(value["oid"])
                if blob is None or value.get("algo", "sha256") != "sha256":
                    raise HubError(400, f"{path}: LFS object {value['oid']} was never uploaded")
                files[path] = blob
                lfs.add(path)
                recorded.append({"key": key, "path": path, "oid": value["oid"]})
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    raise HubError(404, f"{path}: no such file", "EntryNotFound")
                lfs.discard(path)
                recorded.append({"key": key, "path": path})
            elif key == "deletedFolder":
                gone = [p for p in files if p.startswith(path + "/")]
                if not gone:
                    raise HubError(404, f"{path}: no such folder", "EntryNotFound")
                for p in gone:
                    files.pop(p)
                    lfs.discard(p)
                recorded.append({"key": key, "path": path})
            else:
                raise HubError(400, f"fake hub: unsupported commit operation {key!r}")
        digest = hashlib.sha1(repo.head.encode())
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + git_blob_oid(files[path]).encode())
        digest.update(json.dumps(header, sort_keys=True).encode())
        oid = digest.hexdigest()
        repo.files, repo.lfs = files, lfs
        repo.commits.append(Commit(oid, header.get("summary", ""), header.get("description", ""), recorded))
        return 200, {
            "success": True,
            "commitOid": oid,
            "commitUrl": f"{self._url(repo)}/commit/{oid}",
            "hookOutput": "",
            "pullRequestUrl": None,
        }


def _json(body: bytes):
    try:
        return json.loads(body or b"{}")
    except json.JSONDecodeError as e:
        raise HubError(400, f"body is not JSON: {e}") from e


def _check_path(path: str) -> str:
    norm = posixpath.normpath(path)
    if not path or path.startswith("/") or norm != path or norm.startswith(".."):
        raise HubError(400, f"invalid path in repo: {path!r}")
    return path


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects
    hub: FakeHub  # set on a per-server subclass

    def _serve(self) -> None:
        url = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, out_headers, payload = self.hub.handle(
            self.command, url.path, parse_qs(url.query), headers, self._read_body(headers)
        )
        self.send_response(status)
        for k, v in out_headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _read_body(self, headers: dict) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(headers.get("content-length", 0) or 0))

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

    def log_message(self, format, *args):  # noqa: A002 - keep pytest output quiet
        pass


def _loopback_only(request) -> None:
    if request.url.host != HOST:
        raise RuntimeError(f"fake_hub: refusing a request off loopback: {request.url}")


@contextlib.contextmanager
def fake_hub(*, lfs_patterns: tuple[str, ...] = (), token: str | None = None):
    """Run a FakeHub on 127.0.0.1 (free port); huggingface_hub is online, Xet-less and loopback-only inside."""
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    hub = FakeHub(lfs_patterns=lfs_patterns, token=token)
    handler = type("FakeHubHandler", (_Handler,), {"hub": hub})
    server = ThreadingHTTPServer((HOST, 0), handler)
    server.daemon_threads = True
    hub.endpoint = f"http://{HOST}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="fake-hub", daemon=True)
    thread.start()

    def client_factory():
        return httpx2.Client(
            event_hooks={"request": [_loopback_only, _http.hf_request_event_hook]},
            follow_redirects=True,
            timeout=30,
            trust_env=False,  # no proxy variables: loopback stays loopback
        )

    saved_constants = {name: getattr(constants, name) for name in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_XET")}
    saved_env = {name: os.environ.get(name) for name in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_XET")}
    saved_factory = _http._GLOBAL_CLIENT_FACTORY
    try:
        constants.HF_HUB_OFFLINE = False
        constants.HF_HUB_DISABLE_XET = True
        os.environ["HF_HUB_OFFLINE"] = "0"
        os.environ["HF_HUB_DISABLE_XET"] = "1"
        _http.set_client_factory(client_factory)
        yield hub
    finally:
        _http.set_client_factory(saved_factory)
        for name, value in saved_constants.items():
            setattr(constants, name, value)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
