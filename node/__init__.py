"""Watan node daemon: storage, services, federation transport, CLI."""
