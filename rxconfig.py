"""Reflex configuration: the database and the look come from our own settings."""

import reflex as rx
from reflex.plugins.sitemap import SitemapPlugin

from batch_dashboard.logs import quiet_reflex
from batch_dashboard.settings import get_settings

quiet_reflex()

config = rx.Config(
    app_name="batch_dashboard",
    db_url=get_settings().database_url,
    telemetry_enabled=False,
    show_built_with_reflex=False,
    disable_plugins=[SitemapPlugin],
    plugins=[
        rx.plugins.RadixThemesPlugin(
            theme=rx.theme(appearance="light", accent_color="indigo", radius="medium")
        ),
    ],
)
