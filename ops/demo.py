"""``make demo``: the local stack up, the source loaded, one pipeline run published.

Leaves the stack running; ``reviews stack down`` stops it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from shared.logs import configure_logging
from shared.settings import get_settings

MISSING_DATA = """\
No review data. Give a folder or file in one of the public Amazon review formats:

    make demo DATA=/path/to/reviews

Public data sets (UCSD McAuley lab; review files and meta_* product files, .json or .json.gz):
  - Amazon Reviews'23 (2023):       https://amazon-reviews-2023.github.io/
  - Amazon Review Data (2018):      https://nijianmo.github.io/amazon/index.html   (e.g. *_5.json.gz 5-core files)
  - Amazon product data (2014):     https://jmcauley.ucsd.edu/data/amazon/          (e.g. reviews_*_5.json.gz)
Without DATA, the demo looks for ../shared/data beside the project."""


def _step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__)
    parser.add_argument("--data", default="", help="a file or folder of public Amazon review files")
    parser.add_argument("--limit", type=int, default=None, help="extract at most this many reviews")
    args = parser.parse_args(argv)
    if not args.data or not Path(args.data).exists():
        print(MISSING_DATA if not args.data else f"{args.data} does not exist.\n\n{MISSING_DATA}", file=sys.stderr)
        return 2

    # The demo runs the local stack on its published placeholder secrets, whatever the shell says.
    os.environ["ENVIRONMENT"] = "local"
    settings = get_settings()
    configure_logging(settings, quiet=True)
    from ops.runs_cli import format_report, watch
    from ops.source.loader import load_paths
    from ops.source.schema import create_source
    from ops.stack.manager import Stack
    from shared import clients
    from shared.flow import start_run
    from shared.history.runs import RunAlreadyActive
    from shared.tasks import send

    _step(f"starting the local stack in {settings.state_path}, under a supervisor (as `reviews stack up`)")
    started = time.monotonic()
    Stack(settings).supervise(lambda name, msg: print(f"  {name:<22} {msg}", flush=True))
    print(f"  stack answering after {time.monotonic() - started:.1f}s")

    _step("creating the source database and loading the reviews")
    create_source(settings)
    report = load_paths(settings, [Path(args.data)], progress=True)
    print(report.summary())

    _step("running the pipeline: extract -> (archive || transform) -> classify -> publish")
    c = clients.init_operator(settings)
    params = {"limit": args.limit} if args.limit else {}
    try:
        run_id = start_run(c.history, send, "cli", params)
    except RunAlreadyActive as exc:
        run_id = exc.run_id
        print(f"  {exc}: watching it")
    run = watch(c.history, run_id)
    print(format_report(run, c.history.stage_summary(run_id)))

    api = f"http://{settings.api_host}:{settings.api_port}"
    flower = f"http://{settings.flower_host}:{settings.flower_port}"
    print(f"""
==> the stack is running (state, logs: {settings.state_path})
  storefront    {api}/shop/
  console       {api}/console/   (the operator's: paste API_TOKEN when it asks)
  API docs      {api}/docs
  health        {api}/health
  Flower        {flower}   (user {settings.flower_user}, password from FLOWER_PASSWORD)

next (the local stack's secrets are published placeholders, accepted only with ENVIRONMENT=local):
  export ENVIRONMENT=local
  .venv/bin/reviews stack status        every component, pinged
  .venv/bin/reviews runs                run history; `reviews runs RUN_ID` for one run's stages
  .venv/bin/reviews run                 another run, with progress per stage
  .venv/bin/reviews doctor              the alert rules, each with its value
  .venv/bin/reviews logs --run RUN_ID   one run's events from every component's log
  .venv/bin/reviews stack down          stop everything the stack started""")
    return 0 if run["status"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
