"""Availability, usage and demand figures computed from the charger's recorded history: pure functions of plain
values (no I/O), so that the same code answers ``chargepoint report`` on the charger, the dashboard and the tests."""
