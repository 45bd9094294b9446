"""`dunning gateway serve` (the mock gateways on a port) and `dunning webhook serve` (receipts)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from adapters.base import GatewayAdapter, WebhookAnswer
from adapters.registry import build_provider
from dunning.bootstrap import Runtime
from dunning.cli._common import STATE, JsonOption, console, print_json
from dunning.cli._sandbox import with_registered_texts
from dunning.ops.gateways import ProvidersUnusable, check_providers
from dunning.services.contact.replies import VendorWebhookRecord, record_vendor_webhook
from dunning.services.contact.stops import inbound_sms
from dunning.services.dispatch.receipts import DatabaseReceiptSink

if TYPE_CHECKING:
    from dunning.webhooks import VendorHooks

HOST_HELP = "Interface to listen on; the default keeps it on this machine."
PUBLIC_URL_ENV = "DUNNING_PUBLIC_URL"
"""dunning.webhooks.PUBLIC_URL_ENV, named here without loading the web app."""


def inbound_handler(runtime: Runtime) -> Callable[[str, str, datetime], bool]:
    """SMS replies: an opt-out keyword of the customer's policy pack opts them out of SMS."""

    packs = runtime.project.compliance_packs

    def handle(sender: str, text: str, received_at: datetime) -> bool:
        with runtime.unit_of_work() as connection:
            return inbound_sms(connection, sender, text, received_at, packs)

    return handle


def vendor_hooks(runtime: Runtime) -> VendorHooks:
    """The providers of config/channels.yaml for their webhooks: each call builds the
    provider's adapter, and what it read is recorded in one transaction."""
    # The web app (Starlette) loads only for the `serve` commands and the tests that use it.
    from dunning.webhooks import VendorHooks

    project = runtime.project
    channels, packs = project.channels, project.compliance_packs

    def build(name: str) -> GatewayAdapter:
        return build_provider(name, channels, project.state_dir)

    def record(name: str, answer: WebhookAnswer) -> VendorWebhookRecord:
        with runtime.unit_of_work() as connection:
            return record_vendor_webhook(connection, name, answer.statuses, answer.replies, packs)

    return VendorHooks(frozenset(channels.all_providers()), build, record)


def register(app: typer.Typer) -> None:
    gateway = typer.Typer(help="The mock sms/push/letter gateways.", no_args_is_help=True)
    webhook = typer.Typer(help="The delivery-receipts webhook.", no_args_is_help=True)
    app.add_typer(gateway, name="gateway")
    app.add_typer(webhook, name="webhook")

    @gateway.command("serve")
    def gateway_serve(
        host: str = typer.Option("127.0.0.1", "--host", help=HOST_HELP),
        port: int = typer.Option(8765, "--port", min=1, max=65535),
        log_level: str = typer.Option("warning", "--log-level", help="uvicorn's log level"),
    ) -> None:
        """Serve the mock gateways over HTTP, with the settings of config/channels.yaml.

        Point an adapter at it with `url: http://HOST:PORT` in its channel's options.
        """
        # The HTTP server loads only for the `serve` commands.
        import uvicorn

        # The mock gateways are the sandbox's: an optional part, imported only to serve them.
        from sandbox import create_mock_gateway_app, ledger_path

        project = STATE.project()
        settings = with_registered_texts(project.channels.mock_gateway, project.root)
        app = create_mock_gateway_app(settings, project.state_dir)
        console.print(
            f"mock gateways on http://{host}:{port} "
            f"(ledger {ledger_path(settings, project.state_dir)})",
            highlight=False,
        )
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)

    @gateway.command("check")
    def gateway_check(
        provider: list[str] = typer.Argument(
            None, help="Providers to check (default: every one the channels file configures)."
        ),
        as_json: bool = JsonOption,
    ) -> None:
        """Try each configured provider's credentials and reachability without sending a
        message: one line per provider, saying what is wrong. Exit status 1 if any is.

        Secrets are read from the environment, as a dispatch reads them, and never printed.
        """
        project = STATE.project()
        checks = check_providers(project.channels, project.state_dir, provider or ())
        if as_json:
            print_json({"providers": [check.as_dict() for check in checks]})
        else:
            for check in checks:
                where = escape(", ".join(check.routes) or "no route")
                verdict = (
                    "[green]ok[/green]" if check.ok else f"[red]{escape(check.problem or '')}[/red]"
                )
                name, adapter = escape(check.provider), escape(check.adapter)
                console.print(
                    f"{name} ({adapter}; {where}): {verdict}", highlight=False, soft_wrap=True
                )
        bad = [check.provider for check in checks if not check.ok]
        if bad:
            # A DunningError, not typer.Exit (whose code `run` does not see): exit status 1.
            raise ProvidersUnusable(f"{len(bad)} provider(s) cannot be used: {', '.join(bad)}")

    @webhook.command("serve")
    def webhook_serve(
        host: str = typer.Option("127.0.0.1", "--host", help=HOST_HELP),
        port: int = typer.Option(8766, "--port", min=1, max=65535),
        log_level: str = typer.Option("warning", "--log-level", help="uvicorn's log level"),
        public_url: str | None = typer.Option(
            None,
            "--public-url",
            envvar=PUBLIC_URL_ENV,
            help="Where vendors reach this server, e.g. https://hooks.example.com: the URL "
            "their webhook signatures cover (proxy headers are not believed); or "
            f"{PUBLIC_URL_ENV}.",
        ),
    ) -> None:
        """Accept signed delivery receipts (POST /webhooks/receipts/{channel}), SMS replies
        (POST /webhooks/inbound/sms: opt-out keywords such as STOP or 退订 end the channel), and
        each provider's own webhooks (POST /webhooks/providers/{provider}/{status|inbound}).

        The secret comes from DUNNING_WEBHOOK_SECRET; without it the webhook does not start.
        The providers' webhooks need the public URL; without it they answer 503.
        """
        # The HTTP server loads only for the `serve` commands.
        import uvicorn

        # FastAPI loads only for the `serve` commands.
        from dunning.webhooks import SECRET_ENV, check_public_url, check_secret, create_webhook_app

        secret = os.environ.get(SECRET_ENV, "")
        check_secret(secret)  # fail closed before touching the database: no secret, no server
        base = check_public_url(public_url) if public_url else None
        runtime = STATE.runtime()
        app = create_webhook_app(
            secret,
            DatabaseReceiptSink(runtime.engine),
            inbound=inbound_handler(runtime),
            vendors=vendor_hooks(runtime),
            public_url=base,
        )
        console.print(f"receipts webhook on http://{host}:{port}/webhooks/receipts/{{channel}}")
        if base is None:
            console.print(
                f"{PUBLIC_URL_ENV} is not set: the providers' webhooks answer 503", highlight=False
            )
        else:
            console.print(
                f"providers' webhooks at {base}/webhooks/providers/{{provider}}/{{kind}}",
                highlight=False,
            )
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
