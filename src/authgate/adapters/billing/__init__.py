"""Billing providers: Stripe webhooks (verification and parsing) for core.flows.billing."""
