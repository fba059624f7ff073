"""Firmware updates that cannot brick the charger: signed releases (``package``), installed beside the running
firmware (``installer``), switched to and rolled back across restarts by the update guard (``guard``), and built
and signed by ``python -m chargepoint.release.build``. The health check of a new firmware runs in the daemon
(``chargepoint.composition.update_trial``). docs/install.md, "Updates and rollback".
"""
