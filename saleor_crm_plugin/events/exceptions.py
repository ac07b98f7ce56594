class UnsupportedEvent(Exception):
    """A Saleor event we do not consume; acknowledged and ignored."""


class PayloadError(ValueError):
    """A payload whose shape we cannot read; kept (raw) for diagnosis, never silently dropped."""
