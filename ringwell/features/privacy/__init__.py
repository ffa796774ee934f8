"""Privacy: the data register, retention, people's requests, consent, incidents."""
