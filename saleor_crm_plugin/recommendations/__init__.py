"""Personalised recommendations: LightFM trained on paid order lines, measured against
popularity and buy-again baselines before it may serve anyone."""
