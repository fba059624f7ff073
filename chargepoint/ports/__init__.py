"""The one seam between the charger and everything that talks to a backend or a person.

``charger``: what an adapter (OCPP 1.6, later OCPP 2.0.1, payment, monitoring) may ask of the charger.
``events``: what the charger tells its adapters (status changes, transactions, meter readings, faults,
security events). ``csms``: what the charger asks of the adapter that connects it to its CSMS.
``pricing``: prices and costs that a backend sends, and the price settings it holds.

The runtime implements ``charger``; adapters implement ``csms`` and listen to ``events``. An adapter imports
this package, never ``chargepoint.runtime``; the runtime never imports an adapter. The composition root
(``chargepoint.composition``) builds both and connects them.
"""
