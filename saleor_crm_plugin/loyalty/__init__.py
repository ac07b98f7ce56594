"""Loyalty program: an append-only points ledger per customer and channel, lots with their own
expiry, pending points that follow each order's return window, exact reversals, tiers and
redemption into Saleor gift cards. See ``docs/loyalty.md``."""
