"""Calls to the phone network: ``authorize_call`` before the INVITE goes out, credit while it runs."""
