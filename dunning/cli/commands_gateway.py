"""`dunning gateway serve` (the mock gateways on a port) and `dunning webhook serve` (receipts)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime

import typer

from dunning.bootstrap import Runtime
from dunning.cli._common import STATE, console
from dunning.services.contact.stops import inbound_sms
from dunning.services.dispatch.receipts import DatabaseReceiptSink

HOST_HELP = "Interface to listen on; the default keeps it on this machine."


def inbound_handler(runtime: Runtime) -> Callable[[str, str, datetime], bool]:
    """SMS replies: an opt-out keyword of the customer's policy pack opts them out of SMS."""

    packs = runtime.project.compliance_packs

    def handle(sender: str, text: str, received_at: datetime) -> bool:
        with runtime.unit_of_work() as connection:
            return inbound_sms(connection, sender, text, received_at, packs)

    return handle


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
        settings = project.channels.mock_gateway
        app = create_mock_gateway_app(settings, project.state_dir)
        console.print(
            f"mock gateways on http://{host}:{port} "
            f"(ledger {ledger_path(settings, project.state_dir)})",
            highlight=False,
        )
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)

    @webhook.command("serve")
    def webhook_serve(
        host: str = typer.Option("127.0.0.1", "--host", help=HOST_HELP),
        port: int = typer.Option(8766, "--port", min=1, max=65535),
        log_level: str = typer.Option("warning", "--log-level", help="uvicorn's log level"),
    ) -> None:
        """Accept signed delivery receipts (POST /webhooks/receipts/{channel}) and SMS replies
        (POST /webhooks/inbound/sms: opt-out keywords such as STOP or 退订 end the channel).

        The secret comes from DUNNING_WEBHOOK_SECRET; without it the webhook does not start.
        """
        # The HTTP server loads only for the `serve` commands.
        import uvicorn

        # FastAPI loads only for the `serve` commands.
        from dunning.webhooks import SECRET_ENV, check_secret, create_webhook_app

        secret = os.environ.get(SECRET_ENV, "")
        check_secret(secret)  # fail closed before touching the database: no secret, no server
        runtime = STATE.runtime()
        app = create_webhook_app(
            secret, DatabaseReceiptSink(runtime.engine), inbound=inbound_handler(runtime)
        )
        console.print(f"receipts webhook on http://{host}:{port}/webhooks/receipts/{{channel}}")
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
