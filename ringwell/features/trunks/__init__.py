"""Trunks: the operator's carrier gateways (outbound routing, inbound identification, registration)."""
