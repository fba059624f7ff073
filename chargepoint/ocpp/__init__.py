"""Protocol adapters that connect the charger to a CSMS: OCPP 1.6J in ``v16`` (OCPP 2.0.1 will sit beside it)."""
