"""The portal's web phone: short-lived SIP credentials for the logged-in browser (issue 6)."""
