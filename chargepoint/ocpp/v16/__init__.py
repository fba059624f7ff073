"""The OCPP 1.6J adapter; ``client.OcppClient`` is the piece the composition root builds."""
