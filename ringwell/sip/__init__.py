"""Sans-IO SIP core (standard library only): messages, URIs, transactions, digest auth."""
