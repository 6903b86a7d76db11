"""SMS senders: a generic JSON webhook, console (dev only); Twilio and Gupshup over HTTP."""
