"""The root of the firmware's one exception tree.

It lives in the pure core so that core and pricing can raise errors of the tree while importing nothing
outside themselves; ``chargepoint.errors`` builds the rest of the tree (config, store, control) on it.
"""

from __future__ import annotations


class ChargePointError(Exception):
    """Root of every error the firmware raises on purpose."""
