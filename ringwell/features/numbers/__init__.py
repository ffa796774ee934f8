"""Numbers: the operator's phone-number inventory, rentals, inbound routing and caller ID."""
