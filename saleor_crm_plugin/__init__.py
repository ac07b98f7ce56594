"""CRM for Saleor: loyalty, RFM, recommendations, tickets and reviews.

Importing this package never imports Saleor: only ``plugin.py`` and ``core/compat.py`` do, so the
same code runs as a standalone Saleor App and inside a self-hosted Saleor as a plugin.
"""

__version__ = "0.1.0"
