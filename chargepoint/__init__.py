"""chargepoint: firmware for the controller inside an AC EV charger."""

__version__ = "0.1.0"
