"""``reviews alertmanager-config``: the Alertmanager's configuration, from the ALERT_* settings.

Alertmanager reads no environment variables, so docker-compose.yml runs this once before it
starts, into the volume it reads: the e-mail route then comes from the same settings (and the
same env file) as everything else. Without ALERT_EMAIL_TO, alerts are only shown in its UI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from shared.settings import Settings, get_settings

EMAIL, NOWHERE = "email", "ui-only"


def alertmanager_config(settings: Settings) -> dict:
    smtp: dict = {
        "smtp_smarthost": settings.alert_smtp_host,
        "smtp_from": settings.alert_email_from,
        "smtp_require_tls": bool(settings.alert_smtp_user),
    }
    if settings.alert_smtp_user:  # credentials never travel in clear: TLS is required with them
        smtp.update(
            smtp_auth_username=settings.alert_smtp_user,
            smtp_auth_password=settings.alert_smtp_password.get_secret_value(),
        )
    receiver = EMAIL if settings.alert_email_to else NOWHERE
    return {
        "global": smtp,
        "route": {
            "receiver": receiver,
            "group_by": ["alertname"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [{"matchers": ['severity="critical"'], "receiver": receiver, "repeat_interval": "1h"}],
        },
        "receivers": [
            {"name": EMAIL, "email_configs": [{"to": settings.alert_email_to, "send_resolved": True}]}
            if receiver == EMAIL
            else {"name": NOWHERE},
        ],
        # The API down for good says more than its failed checks: one mail, not two.
        "inhibit_rules": [
            {
                "source_matchers": ["alertname=ApiDown"],
                "target_matchers": ["alertname=ApiHealthChecksFailing"],
                "equal": ["instance"],
            }
        ],
    }


def cmd_alertmanager_config(args: argparse.Namespace) -> int:
    text = yaml.safe_dump(alertmanager_config(get_settings()), sort_keys=False)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
        args.out.chmod(0o640)  # it may hold the SMTP password
        print(f"wrote {args.out}")
    return 0


def add_alerting_command(sub: argparse._SubParsersAction) -> None:
    config = sub.add_parser("alertmanager-config", help="the Alertmanager's configuration, from the ALERT_* settings")
    config.add_argument("--out", type=Path, help="write it here (default: print it)")
    config.set_defaults(func=cmd_alertmanager_config)
