"""Mailers: SMTP, console (dev only); SendGrid and Mandrill over HTTP."""
