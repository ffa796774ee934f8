"""Authentication and authorization: portal logins, sessions, MFA, API keys, permissions."""
