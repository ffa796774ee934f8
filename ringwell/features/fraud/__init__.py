"""Fraud: destination permissions, call caps and the price cap checked before every outbound call."""
