"""The wing that touches the network and the disk: client, ledger, runner, media, display.

Nothing in the language core imports it.
"""
