"""Voicemail: messages left in a user's mailbox, their audio and transcript encrypted at rest."""
