"""Admin web UI served by the node (templates, static assets, i18n)."""
