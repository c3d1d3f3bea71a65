"""The local S3 server: moto, evaluating IAM policies on every request, and the lake's grants.

moto authenticates and authorizes requests against its IAM users' policies once
``INITIAL_NO_AUTH_ACTION_COUNT`` requests have passed; this launcher sets it to 0, so from the
first request on an unsigned request, an unknown key or a wrong secret is refused, and a known
key may do only what its user's policies allow.

moto's IAM API only draws random access keys. So the launcher registers the lake's users
in-process, before it serves, with the keys the settings name: the settings stay the one source
of configuration, as in production, where MinIO's users are made from the same variables
(docker-compose.yml, ``minio-init``). The grants go through the IAM API as the administrator
(``grant_lake``): for the lake bucket when the stack starts, and for a bucket of a test's own;
the policies are production's own documents in deploy/, the bucket's name substituted.

    python -m ops.stack.s3_server     # run by `reviews stack up`, configured by the environment

moto keeps the lake in this process's memory, so a restart empties it. An outage that keeps the
lake is a signal instead: SIGUSR1 closes the listening socket (connections are refused, as from a
server that is down), SIGUSR2 listens again (the chaos suite, bench/chaos.py).
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import get_args

from shared.clients import make_iam, make_s3
from shared.settings import S3Identity, Settings, get_settings

USERS: dict[S3Identity, str] = {identity: f"lake-{identity}" for identity in get_args(S3Identity)}
# Those granted deploy/<identity>-s3-policy.json: every identity but the administrator.
GRANTED: tuple[S3Identity, ...] = tuple(identity for identity in USERS if identity != "admin")

# The administrator creates buckets and grants the others; no project process runs as it.
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "Administer", "Effect": "Allow", "Action": ["s3:*", "iam:*"], "Resource": "*"}],
}


DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DEPLOYED_BUCKET = "review-lake"  # the bucket deploy/'s policies name


def lake_policy(identity: S3Identity, bucket: str) -> dict:
    """The policy production grants ``identity`` (deploy/<identity>-s3-policy.json), for ``bucket``.

    A stage's reads the zones it reads and writes the zones it writes, nothing else; the operator's every zone
    (erasure rewrites them all). The API's reads the serving files and the pointer only: never the curated Parquet,
    which holds buyer pseudonyms. Each ListBucket, limited to the prefixes the identity reads, makes a missing key
    answer 404 rather than 403 (AWS, MinIO), so a reader tells a missing object from a refusal. The identities that
    delete (publish: pruning curated versions and the daily expiry; the operator) also have s3:DeleteObject on the
    bucket itself: moto checks a multi-object delete so, then the keys against the bucket's policy only, never
    the user's (AWS and MinIO check each key, and ignore an object action on a bucket).
    """
    text = (DEPLOY / f"{identity}-s3-policy.json").read_text()
    return json.loads(text.replace(f"arn:aws:s3:::{DEPLOYED_BUCKET}", f"arn:aws:s3:::{bucket}"))


def grant_lake(settings: Settings) -> None:
    """As the administrator: create ``settings.s3_bucket`` if needed, and grant each stage, the operator and
    the API their access to it (a policy per bucket, rewritten each time: idempotent)."""
    bucket = settings.s3_bucket
    s3 = make_s3(settings, "admin")
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    iam = make_iam(settings)
    for identity in GRANTED:
        iam.put_user_policy(
            UserName=USERS[identity],
            PolicyName=f"lake-{bucket}",
            PolicyDocument=json.dumps(lake_policy(identity, bucket)),
        )


def serve(settings: Settings) -> None:
    """Register the lake's users with the settings' keys, turn enforcement on, serve until SIGTERM."""
    import moto.settings
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.iam.models import iam_backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import BaseWSGIServer, make_server

    iam = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for identity, user_name in USERS.items():
        key_id, secret = settings.s3_credentials(identity)
        user = iam.create_user(settings.s3_region, user_name)
        key = user.create_access_key(prefix="AKIA")
        # The one step moto's API does not offer: a key of our choosing instead of a random one.
        key.access_key_id, key.secret_access_key = key_id, secret
        iam.access_keys[key_id] = key
    iam.put_user_policy(USERS["admin"], "administer", json.dumps(ADMIN_POLICY))
    moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    port = settings.s3_endpoint_port
    os.environ["MOTO_PORT"] = str(port)  # as moto's own server does: moto builds its URLs with it
    app = DomainDispatcherApplication(create_backend_app)
    listening: list[BaseWSGIServer] = []

    def listen(*_) -> None:
        if not listening:
            server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            listening.append(server)

    def refuse(*_) -> None:
        while listening:
            server = listening.pop()
            server.shutdown()
            server.server_close()

    stop = threading.Event()
    signal.signal(signal.SIGUSR1, refuse)
    signal.signal(signal.SIGUSR2, listen)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    listen()
    while not stop.wait(1.0):  # a timed wait: the signal handlers run in this thread between waits
        pass
    refuse()


if __name__ == "__main__":
    serve(get_settings())
