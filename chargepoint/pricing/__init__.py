"""Pricing on the charger: tariffs, cost evaluation, price packages, limits, price texts.

Pure: nothing here touches I/O. The runtime feeds meter samples and state changes in and reads breakdowns out.
"""
